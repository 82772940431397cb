// The one error class of Vigil: a code from a closed set, a message a user can act on,
// and the cause attached. Each transport maps codes to its wire in exactly one function.

export type ErrorCode =
  | "invalid_input"
  | "unauthenticated"
  /** Authenticated, but not allowed to do this (a token without the scope, an approver the rule does not name). */
  | "forbidden"
  | "not_found"
  | "conflict"
  | "unavailable"
  | "internal";

export class VigilError extends Error {
  override readonly name = "VigilError";
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** Wraps anything thrown into a VigilError; a VigilError passes through unchanged. */
  static from(reason: unknown, code: ErrorCode = "internal"): VigilError {
    if (reason instanceof VigilError) return reason;
    const message = reason instanceof Error ? reason.message : String(reason);
    return new VigilError(code, message, { cause: reason });
  }
}
