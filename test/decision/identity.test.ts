// The identity → signals → decision steps of the pipeline, table by table: every presented
// credential is read against the store (the worst state wins), identity problems deny whatever the
// policy says, reach the policy and the decision log, and a revocation targets the bad credential.

import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApprovalBook } from "../../src/approvals/index.js";
import { parseConfig } from "../../src/config/index.js";
import { createDecider, Effects, IDENTITY_RULE, readSignals, type AccessRequest } from "../../src/decision/index.js";
import { createCallerResolver, fingerprintSecret, type Caller, type Credential } from "../../src/identity/index.js";
import { compilePolicy, parsePolicyDocuments } from "../../src/policy/index.js";
import { createEmbeddedStore, type EmbeddedSignalStore } from "../../src/signals/index.js";
import type { DecisionLine } from "../../src/telemetry/decision-log.js";
import { createMetrics } from "../../src/telemetry/index.js";

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const ALICE = "spiffe://example.org/ns/ci/sa/alice";
const BOB = "spiffe://example.org/ns/ci/sa/bob";

const fp = fingerprintSecret;
const ACTIVE = "key-active-0001";
const ACTIVE_2 = "key-active-0002";
const ACTIVE_3 = "key-active-0003"; // revoked by a row below: used by no other row
const LEAKED = "key-leaked-0001";
const COMPROMISED = "key-compromised-0001";
const EXPIRED = "key-expired-0001";
const OVERDUE = "key-overdue-0001";
const REVOKED = "key-revoked-0001";
const UNKNOWN = "key-nobody-knows";

const POLICY = `
apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: guards }
spec:
  destinations: ["*"]
  rules:
    - { name: revoked, when: signals.revoked, outcome: deny }
    - name: compromised-credential
      when: signals.credential in ["leaked", "compromised"]
      outcome: revoke
      revoke: [credential]
    - { name: dead-credential, when: 'signals.credential in ["revoked", "expired"]', outcome: deny }
    - { name: overdue-credential, when: signals.credential_overdue, outcome: deny, revoke: [credential] }
---
apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: open }
spec:
  destinations: ["*"]
  rules:
    # Source-less: anyone may GET. Identity problems must still deny.
    - { name: anyone-reads, methods: [GET], outcome: allow }
    - { name: risky-write, methods: [DELETE], outcome: revoke, revoke: [credential] }
    - { name: owned-key, methods: [PUT], when: 'signals.credential == "active" && signals.credential_owner == source.spiffe_id', outcome: allow }
    # What CEL sees of identity problems and of every presented credential.
    - { name: refuse-invalid-principal, methods: [POST], when: '"invalid_principal" in source.problems', outcome: deny }
    - { name: accept-post, methods: [POST], outcome: allow }
    - name: several-keys
      methods: [PATCH]
      when: 'size(source.credential_fingerprints) > 1 && "unknown" in signals.credential_states'
      outcome: delay
      retryAfterSeconds: 60
    - { name: accept-patch, methods: [PATCH], outcome: allow }
`;

function request(principal: string, headers: Record<string, string>, method = "GET"): AccessRequest {
  return {
    receivedAt: NOW,
    source: { principal, certificate: "", address: "10.0.0.7", port: 40000 },
    destination: { principal: "spiffe://example.org/ns/svc/sa/svc", certificate: "", address: "10.0.0.8", port: 8443 },
    requestId: "r-1",
    method,
    path: "/things/1",
    host: "svc",
    scheme: "https",
    protocol: "HTTP/2",
    headers: { ":authority": "svc", ":method": method, ":path": "/things/1", ":scheme": "https", ...headers },
    body: "",
    contextExtensions: {},
    sni: "",
    malformed: [],
  };
}

let store: EmbeddedSignalStore;

beforeAll(async () => {
  store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: pino({ level: "silent" }), now: () => NOW });
  await store.ready();
  const credential = (secret: string, data: Record<string, unknown>) => store.put({
    id: `c-${secret}`, kind: "credential", subject: fp(secret), source: "test", observedAt: NOW - 60_000, data: data as { state: "active" },
  });
  await credential(ACTIVE, { state: "active", owner: ALICE });
  await credential(ACTIVE_2, { state: "active", owner: BOB });
  await credential(ACTIVE_3, { state: "active", owner: ALICE });
  await credential(LEAKED, { state: "leaked", owner: BOB });
  await credential(COMPROMISED, { state: "compromised", owner: BOB });
  await credential(EXPIRED, { state: "expired" });
  await credential(OVERDUE, { state: "active", owner: ALICE, rotateBy: NOW - 1000 });
  await store.put({
    id: "rv-1", kind: "revocation", subject: fp(REVOKED), source: "test", observedAt: NOW - 60_000,
    data: { revoked: true, reason: "test", by: "test" },
  });
});

afterAll(async () => {
  await store.close();
});

function callerWith(secrets: string[], spiffeId = ALICE): Caller {
  const credentials: Credential[] = secrets.map((s) => ({ header: "x-api-key", scheme: "api_key", fingerprint: fp(s) }));
  return {
    spiffeId, trustDomain: "example.org", path: "/ns/ci/sa/alice", source: "mtls_principal",
    credentials, problems: [], refused: false, headersToRemove: [],
  };
}

describe("the signals step reads every presented credential", () => {
  const effects = { pendingRevoked: () => false };
  it.each([
    { secrets: [], credential: "none", states: [], owner: "", overdue: false, revoked: false, suspects: [] },
    { secrets: [ACTIVE], credential: "active", states: ["active"], owner: ALICE, overdue: false, revoked: false, suspects: [] },
    { secrets: [UNKNOWN], credential: "unknown", states: ["unknown"], owner: "", overdue: false, revoked: false, suspects: [] },
    { secrets: [ACTIVE, UNKNOWN], credential: "unknown", states: ["active", "unknown"], owner: "", overdue: false, revoked: false, suspects: [] },
    { secrets: [UNKNOWN, LEAKED], credential: "leaked", states: ["unknown", "leaked"], owner: BOB, overdue: false, revoked: false, suspects: [LEAKED] },
    { secrets: [LEAKED, UNKNOWN], credential: "leaked", states: ["leaked", "unknown"], owner: BOB, overdue: false, revoked: false, suspects: [LEAKED] },
    { secrets: [LEAKED, COMPROMISED], credential: "compromised", states: ["leaked", "compromised"], owner: BOB, overdue: false, revoked: false, suspects: [LEAKED, COMPROMISED] },
    { secrets: [EXPIRED, LEAKED], credential: "leaked", states: ["expired", "leaked"], owner: BOB, overdue: false, revoked: false, suspects: [EXPIRED, LEAKED] },
    { secrets: [ACTIVE, EXPIRED], credential: "expired", states: ["active", "expired"], owner: "", overdue: false, revoked: false, suspects: [EXPIRED] },
    { secrets: [ACTIVE_2, ACTIVE], credential: "active", states: ["active", "active"], owner: BOB, overdue: false, revoked: false, suspects: [] },
    { secrets: [ACTIVE, OVERDUE], credential: "active", states: ["active", "active"], owner: ALICE, overdue: true, revoked: false, suspects: [OVERDUE] },
    { secrets: [UNKNOWN, REVOKED], credential: "unknown", states: ["unknown", "unknown"], owner: "", overdue: false, revoked: true, suspects: [REVOKED] },
  ])("$secrets → credential $credential", ({ secrets, credential, states, owner, overdue, revoked, suspects }) => {
    const read = readSignals(store, effects, callerWith(secrets), {}, NOW);
    expect(read.view).toMatchObject({
      credential, credential_states: states, credential_owner: owner, credential_overdue: overdue, revoked,
    });
    expect(read.suspects).toEqual(suspects.map(fp));
  });

  it("counts a revocation still on its way to the store, for any presented credential", () => {
    const pending = new Set([fp(ACTIVE_2)]);
    const read = readSignals(store, { pendingRevoked: (s) => pending.has(s) }, callerWith([ACTIVE, ACTIVE_2]), {}, NOW);
    expect(read.view.revoked).toBe(true);
    expect(read.suspects).toEqual([fp(ACTIVE_2)]);
  });
});

describe("the pipeline: identity problems deny, reach policy and log; revocations hit the bad credential", () => {
  const setup = (onProblem: "deny" | "policy") => {
    const silent = pino({ level: "silent" });
    const metrics = createMetrics({ defaultMetrics: false });
    const effects = new Effects({ store, logger: silent, metrics });
    const revoked: string[] = [];
    const revoke = effects.revoke.bind(effects);
    effects.revoke = (effect) => { revoked.push(effect.subject); revoke(effect); };
    const lines: DecisionLine[] = [];
    const decisionLog = Object.assign((line: DecisionLine) => { lines.push(line); }, { close: () => Promise.resolve() });
    const policy = compilePolicy(parsePolicyDocuments(POLICY, "test.yaml"));
    const decide = createDecider({
      policy: () => policy,
      resolveCaller: createCallerResolver(parseConfig({ identity: { onProblem } }).identity),
      store, approvals: new ApprovalBook({ store, now: () => NOW }), effects, metrics, decisionLog, now: () => NOW,
    });
    return { decide, revoked, lines, effects };
  };

  interface Row {
    name: string; principal: string; headers: Partial<Record<"authorization" | "x-api-key", string>>; method?: string;
    outcome: string; rule: string; problems: string[]; revoked: string[];
  }
  it.each<Row>([
    { name: "a clean caller with an active key", principal: ALICE, headers: { "x-api-key": ACTIVE }, outcome: "allow", rule: "open/anyone-reads", problems: [], revoked: [] },
    { name: "anonymous with no credential (the source-less rule)", principal: "", headers: {}, outcome: "allow", rule: "open/anyone-reads", problems: [], revoked: [] },
    { name: "an invalid principal", principal: "alice.ci.svc", headers: {}, outcome: "deny", rule: IDENTITY_RULE, problems: ["invalid_principal"], revoked: [] },
    { name: "an invalid principal where no rule matches", principal: "alice.ci.svc", headers: {}, method: "PUT", outcome: "deny", rule: IDENTITY_RULE, problems: ["invalid_principal"], revoked: [] },
    { name: "an invalid principal with a leaked key (the guard's revoke stands)", principal: "alice.ci.svc", headers: { "x-api-key": LEAKED }, outcome: "revoke", rule: "guards/compromised-credential", problems: ["invalid_principal"], revoked: [LEAKED] },
    { name: "an empty authorization header", principal: ALICE, headers: { authorization: "" }, outcome: "deny", rule: IDENTITY_RULE, problems: ["empty_credential"], revoked: [] },
    { name: "Bearer without token", principal: ALICE, headers: { authorization: "Bearer " }, outcome: "deny", rule: IDENTITY_RULE, problems: ["malformed_credential"], revoked: [] },
    { name: "two differing bearer tokens", principal: ALICE, headers: { authorization: `Bearer ${ACTIVE},Bearer ${ACTIVE_2}` }, outcome: "deny", rule: IDENTITY_RULE, problems: ["ambiguous_credential"], revoked: [] },
    { name: "a decoy bearer before a leaked key", principal: ALICE, headers: { authorization: `Bearer ${UNKNOWN}`, "x-api-key": LEAKED }, outcome: "revoke", rule: "guards/compromised-credential", problems: [], revoked: [LEAKED] },
    { name: "a leaked bearer joined after a decoy", principal: ALICE, headers: { authorization: `Bearer ${UNKNOWN}, Bearer ${LEAKED}` }, outcome: "revoke", rule: "guards/compromised-credential", problems: ["ambiguous_credential"], revoked: [LEAKED] },
    { name: "an overdue key beside an active one", principal: ALICE, headers: { authorization: `Bearer ${ACTIVE}`, "x-api-key": OVERDUE }, outcome: "deny", rule: "guards/overdue-credential", problems: [], revoked: [OVERDUE] },
    { name: "a revoke rule with no bad key revokes every presented key", principal: ALICE, headers: { authorization: `Bearer ${ACTIVE_3}`, "x-api-key": "key-nobody-knows-2" }, method: "DELETE", outcome: "revoke", rule: "open/risky-write", problems: [], revoked: [ACTIVE_3, "key-nobody-knows-2"] },
    { name: "an owner check sees the decoy's unknown state, not the owned key alone", principal: ALICE, headers: { "x-api-key": ACTIVE, authorization: `Bearer ${UNKNOWN}` }, method: "PUT", outcome: "deny", rule: "", problems: [], revoked: [] },
    { name: "an owned active key passes the owner check", principal: ALICE, headers: { "x-api-key": ACTIVE }, method: "PUT", outcome: "allow", rule: "open/owned-key", problems: [], revoked: [] },
  ])("$name → $outcome", ({ principal, headers, method, outcome, rule, problems, revoked }) => {
    const run = setup("deny");
    const decision = run.decide(request(principal, headers, method));
    expect({ outcome: decision.outcome, rule: decision.rule }).toEqual({ outcome, rule });
    expect(run.revoked).toEqual(revoked.map(fp));
    expect(run.lines).toHaveLength(1);
    expect(run.lines[0]?.identity_problems).toEqual(problems);
    // The line names the workload the request was judged under (here the sidecar's own SVID), not the Host.
    expect(run.lines[0]?.destination).toBe("spiffe://example.org/ns/svc/sa/svc");
    const fingerprints = [headers.authorization, headers["x-api-key"]].filter((v) => v !== undefined);
    expect(decision.credentialFingerprint.split(",").filter((f) => f !== "")).toHaveLength(
      new Set(fingerprints.flatMap((v) => v.split(",")).filter((v) => v.trim() !== "" && v.trim() !== "Bearer")).size,
    );
    if (rule === IDENTITY_RULE) expect(decision.reason).toMatch(/^identity refused: /);
    // Never a secret in what the decision or its log line says.
    const text = JSON.stringify([decision, run.lines]);
    for (const secret of [ACTIVE, ACTIVE_2, ACTIVE_3, LEAKED, OVERDUE, UNKNOWN]) expect(text).not.toContain(secret);
  });

  it("with identity.onProblem \"policy\", the policy sees source.problems and decides", () => {
    const run = setup("policy");
    const anonymous = run.decide(request("alice.ci.svc", {}));
    expect(anonymous).toMatchObject({ outcome: "allow", rule: "open/anyone-reads" });
    expect(run.lines[0]?.identity_problems).toEqual(["invalid_principal"]);
  });

  it.each<{ principal: string; headers: Record<string, string>; method: string; outcome: string; rule: string }>([
    { principal: "alice.ci.svc", headers: {}, method: "POST", outcome: "deny", rule: "open/refuse-invalid-principal" },
    { principal: ALICE, headers: {}, method: "POST", outcome: "allow", rule: "open/accept-post" },
    { principal: ALICE, headers: { "x-api-key": ACTIVE, authorization: `Bearer ${UNKNOWN}` }, method: "PATCH", outcome: "delay", rule: "open/several-keys" },
    { principal: ALICE, headers: { "x-api-key": ACTIVE }, method: "PATCH", outcome: "allow", rule: "open/accept-patch" },
  ])("CEL sees source.problems, source.credential_fingerprints and signals.credential_states: $method → $rule", ({ principal, headers, method, outcome, rule }) => {
    const run = setup("policy");
    expect(run.decide(request(principal, headers, method))).toMatchObject({ outcome, rule });
  });
});
