import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CAEP, RISC, SSF_EVENTS } from "../../../src/signals/ssf/index.js";
import {
  FINGERPRINT, ISSUER, NOW, NOW_S, WORKLOAD, makeHarness, makeTransmitter, setClaims, signSet, writeJwksFile,
  type Transmitter,
} from "./set-fixtures.js";

let rsa: Transmitter;
let jwks: { path: string; remove: () => Promise<void> };

beforeAll(async () => {
  rsa = await makeTransmitter("RS256", "rsa-1");
  jwks = await writeJwksFile([rsa]);
});
afterAll(async () => {
  await jwks.remove();
});

const spiffe = { format: "uri", uri: WORKLOAD };
const credential = { format: "opaque", id: FINGERPRINT };
const reasonAdmin = { reason_admin: { en: "Landspeed Policy Violation: C076E82F" } };

interface MappingCase {
  name: string;
  event: string;
  payload: Record<string, unknown>;
  subId?: unknown;
  expected: { kind: string; subject: string; data: unknown };
}

const mappings: MappingCase[] = [
  {
    name: "caep session-revoked revokes the workload with the admin reason",
    event: CAEP.sessionRevoked, payload: { ...reasonAdmin, initiating_entity: "policy" },
    expected: { kind: "revocation", subject: WORKLOAD, data: { revoked: true, reason: "Landspeed Policy Violation: C076E82F", by: ISSUER } },
  },
  {
    name: "risc sessions-revoked (deprecated) revokes like session-revoked",
    event: RISC.sessionsRevoked, payload: {},
    expected: { kind: "revocation", subject: WORKLOAD, data: { revoked: true, reason: "session revoked by the transmitter", by: ISSUER } },
  },
  {
    name: "caep credential-change revoke on a credential marks it revoked",
    event: CAEP.credentialChange, payload: { credential_type: "x509", change_type: "revoke", ...reasonAdmin }, subId: credential,
    expected: { kind: "credential", subject: FINGERPRINT, data: { state: "revoked" } },
  },
  {
    name: "caep credential-change delete on an identity revokes the identity",
    event: CAEP.credentialChange, payload: { credential_type: "app", change_type: "delete" },
    expected: { kind: "revocation", subject: WORKLOAD, data: { revoked: true, reason: "app credential deleted by the transmitter", by: ISSUER } },
  },
  {
    name: "caep credential-change create on a credential marks it active and issued",
    event: CAEP.credentialChange, payload: { credential_type: "app", change_type: "create", event_timestamp: NOW_S - 60 }, subId: credential,
    expected: { kind: "credential", subject: FINGERPRINT, data: { state: "active", issuedAt: NOW - 60_000 } },
  },
  {
    name: "caep credential-change update on a credential marks it active and rotated",
    event: CAEP.credentialChange, payload: { credential_type: "app", change_type: "update", event_timestamp: NOW_S - 60 }, subId: credential,
    expected: { kind: "credential", subject: FINGERPRINT, data: { state: "active", rotatedAt: NOW - 60_000 } },
  },
  {
    name: "caep device-compliance-change to not-compliant makes the posture non_compliant",
    event: CAEP.deviceComplianceChange, payload: { previous_status: "compliant", current_status: "not-compliant" },
    expected: { kind: "posture", subject: WORKLOAD, data: { status: "non_compliant" } },
  },
  {
    name: "caep device-compliance-change to compliant makes the posture compliant",
    event: CAEP.deviceComplianceChange, payload: { previous_status: "not-compliant", current_status: "compliant" },
    expected: { kind: "posture", subject: WORKLOAD, data: { status: "compliant" } },
  },
  {
    name: "caep risk-level-change HIGH becomes risk high with the risk reason",
    event: CAEP.riskLevelChange, payload: { principal: "USER", current_level: "HIGH", previous_level: "LOW", risk_reason: "PASSWORD_FOUND_IN_DATA_BREACH" },
    expected: { kind: "risk", subject: WORKLOAD, data: { level: "high", reason: "PASSWORD_FOUND_IN_DATA_BREACH" } },
  },
  {
    name: "caep risk-level-change LOW becomes risk low",
    event: CAEP.riskLevelChange, payload: { principal: "USER", current_level: "LOW" },
    expected: { kind: "risk", subject: WORKLOAD, data: { level: "low" } },
  },
  {
    name: "caep assurance-level-change decrease becomes risk medium",
    event: CAEP.assuranceLevelChange, payload: { namespace: "NIST-AAL", current_level: "nist-aal1", previous_level: "nist-aal2", change_direction: "decrease" },
    expected: { kind: "risk", subject: WORKLOAD, data: { level: "medium", reason: "assurance level decreased to NIST-AAL nist-aal1" } },
  },
  {
    name: "caep token-claims-change becomes a token_claims_change anomaly",
    event: CAEP.tokenClaimsChange, payload: { claims: { role: "ro-admin" } },
    expected: { kind: "behavior", subject: WORKLOAD, data: { anomalies: ["token_claims_change"] } },
  },
  {
    name: "risc credential-compromise on a credential marks it compromised",
    event: RISC.credentialCompromise, payload: { credential_type: "app" }, subId: credential,
    expected: { kind: "credential", subject: FINGERPRINT, data: { state: "compromised" } },
  },
  {
    name: "risc credential-compromise on an identity revokes the identity",
    event: RISC.credentialCompromise, payload: { credential_type: "x509", ...reasonAdmin },
    expected: { kind: "revocation", subject: WORKLOAD, data: { revoked: true, reason: "Landspeed Policy Violation: C076E82F", by: ISSUER } },
  },
  {
    name: "risc account-disabled revokes with its reason",
    event: RISC.accountDisabled, payload: { reason: "hijacking" },
    expected: { kind: "revocation", subject: WORKLOAD, data: { revoked: true, reason: "account disabled: hijacking", by: ISSUER } },
  },
  {
    name: "risc account-purged revokes",
    event: RISC.accountPurged, payload: {},
    expected: { kind: "revocation", subject: WORKLOAD, data: { revoked: true, reason: "account purged", by: ISSUER } },
  },
  {
    name: "a complex subject uses its application member",
    event: CAEP.sessionRevoked, payload: {},
    subId: { format: "complex", user: { format: "email", email: "ops@example.com" }, application: spiffe, session: { format: "opaque", id: "s1" } },
    expected: { kind: "revocation", subject: WORKLOAD, data: { revoked: true, reason: "session revoked by the transmitter", by: ISSUER } },
  },
  {
    name: "aliases use the first identifier Vigil can map",
    event: CAEP.riskLevelChange, payload: { principal: "USER", current_level: "medium" },
    subId: { format: "aliases", identifiers: [{ format: "email", email: "svc@example.com" }, spiffe, credential] },
    expected: { kind: "risk", subject: WORKLOAD, data: { level: "medium" } },
  },
  {
    name: "an opaque id holding a SPIFFE ID names that workload",
    event: CAEP.sessionRevoked, payload: {}, subId: { format: "opaque", id: WORKLOAD },
    expected: { kind: "revocation", subject: WORKLOAD, data: { revoked: true, reason: "session revoked by the transmitter", by: ISSUER } },
  },
  {
    name: "an upper-case fingerprint is lower-cased",
    event: RISC.credentialCompromise, payload: { credential_type: "app" }, subId: { format: "opaque", id: FINGERPRINT.toUpperCase().replace("SHA256", "sha256") },
    expected: { kind: "credential", subject: FINGERPRINT, data: { state: "compromised" } },
  },
  {
    name: "Google's legacy subject_type is accepted in place of format",
    event: RISC.accountPurged, payload: {}, subId: { subject_type: "opaque", id: WORKLOAD },
    expected: { kind: "revocation", subject: WORKLOAD, data: { revoked: true, reason: "account purged", by: ISSUER } },
  },
];

describe("SSF receiver: CAEP/RISC events become signals", () => {
  it.each(mappings)("$name", async ({ event, payload, subId, expected }) => {
    const h = makeHarness({ jwksFile: jwks.path });
    const claims = setClaims(event, payload, subId === undefined ? {} : { sub_id: subId });
    const response = await h.post(await signSet(claims, rsa));
    expect(response).toEqual({ status: 202, headers: {}, body: "" });
    expect(h.store.written).toHaveLength(1);
    const signal = h.store.written[0]!;
    expect(signal).toMatchObject({ ...expected, source: `ssf:${ISSUER}`, id: `ssf:${ISSUER}:${String(claims.jti)}`, name: "" });
    expect(signal.data).toEqual(expected.data);
  });

  it("takes observedAt from event_timestamp, else toe, else iat", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    const at = async (payload: Record<string, unknown>, extra: Record<string, unknown>): Promise<number> => {
      await h.post(await signSet(setClaims(RISC.accountPurged, payload, extra), rsa));
      return h.store.written.at(-1)!.observedAt;
    };
    expect(await at({ event_timestamp: NOW_S - 30.5 }, { toe: NOW_S - 100 })).toBe(NOW - 30_500);
    expect(await at({}, { toe: NOW_S - 100 })).toBe(NOW - 100_000);
    expect(await at({}, { iat: NOW_S - 7 })).toBe(NOW - 7_000);
  });

  it("truncates a long admin reason to 1024 characters and flattens control characters", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    const claims = setClaims(CAEP.sessionRevoked, { reason_admin: { de: "Grund", en: `line\none ${"x".repeat(3000)}` } });
    expect((await h.post(await signSet(claims, rsa))).status).toBe(202);
    const signal = h.store.written[0]!;
    if (signal.kind !== "revocation") throw new Error("expected a revocation");
    expect(signal.data.reason).toHaveLength(1024);
    expect(signal.data.reason.startsWith("line one x")).toBe(true);
  });

  it("uses a digest id when ssf:<iss>:<jti> would exceed the model's 256 characters", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    const jti = "j".repeat(300);
    expect((await h.post(await signSet(setClaims(RISC.accountPurged, {}, { jti }), rsa))).status).toBe(202);
    expect(h.store.written[0]!.id).toMatch(/^ssf:sha256:[0-9a-f]{64}$/);
  });
});

interface QuietCase {
  name: string;
  event: string;
  payload: Record<string, unknown>;
  subId?: unknown;
  result: "ignored" | "acknowledged";
  label: string;
}

const quiet: QuietCase[] = [
  { name: "a verification event is acknowledged", event: SSF_EVENTS.verification, payload: { state: "VGhpcyBpcyBhbiBleGFtcGxl" }, subId: { format: "opaque", id: "f67e39a0" }, result: "acknowledged", label: "verification" },
  { name: "a stream-updated event is acknowledged", event: SSF_EVENTS.streamUpdated, payload: { status: "paused", reason: "maintenance" }, subId: { format: "opaque", id: "f67e39a0" }, result: "acknowledged", label: "stream-updated" },
  { name: "an unknown event type is ignored and counted as unknown", event: "https://example.com/secevent/custom", payload: { anything: [1, 2] }, result: "ignored", label: "unknown" },
  { name: "an email subject is ignored", event: CAEP.sessionRevoked, payload: {}, subId: { format: "email", email: "ops@example.com" }, result: "ignored", label: "session-revoked" },
  { name: "a non-SPIFFE uri subject is ignored", event: CAEP.sessionRevoked, payload: {}, subId: { format: "uri", uri: "https://user.example.com/" }, result: "ignored", label: "session-revoked" },
  { name: "an opaque id that is not a fingerprint is ignored", event: CAEP.sessionRevoked, payload: {}, subId: { format: "opaque", id: "11112222333344445555" }, result: "ignored", label: "session-revoked" },
  { name: "a complex subject with only a session is ignored", event: CAEP.sessionRevoked, payload: {}, subId: { format: "complex", session: { format: "opaque", id: "s1" } }, result: "ignored", label: "session-revoked" },
  { name: "a credential created on an identity writes nothing", event: CAEP.credentialChange, payload: { credential_type: "app", change_type: "create" }, result: "ignored", label: "credential-change" },
  { name: "an assurance increase writes nothing", event: CAEP.assuranceLevelChange, payload: { namespace: "NIST-AAL", current_level: "nist-aal2", change_direction: "increase" }, result: "ignored", label: "assurance-level-change" },
  { name: "risc account-enabled cannot lift a revocation", event: RISC.accountEnabled, payload: {}, result: "ignored", label: "account-enabled" },
  { name: "caep session-established writes nothing", event: CAEP.sessionEstablished, payload: { acr: "x" }, result: "ignored", label: "session-established" },
  // Signals are kept only for what a decision looks up: a workload SPIFFE ID or a fingerprint.
  { name: "an iss_sub subject is ignored", event: RISC.accountDisabled, payload: {}, subId: { format: "iss_sub", iss: "https://idp.example.com/", sub: "145234573" }, result: "ignored", label: "account-disabled" },
  { name: "Google's legacy iss_sub subject_type is ignored", event: RISC.accountPurged, payload: {}, subId: { subject_type: "iss_sub", iss: "https://accounts.google.com/", sub: "7" }, result: "ignored", label: "account-purged" },
  { name: "risk of a credential writes nothing", event: CAEP.riskLevelChange, payload: { principal: "USER", current_level: "HIGH" }, subId: credential, result: "ignored", label: "risk-level-change" },
];

describe("SSF receiver: events that write nothing", () => {
  it.each(quiet)("$name", async ({ event, payload, subId, result, label }) => {
    const h = makeHarness({ jwksFile: jwks.path });
    const response = await h.post(await signSet(setClaims(event, payload, subId === undefined ? {} : { sub_id: subId }), rsa));
    expect(response.status).toBe(202);
    expect(response.body).toBe("");
    expect(h.store.written).toEqual([]);
    expect(await h.count(result, label)).toBe(1);
  });

  it("warns when the transmitter says the stream is paused", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    await h.post(await signSet(setClaims(SSF_EVENTS.streamUpdated, { status: "disabled" }, { sub_id: { format: "opaque", id: "s" } }), rsa));
    expect(h.logs.some((line) => line.includes("\"level\":40") && line.includes("not enabled"))).toBe(true);
  });
});
