// What a caller of the admin API may say, one strict schema per signal kind, and the signal the
// server makes of it. The server sets id, source (the token holder) and, unless the client gives
// one within the allowed clock skew, observedAt; expiry is a duration from the server's clock.
// Grants are written only by approvals; a revocation is lifted only by reinstate.

import { randomUUID } from "node:crypto";
import { z } from "zod";
import { VigilError } from "../../errors/index.js";
import { issuePath } from "../../util/zod.js";
import {
  attestationData, behaviorData, credentialData, postureData, riskData, subjectProblem, type SignalInput,
} from "../../signals/model.js";

/** Longest expiry a client may ask for: one year. */
export const MAX_EXPIRES_IN_SECONDS = 365 * 24 * 3600;
/** Most signals in one POST (an array body). */
export const MAX_SIGNALS_PER_REQUEST = 100;
/** Credential states that are terminal: no expiry may make them vanish. */
const TERMINAL_CREDENTIAL_STATES: readonly string[] = ["leaked", "compromised", "revoked"];
/** Fields the server sets; a client sending them gets a clear refusal rather than "unknown field". */
const SERVER_SET_FIELDS = ["id", "source", "expiresAt", "by"] as const;

/** epoch ms, or an RFC 3339 date-time string. */
const timestamp = z.union([
  z.number().int().nonnegative(),
  z.iso.datetime({ offset: true }).transform((value) => Date.parse(value)),
], { error: "expected epoch milliseconds or an RFC 3339 date-time" });

const common = {
  subject: z.string().min(1).max(2048),
  /** When the fact was observed; only within the allowed skew of the server's clock. */
  observedAt: timestamp.optional(),
  expiresInSeconds: z.number().int().min(1).max(MAX_EXPIRES_IN_SECONDS).optional(),
};

const revocationRequestData = z.strictObject({
  /** true revokes; false is answered 409: only POST /v1/signals/reinstate lifts a revocation. */
  revoked: z.boolean().default(true),
  reason: z.string().trim().min(1, "a revocation needs a reason").max(1024),
});

export const signalRequestSchema = z.discriminatedUnion("kind", [
  z.strictObject({ ...common, kind: z.literal("risk"), data: riskData }),
  z.strictObject({ ...common, kind: z.literal("posture"), data: postureData }),
  z.strictObject({ ...common, kind: z.literal("credential"), data: credentialData }),
  z.strictObject({ ...common, kind: z.literal("revocation"), data: revocationRequestData }),
  z.strictObject({ ...common, kind: z.literal("behavior"), data: behaviorData }),
  z.strictObject({ ...common, kind: z.literal("attestation"), data: attestationData }),
]);
export type SignalRequest = z.infer<typeof signalRequestSchema>;

export const reinstateRequestSchema = z.strictObject({
  subject: z.string().min(1).max(2048),
  /** Only a revocation is ever reinstated; a leaked credential is rotated, never made active again. */
  kind: z.literal("revocation").optional(),
  reason: z.string().trim().min(1, "a reinstatement needs a reason (it is audited)").max(1024),
});
export type ReinstateRequest = z.infer<typeof reinstateRequestSchema>;

/** An approve or deny body: an optional comment, audited with the decision. */
export const decisionRequestSchema = z.strictObject({
  comment: z.string().trim().max(1024, "a comment holds at most 1024 characters").default(""),
});

/** Parses an approve/deny body; throws VigilError invalid_input naming the field, never its value. */
export function parseDecisionRequest(input: unknown): { comment: string } {
  const parsed = decisionRequestSchema.safeParse(input ?? {});
  if (!parsed.success) throw new VigilError("invalid_input", `invalid decision: ${describe(parsed.error.issues, "")}`);
  return parsed.data;
}

export interface SignalContext {
  /** Token holder's name; the signal's source is `admin:<name>`. */
  by: string;
  nowMs: number;
  maxClockSkewMs: number;
}

/** A path element: the schema's own field names and indexes pass; anything else is not quoted. */
function fieldName(key: PropertyKey): string {
  const text = String(key);
  return /^([A-Za-z]{1,32}|\d{1,6})$/.test(text) ? text : "(field)";
}

/** "path: message" per issue; never quotes a value the client sent. */
function describe(issues: readonly z.core.$ZodIssue[], prefix: string): string {
  return issues.slice(0, 10).map((issue) => {
    const path = issuePath(issue.path, fieldName, prefix);
    if (issue.code === "unrecognized_keys") {
      // Field names are the client's text too: only the ones the server sets are named back.
      const serverSet = issue.keys.map(String).filter((k) => (SERVER_SET_FIELDS as readonly string[]).includes(k));
      if (serverSet.length > 0) {
        const expiry = serverSet.includes("expiresAt") ? " (for an expiry send expiresInSeconds)" : "";
        return `${path}: ${serverSet.join(", ")} ${serverSet.length === 1 ? "is" : "are"} set by the server${expiry}`;
      }
      const allowed = issue.path.length === 0 ? " (allowed: kind, subject, data, observedAt, expiresInSeconds)" : "";
      return `${path}: ${issue.keys.length === 1 ? "an unknown field" : `${issue.keys.length} unknown fields`}${allowed}`;
    }
    if (issue.path.length === 1 && issue.path[0] === "kind") {
      return `${path}: must be one of risk, posture, credential, revocation, behavior, attestation (grants come only from approvals)`;
    }
    return `${path}: ${issue.message}`;
  }).join("; ");
}

/** Parses one signal request; throws VigilError invalid_input (400), forbidden (grant) or conflict (lift). */
export function parseSignalRequest(input: unknown, at = ""): SignalRequest {
  if (typeof input === "object" && input !== null && !Array.isArray(input) && (input as { kind?: unknown }).kind === "grant") {
    throw new VigilError("forbidden", `${at === "" ? "" : `${at}: `}grants are written only by approvals (POST /v1/approvals/{id}/approve)`);
  }
  const parsed = signalRequestSchema.safeParse(input);
  if (!parsed.success) throw new VigilError("invalid_input", `invalid signal: ${describe(parsed.error.issues, at)}`);
  const request = parsed.data;
  if (request.kind === "revocation" && !request.data.revoked) {
    throw new VigilError("conflict", "a put cannot lift a revocation: use POST /v1/signals/reinstate (audited)");
  }
  if (request.expiresInSeconds !== undefined) {
    if (request.kind === "revocation") {
      throw new VigilError("invalid_input", `${at === "" ? "" : `${at}.`}expiresInSeconds: a revocation does not expire; only reinstate lifts it`);
    }
    if (request.kind === "credential" && TERMINAL_CREDENTIAL_STATES.includes(request.data.state)) {
      throw new VigilError("invalid_input", `${at === "" ? "" : `${at}.`}expiresInSeconds: a ${request.data.state} credential stays so; it does not expire`);
    }
  }
  return request;
}

/** The signal the server writes for a request: id, source, times set here. */
export function signalFromRequest(request: SignalRequest, context: SignalContext, at = ""): SignalInput {
  let observedAt = context.nowMs;
  if (request.observedAt !== undefined) {
    if (Math.abs(request.observedAt - context.nowMs) > context.maxClockSkewMs) {
      throw new VigilError(
        "invalid_input",
        `${at === "" ? "" : `${at}.`}observedAt is more than ${Math.round(context.maxClockSkewMs / 1000)} s from the server's clock; omit it to use the server's time`,
      );
    }
    observedAt = request.observedAt;
  }
  const base = {
    id: randomUUID(),
    subject: request.subject,
    source: `admin:${context.by}`,
    observedAt,
    ...(request.expiresInSeconds === undefined ? {} : { expiresAt: context.nowMs + request.expiresInSeconds * 1000 }),
  };
  switch (request.kind) {
    case "revocation":
      return { ...base, kind: "revocation", data: { revoked: true, reason: request.data.reason, by: context.by } };
    case "risk": return { ...base, kind: request.kind, data: request.data };
    case "posture": return { ...base, kind: request.kind, data: request.data };
    case "credential": return { ...base, kind: request.kind, data: request.data };
    case "behavior": return { ...base, kind: request.kind, data: request.data };
    case "attestation": return { ...base, kind: request.kind, data: request.data };
  }
}

/** Parses a reinstate request: a SPIFFE ID or credential fingerprint and a non-empty reason. */
export function parseReinstateRequest(input: unknown): ReinstateRequest {
  if (typeof input === "object" && input !== null && "kind" in input && (input as { kind?: unknown }).kind !== "revocation") {
    throw new VigilError("invalid_input", "kind: only a revocation is reinstated; a leaked or compromised credential is rotated, never made active again");
  }
  const parsed = reinstateRequestSchema.safeParse(input);
  if (!parsed.success) throw new VigilError("invalid_input", `invalid reinstate: ${describe(parsed.error.issues, "")}`);
  const { subject } = parsed.data;
  // The store's own rule for a revocation subject, checked here so the answer names the request field.
  if (subjectProblem("revocation", subject) !== undefined) {
    throw new VigilError("invalid_input", "subject: a revocation's subject is a SPIFFE ID or a credential fingerprint (sha256:<64 lower-case hex>, see `vigil fingerprint`)");
  }
  return parsed.data;
}

/** A label as `vigil behavior show` prints it: printable, no control characters. */
const behaviorLabel = z.string().min(1).max(512).regex(/^\P{Cc}+$/u, { error: "must be a label as `vigil behavior show` prints it, without control characters" });

export const behaviorAcceptRequestSchema = z.strictObject({
  /** The caller whose baseline is widened. */
  caller: z.string().min(1).max(2048),
  /** Actions to accept ("payments GET /v1/payments/*"); with neither list, every pending item. */
  actions: z.array(behaviorLabel).max(256).optional(),
  /** Source networks to accept ("10.1.2.0/24"). */
  networks: z.array(behaviorLabel).max(256).optional(),
});
export type BehaviorAcceptRequest = z.infer<typeof behaviorAcceptRequestSchema>;

export function parseBehaviorAcceptRequest(input: unknown): BehaviorAcceptRequest {
  const parsed = behaviorAcceptRequestSchema.safeParse(input);
  if (!parsed.success) throw new VigilError("invalid_input", `invalid accept: ${describe(parsed.error.issues, "")}`);
  if (subjectProblem("behavior", parsed.data.caller) !== undefined) {
    throw new VigilError("invalid_input", "caller: a workload SPIFFE ID (spiffe://trust-domain/path)");
  }
  return parsed.data;
}
