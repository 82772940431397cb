// What a verified CAEP/RISC event means for Vigil: at most one signal, keyed by the SET's subject.
// The whole table is in index.ts; each case below says why where the choice is not obvious.
//
// Every signal written here carries the event's own time (event_timestamp, else toe, else iat) and
// the SET's identity as its event id. The store orders them: latest-wins for risk, posture and
// behaviour, while a revocation or a compromise applies whatever its time (a RISC compromise dated
// before a held "active" still compromises), and no event here can lift or soften one.

import { createHash } from "node:crypto";
import type { SignalInput } from "../model.js";
import { CAEP, RISC, SSF_EVENTS } from "./events.js";
import { SetError } from "./set-error.js";
import { CLOCK_SKEW_MS, numericDateMs, quote, type VerifiedSet } from "./verify.js";
import { isRecord } from "../../util/guards.js";

export type SetOutcome =
  /** Write this signal, then answer 202. */
  | { action: "write"; signal: SignalInput }
  /** A stream-management event: answer 202, write nothing. */
  | { action: "acknowledge"; note: string }
  /** Valid, but nothing Vigil keeps a signal for: answer 202, write nothing. */
  | { action: "ignore"; why: string };

const MAX_REASON = 1024;
/** Event types that can produce a signal; every other type is acknowledged and ignored. */
const MAPPED_EVENTS: ReadonlySet<string> = new Set<string>([
  CAEP.sessionRevoked, RISC.sessionsRevoked, CAEP.credentialChange, RISC.credentialCompromise,
  RISC.accountDisabled, RISC.accountPurged, CAEP.deviceComplianceChange, CAEP.riskLevelChange,
  CAEP.assuranceLevelChange, CAEP.tokenClaimsChange,
]);
const MAX_SIGNAL_ID = 256;

/**
 * The signal's event id: `ssf:<iss>:<jti>`, so a SET replayed after a restart (when the in-memory
 * replay guard has forgotten it) is still a duplicate to the store. Over the model's 256-character
 * limit, a digest of the same pair stands in — still deterministic, so still idempotent.
 */
export function signalIdFor(iss: string, jti: string): string {
  const id = `ssf:${iss}:${jti}`;
  if (id.length <= MAX_SIGNAL_ID) return id;
  return `ssf:sha256:${createHash("sha256").update(`${iss}\u0000${jti}`).digest("hex")}`;
}

/** Free text for a reason field: control characters flattened, at most 1024 UTF-16 units. */
export function reasonText(text: string): string {
  // eslint-disable-next-line no-control-regex -- stripping control characters is the point
  let clean = text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ").trim();
  if (clean.length > MAX_REASON) {
    clean = clean.slice(0, MAX_REASON);
    if (/[\ud800-\udbff]$/.test(clean)) clean = clean.slice(0, -1);
  }
  return clean;
}

/** `reason_admin` ({"en": "…", "de": "…"}): English first, then any other language. */
function adminReason(payload: Record<string, unknown>): string | undefined {
  const reasons = payload.reason_admin;
  if (!isRecord(reasons)) return undefined;
  const english = Object.keys(reasons).find((tag) => tag.toLowerCase() === "en")
    ?? Object.keys(reasons).find((tag) => tag.toLowerCase().startsWith("en-"));
  const preferred = english === undefined ? undefined : reasons[english];
  const text = typeof preferred === "string" ? preferred : Object.values(reasons).find((value) => typeof value === "string");
  return typeof text === "string" && text.trim() !== "" ? reasonText(text) : undefined;
}

function stringField(payload: Record<string, unknown>, name: string, event: string, required: true): string;
function stringField(payload: Record<string, unknown>, name: string, event: string, required: false): string | undefined;
function stringField(payload: Record<string, unknown>, name: string, event: string, required: boolean): string | undefined {
  const value = payload[name];
  if (value === undefined && !required) return undefined;
  if (typeof value !== "string" || value === "") {
    throw new SetError("invalid_request", `${event} needs ${name} as a non-empty string`);
  }
  return value;
}

function oneOf<T extends string>(value: string, allowed: readonly T[], name: string, event: string): T {
  const found = allowed.find((candidate) => candidate === value);
  if (found === undefined) throw new SetError("invalid_request", `${event} ${name} ${quote(value)} is not one of ${allowed.join(", ")}`);
  return found;
}

/** When the event happened: payload event_timestamp, else the SET's toe, else its iat. */
function observedAt(set: VerifiedSet, nowMs: number): number {
  const at = numericDateMs(set.payload, "event_timestamp") ?? set.toeMs ?? set.iatMs;
  // A future time would win every later latest-wins comparison until it came true.
  if (at > nowMs + CLOCK_SKEW_MS) throw new SetError("invalid_request", "event time is in the future");
  return at;
}

/**
 * Maps a verified SET to what the receiver does with it. Throws SetError("invalid_request") when
 * the payload does not match its event's definition (a required member missing or out of range).
 */
export function mapSet(set: VerifiedSet, nowMs: number): SetOutcome {
  const { eventUri, payload, subject } = set;
  switch (eventUri) {
    case SSF_EVENTS.verification:
      return { action: "acknowledge", note: "verification event" };
    case SSF_EVENTS.streamUpdated:
      return { action: "acknowledge", note: `stream status ${typeof payload.status === "string" ? payload.status : "unknown"}` };
    default:
      break;
  }
  if (!MAPPED_EVENTS.has(eventUri)) {
    // RISC account-enabled cannot lift a sticky revocation (only an audited reinstate can); the
    // other defined events concern people; unknown event types are not errors (SSF).
    return { action: "ignore", why: "no signal for this event type" };
  }
  if (!subject.mapped) return { action: "ignore", why: `sub_id format ${subject.format} names nothing Vigil keeps signals for` };
  // A signal's subject is what a decision looks up (signals/model.ts subjectProblem): a workload
  // SPIFFE ID or a credential fingerprint. An iss_sub pair names an account at the transmitter,
  // which no Check ever presents, so a signal for it could only fill the store.
  if (subject.kind === "iss_sub") return { action: "ignore", why: "an iss_sub subject names no workload or credential" };

  const base = {
    id: signalIdFor(set.iss, set.jti),
    subject: subject.subject,
    source: `ssf:${set.iss}`,
    observedAt: observedAt(set, nowMs),
  };
  const isCredential = subject.kind === "credential";
  const revoke = (fallback: string): SetOutcome => ({
    action: "write",
    signal: { ...base, kind: "revocation", data: { revoked: true, reason: adminReason(payload) ?? fallback, by: set.iss } },
  });

  switch (eventUri) {
    case CAEP.sessionRevoked:
    case RISC.sessionsRevoked:
      return revoke("session revoked by the transmitter");

    case CAEP.credentialChange: {
      const event = "credential-change";
      const credentialType = stringField(payload, "credential_type", event, true);
      const changeType = oneOf(stringField(payload, "change_type", event, true), ["create", "revoke", "update", "delete"], "change_type", event);
      if (changeType === "revoke" || changeType === "delete") {
        if (isCredential) return { action: "write", signal: { ...base, kind: "credential", data: { state: "revoked" } } };
        return revoke(`${credentialType} credential ${changeType}d by the transmitter`);
      }
      if (!isCredential) return { action: "ignore", why: `credential ${changeType} on an identity changes no signal` };
      const data = changeType === "create"
        ? { state: "active" as const, issuedAt: base.observedAt }
        : { state: "active" as const, rotatedAt: base.observedAt };
      return { action: "write", signal: { ...base, kind: "credential", data } };
    }

    case RISC.credentialCompromise: {
      const credentialType = stringField(payload, "credential_type", "credential-compromise", true);
      if (isCredential) return { action: "write", signal: { ...base, kind: "credential", data: { state: "compromised" } } };
      return revoke(`${credentialType} credential compromised`);
    }

    case RISC.accountDisabled: {
      const why = stringField(payload, "reason", "account-disabled", false);
      return revoke(why === undefined ? "account disabled" : `account disabled: ${reasonText(why)}`);
    }
    case RISC.accountPurged:
      return revoke("account purged");

    case CAEP.deviceComplianceChange: {
      const event = "device-compliance-change";
      const status = oneOf(stringField(payload, "current_status", event, true), ["compliant", "not-compliant"], "current_status", event);
      if (isCredential) return { action: "ignore", why: "posture of a credential is not a signal" };
      const data = { status: status === "compliant" ? "compliant" as const : "non_compliant" as const };
      return { action: "write", signal: { ...base, kind: "posture", data } };
    }

    case CAEP.riskLevelChange: {
      const event = "risk-level-change";
      const level = oneOf(stringField(payload, "current_level", event, true).toUpperCase(), ["LOW", "MEDIUM", "HIGH"], "current_level", event);
      if (isCredential) return { action: "ignore", why: "risk of a credential is not a signal" };
      const why = stringField(payload, "risk_reason", event, false);
      const reason = why === undefined ? adminReason(payload) : reasonText(why);
      const data = { level: level.toLowerCase() as "low" | "medium" | "high", ...(reason === undefined ? {} : { reason }) };
      return { action: "write", signal: { ...base, kind: "risk", data } };
    }

    case CAEP.assuranceLevelChange: {
      const event = "assurance-level-change";
      const namespace = stringField(payload, "namespace", event, true);
      const current = stringField(payload, "current_level", event, true);
      const direction = stringField(payload, "change_direction", event, false);
      if (direction !== undefined) oneOf(direction, ["increase", "decrease"], "change_direction", event);
      // Only a drop is evidence of risk; a rise (or an unknown direction) is no reason to lower a
      // risk some other event raised, so it writes nothing.
      if (direction !== "decrease") return { action: "ignore", why: "assurance level not decreased" };
      if (isCredential) return { action: "ignore", why: "assurance of a credential is not a signal" };
      const reason = reasonText(`assurance level decreased to ${namespace} ${current}`);
      return { action: "write", signal: { ...base, kind: "risk", data: { level: "medium", reason } } };
    }

    case CAEP.tokenClaimsChange: {
      if (!isRecord(payload.claims)) throw new SetError("invalid_request", "token-claims-change needs claims as a JSON object");
      if (isCredential) return { action: "ignore", why: "behaviour of a credential is not a signal" };
      return { action: "write", signal: { ...base, kind: "behavior", data: { anomalies: ["token_claims_change"] } } };
    }

    default:
      return { action: "ignore", why: "no signal for this event type" };
  }
}
