// A SET refused by the receiver: the RFC 8935 error code (IANA "Security Event Token Error Codes"
// registry, plus SSF's invalid_state) and a description for the transmitter's operators. Used as
// a value inside the receiver; handle() turns it into a 400 answer and never lets it escape.

export const SET_ERROR_CODES = [
  "invalid_request",
  "invalid_key",
  "invalid_issuer",
  "invalid_audience",
  "authentication_failed",
  "access_denied",
  "invalid_state",
] as const;
export type SetErrorCode = (typeof SET_ERROR_CODES)[number];

export class SetError extends Error {
  override readonly name = "SetError";
  readonly code: SetErrorCode;

  constructor(code: SetErrorCode, description: string, options?: { cause?: unknown }) {
    super(description, options);
    this.code = code;
  }
}

/** The transmitter's key material could not be obtained right now (remote JWKS down): retry later. */
export class KeySourceUnavailable extends Error {
  override readonly name = "KeySourceUnavailable";
}
