// RFC 9493 Subject Identifiers (and SSF complex subjects) reduced to the subject strings Vigil
// keys signals by: a SPIFFE ID, a credential fingerprint, or an iss_sub pair. Well-formed
// identifiers Vigil has no use for (email, phone, jwt_id, a non-SPIFFE URI …) are "unmapped",
// not errors: the SET is acknowledged and nothing is written.

import { isFingerprint, spiffeIdProblem } from "../../identity/index.js";
import { isRecord } from "../../util/guards.js";
import { SetError } from "./set-error.js";

export type SubjectKind = "spiffe" | "credential" | "iss_sub";

export type ResolvedSubject =
  | { mapped: true; kind: SubjectKind; subject: string }
  | { mapped: false; format: string };

/** Longest subject a signal may carry (signal model: subject ≤ 2048). */
const MAX_SUBJECT_LENGTH = 2048;
/** Members of a complex subject that may name the principal, most specific to a workload first. */
const COMPLEX_MEMBERS = ["application", "device", "user"] as const;

function requiredMember(id: Record<string, unknown>, member: string, format: string): string {
  const value = id[member];
  if (typeof value !== "string" || value === "") {
    throw new SetError("invalid_request", `sub_id format ${format} needs a non-empty string "${member}"`);
  }
  return value;
}

function bounded(kind: SubjectKind, subject: string): ResolvedSubject {
  if (subject.length > MAX_SUBJECT_LENGTH) {
    throw new SetError("invalid_request", `sub_id is longer than ${MAX_SUBJECT_LENGTH} characters`);
  }
  return { mapped: true, kind, subject };
}

/** `format`, or the legacy `subject_type` Google's RISC transmitter still sends. */
function formatOf(id: Record<string, unknown>): string {
  const format = id.format ?? id.subject_type;
  if (typeof format !== "string" || format === "") {
    throw new SetError("invalid_request", "sub_id has no format");
  }
  return format;
}

function resolveSimple(id: Record<string, unknown>, format: string): ResolvedSubject {
  switch (format) {
    case "uri": {
      const uri = requiredMember(id, "uri", format);
      if (!uri.toLowerCase().startsWith("spiffe:")) return { mapped: false, format: "uri" };
      const problem = spiffeIdProblem(uri);
      if (problem !== undefined) throw new SetError("invalid_request", `sub_id uri is not a valid SPIFFE ID: ${problem}`);
      return bounded("spiffe", uri);
    }
    case "opaque": {
      const opaque = requiredMember(id, "id", format);
      // A transmitter may spell the hex in upper case; the subject is the canonical lower case.
      if (isFingerprint(opaque.toLowerCase())) return bounded("credential", opaque.toLowerCase());
      // By bilateral agreement a transmitter limited to the CAEP interop formats may carry a
      // SPIFFE ID as an opaque id; anything else opaque is meaningful only to the transmitter.
      if (opaque.startsWith("spiffe://") && spiffeIdProblem(opaque) === undefined) return bounded("spiffe", opaque);
      return { mapped: false, format: "opaque" };
    }
    case "iss_sub": {
      const iss = requiredMember(id, "iss", format);
      const sub = requiredMember(id, "sub", format);
      return bounded("iss_sub", `iss_sub:${iss}#${sub}`);
    }
    default:
      return { mapped: false, format };
  }
}

/**
 * Resolves a SET's top-level `sub_id`. Throws SetError("invalid_request") when it is missing or
 * malformed (missing members, nested aliases, an invalid SPIFFE ID); returns `mapped: false` when
 * it is well formed but names nothing Vigil keeps signals for.
 */
export function resolveSubjectId(subId: unknown): ResolvedSubject {
  if (subId === undefined) throw new SetError("invalid_request", "sub_id is required (SSF)");
  if (!isRecord(subId)) throw new SetError("invalid_request", "sub_id must be a JSON object");
  const format = formatOf(subId);
  if (format === "aliases") {
    const identifiers = subId.identifiers;
    if (!Array.isArray(identifiers) || identifiers.length === 0) {
      throw new SetError("invalid_request", "sub_id aliases needs a non-empty identifiers array");
    }
    let first: ResolvedSubject | undefined;
    for (const alias of identifiers) {
      if (!isRecord(alias)) throw new SetError("invalid_request", "each alias must be a JSON object");
      const aliasFormat = formatOf(alias);
      if (aliasFormat === "aliases") throw new SetError("invalid_request", "aliases must not be nested");
      const resolved = resolveSimple(alias, aliasFormat);
      if (resolved.mapped) return resolved;
      first ??= resolved;
    }
    return first ?? { mapped: false, format };
  }
  if (format === "complex") {
    for (const member of COMPLEX_MEMBERS) {
      const simple = subId[member];
      if (simple === undefined) continue;
      if (!isRecord(simple)) throw new SetError("invalid_request", `sub_id complex member ${member} must be a JSON object`);
      const memberFormat = formatOf(simple);
      if (memberFormat === "aliases" || memberFormat === "complex") {
        throw new SetError("invalid_request", `sub_id complex member ${member} must be a simple subject`);
      }
      const resolved = resolveSimple(simple, memberFormat);
      if (resolved.mapped) return resolved;
    }
    // Only session/tenant/group members (or none Vigil maps): well formed, but no principal for us.
    return { mapped: false, format };
  }
  return resolveSimple(subId, format);
}
