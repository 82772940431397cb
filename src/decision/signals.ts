// The signals phase: every signal a decision needs, read from memory (O(1) map lookups per
// credential) and flattened into what policies see. The one place a Check reads the store.

import { HEADER_RELEASE_DIGEST } from "../config/defaults.js";
import type { Caller } from "../identity/index.js";
import type { SignalsView } from "../model/index.js";
import type { SignalStore } from "../signals/store.js";
import type { Effects } from "./effects.js";

const EMPTY_RECORD: Record<string, string> = Object.freeze({});
const NO_STRINGS: readonly string[] = Object.freeze([]);

/**
 * How bad a credential state is, for "the worst state wins" (signals.credential). Terminal states
 * first; "unknown" (no signal: a decoy, a key nobody registered) is worse than "active", so a
 * policy that requires an active credential is not satisfied by one good key beside an unknown one.
 *   compromised > leaked > revoked > expired > unknown > active > none
 */
export function credentialStateRank(state: string): number {
  switch (state) {
    case "none": return 0;
    case "active": return 1;
    case "expired": return 3;
    case "revoked": return 4;
    case "leaked": return 5;
    case "compromised": return 6;
    default: return 2; // "unknown", and any state this build does not know
  }
}

/** Credential states that single a credential out as the one to revoke. */
const SUSPECT_STATES: ReadonlySet<string> = new Set(["compromised", "leaked", "revoked", "expired"]);

/** The signals step's result: the policy's view, and which credentials stand out as bad. */
export interface SignalsRead {
  view: SignalsView;
  /**
   * Fingerprints of the presented credentials that are compromised, leaked, revoked, expired or
   * past their rotate-by: the ones a `revoke: [credential]` targets. Empty when none stands out.
   */
  suspects: string[];
  /**
   * The caller's SPIFFE ID and presented fingerprints found revoked (held by the store, or queued
   * on this instance). The effects phase queues no revocation for these and, for every other
   * subject read here, knows the store held none: revocation state is read once per Check.
   */
  revoked: string[];
}

/** Reads the signals a decision needs (O(1) map lookups per credential) and flattens them for policies. */
export function readSignals(
  store: SignalStore, effects: Pick<Effects, "pendingRevoked">, caller: Caller, headers: Record<string, string>, now: number,
): SignalsRead {
  const id = caller.spiffeId;
  const risk = id !== "" ? store.get(id, "risk", "", now) : undefined;
  const posture = id !== "" ? store.get(id, "posture", "", now) : undefined;
  const behavior = id !== "" ? store.get(id, "behavior", "", now) : undefined;
  const revokedId = id !== "" && (store.get(id, "revocation", "", now)?.data.revoked === true || effects.pendingRevoked(id));
  let revokedSubjects = revokedId ? [id] : NO_STRINGS as string[];
  // Every presented credential counts: the worst state wins, any overdue or revoked one counts.
  let worst = "none";
  let owner = "";
  let overdue = false;
  let revokedCred = false;
  let suspects = NO_STRINGS as string[];
  let findings = NO_STRINGS as string[];
  const states: string[] = [];
  for (const c of caller.credentials) {
    const fp = c.fingerprint;
    const credential = store.get(fp, "credential", "", now);
    const state = credential?.data.state ?? "unknown";
    states.push(state);
    if (credentialStateRank(state) > credentialStateRank(worst)) {
      worst = state;
      owner = credential?.data.owner ?? "";
    }
    const found = credential?.data.findings;
    if (found !== undefined && found.length > 0) findings = findings.length === 0 ? [...new Set(found)] : [...new Set([...findings, ...found])];
    const rotateBy = credential?.data.rotateBy;
    const late = rotateBy !== undefined && rotateBy <= now && (credential?.data.rotatedAt ?? 0) < rotateBy;
    const revoked = store.get(fp, "revocation", "", now)?.data.revoked === true || effects.pendingRevoked(fp);
    overdue ||= late;
    if (revoked) {
      revokedCred = true;
      if (revokedSubjects.length === 0) revokedSubjects = [];
      revokedSubjects.push(fp);
    }
    if (late || revoked || SUSPECT_STATES.has(state)) {
      if (suspects.length === 0) suspects = [];
      suspects.push(fp);
    }
  }
  const digest = headers[HEADER_RELEASE_DIGEST] ?? "";
  const attestation = digest !== "" ? store.get(digest, "attestation", "", now) : undefined;
  const view: SignalsView = {
    fresh: store.freshness(now).fresh,
    risk: risk?.data.level ?? "none",
    risk_reason: risk?.data.reason ?? "",
    risk_age_seconds: risk === undefined ? -1 : Math.max(0, Math.floor((now - risk.observedAt) / 1000)),
    posture: posture?.data.status ?? "unknown",
    posture_attributes: posture?.data.attributes ?? EMPTY_RECORD,
    credential: worst,
    credential_states: states,
    credential_overdue: overdue,
    credential_owner: owner,
    credential_findings: findings,
    revoked: revokedId || revokedCred,
    anomalies: behavior?.data.anomalies ?? [],
    attested: attestation !== undefined,
    attestation_signer: attestation?.data.signer ?? "",
  };
  return { view, suspects, revoked: revokedSubjects };
}

/** The policy's view of the signals alone (see {@link readSignals}). */
export function signalsView(
  store: SignalStore, effects: Pick<Effects, "pendingRevoked">, caller: Caller, headers: Record<string, string>, now: number,
): SignalsView {
  return readSignals(store, effects, caller, headers, now).view;
}
