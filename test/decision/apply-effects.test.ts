// The effects phase, table by table: what a decision starts besides its answer. A step_up uses an
// approved grant for exactly its scope (becoming allow) or opens an approval; a revoke, or a
// rule's revoke list, queues revocations of the right subjects, and none of a subject the signals
// phase already found revoked.

import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { ApprovalBook, scopeOf } from "../../src/approvals/index.js";
import { parseConfig } from "../../src/config/index.js";
import {
  applyEffects, Effects, GRANT_REASON, readSignals, requestView, resourceOf, type AccessRequest, type Decision, type Outcome,
} from "../../src/decision/index.js";
import { fingerprintSecret, type Caller } from "../../src/identity/index.js";
import type { PolicyResult } from "../../src/policy/types.js";
import { createEmbeddedStore, type EmbeddedSignalStore } from "../../src/signals/index.js";
import { createMetrics } from "../../src/telemetry/index.js";

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const ALICE = "spiffe://example.org/ns/ci/sa/alice";
const APPROVER = "spiffe://example.org/ns/ops/sa/approver";
const DEST = "spiffe://example.org/ns/prod/sa/api";
const GOOD = fingerprintSecret("good-key-0001");
const LEAKED = fingerprintSecret("leaked-key-0001");
const HELD = fingerprintSecret("held-revoked-0001");

const REQUEST: AccessRequest = {
  receivedAt: NOW,
  source: { principal: ALICE, certificate: "", address: "", port: 0 },
  destination: { principal: DEST, certificate: "", address: "", port: 0 },
  requestId: "r", method: "POST", path: "/v1/deploy", host: "api", scheme: "https", protocol: "HTTP/2",
  headers: {}, body: "", contextExtensions: {}, sni: "", malformed: [],
};
const VIEW = requestView(REQUEST, DEST);

function caller(spiffeId: string, fingerprints: string[]): Caller {
  return {
    spiffeId, trustDomain: spiffeId === "" ? "" : "example.org", path: "", source: spiffeId === "" ? "none" : "mtls_principal",
    credentials: fingerprints.map((fingerprint) => ({ header: "x-api-key", scheme: "api_key" as const, fingerprint })),
    problems: [], refused: false, headersToRemove: [],
  };
}

function result(outcome: Outcome, revoke: PolicyResult["revoke"] = [], rule = "p/guard"): PolicyResult {
  return { outcome, rule, reason: `${outcome} by ${rule}`, revoke, privileged: false, stepUp: { approvers: [APPROVER], grantTtlSeconds: 60, grantUses: 1 } };
}

function decisionFor(id: string, r: PolicyResult, c: Caller): Decision {
  return { id, outcome: r.outcome, rule: r.rule, reason: r.reason, caller: c.spiffeId, trustDomain: c.trustDomain, credentialFingerprint: "", headersToRemove: [], durationNs: 0 };
}

let n = 0;
const stores: EmbeddedSignalStore[] = [];

/** A store of its own per run: revocations one row queues land in the store and must not reach the next. */
async function freshStore(): Promise<EmbeddedSignalStore> {
  const store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: pino({ level: "silent" }), now: () => NOW });
  stores.push(store);
  await store.ready();
  await store.put({ id: "c-good", kind: "credential", subject: GOOD, source: "test", observedAt: NOW - 1000, data: { state: "active", owner: ALICE } });
  await store.put({ id: "c-leaked", kind: "credential", subject: LEAKED, source: "test", observedAt: NOW - 1000, data: { state: "leaked", owner: ALICE } });
  await store.put({ id: "r-held", kind: "revocation", subject: HELD, source: "test", observedAt: NOW - 1000, data: { revoked: true, reason: "t", by: "t" } });
  return store;
}

afterAll(async () => {
  for (const store of stores) await store.close();
});

async function run(r: PolicyResult, c: Caller, given?: { store: EmbeddedSignalStore; approvals: ApprovalBook }) {
  const store = given?.store ?? await freshStore();
  const logger = pino({ level: "silent" });
  const effects = new Effects({ store, logger, metrics: createMetrics({ defaultMetrics: false }), retryDelaysMs: [1] });
  const approvals = given?.approvals ?? new ApprovalBook({ store, now: () => NOW });
  const signals = readSignals(store, effects, c, REQUEST.headers, NOW);
  const decision = decisionFor(`d-${String(++n)}`, r, c);
  await applyEffects({ store, approvals, effects }, decision, { result: r, caller: c, view: VIEW, signals, at: NOW });
  return { decision, effects, approvals };
}

describe("revocations: which subjects a decision queues", () => {
  it.each([
    { name: "revoke, no list, a leaked key beside a good one: the leaked key", r: result("revoke"), c: caller(ALICE, [GOOD, LEAKED]), queued: [LEAKED], notQueued: [GOOD, ALICE] },
    { name: "revoke, no list, only good keys: every presented key", r: result("revoke"), c: caller(ALICE, [GOOD]), queued: [GOOD], notQueued: [ALICE] },
    { name: "revoke, no list, no key: the identity", r: result("revoke"), c: caller(ALICE, []), queued: [ALICE], notQueued: [] },
    { name: "revoke, no list, nobody: nothing", r: result("revoke"), c: caller("", []), queued: [], notQueued: [] },
    { name: "deny + revoke [identity]", r: result("deny", ["identity"]), c: caller(ALICE, [LEAKED]), queued: [ALICE], notQueued: [LEAKED] },
    { name: "deny + revoke [credential, identity]", r: result("deny", ["credential", "identity"]), c: caller(ALICE, [LEAKED]), queued: [LEAKED, ALICE], notQueued: [] },
    { name: "a plain deny queues nothing", r: result("deny"), c: caller(ALICE, [LEAKED]), queued: [], notQueued: [LEAKED, ALICE] },
    { name: "a key the store already holds revoked is not queued again", r: result("revoke"), c: caller(ALICE, [HELD]), queued: [], notQueued: [HELD] },
  ])("$name", async ({ r, c, queued, notQueued }) => {
    const { effects, decision } = await run(r, c);
    for (const subject of queued) expect(effects.pendingRevoked(subject), subject).toBe(true);
    for (const subject of notQueued) expect(effects.pendingRevoked(subject), subject).toBe(false);
    expect(effects.pendingCount).toBe(queued.length);
    expect(decision.outcome).toBe(r.outcome);
  });
});

describe("step-up: a grant for exactly this scope turns it into allow, otherwise an approval is opened", () => {
  it("opens an approval with the scope scopeOf names, and the credential owner the signals read", async () => {
    const { decision, approvals } = await run(result("step_up"), caller(ALICE, [GOOD]));
    expect(decision.outcome).toBe("step_up");
    const approval = approvals.get(decision.approvalId ?? "");
    const scoped = scopeOf({ caller: ALICE, rule: "p/guard", destination: DEST, resource: resourceOf(VIEW) });
    expect(approval).toMatchObject({ scope: scoped.scope, grantName: scoped.grantName, credentialOwner: ALICE, approvers: [APPROVER], resource: "POST /v1/deploy" });
  });

  it("without a caller identity stays step_up without an approval", async () => {
    const { decision } = await run(result("step_up"), caller("", [GOOD]));
    expect(decision.outcome).toBe("step_up");
    expect(decision.approvalId).toBeUndefined();
  });

  it.each([
    { name: "the approved scope: allow, once", rule: "p/guard", uses: ["allow", "step_up"] },
    { name: "another rule's scope: no grant", rule: "p/other", uses: ["step_up", "step_up"] },
  ])("$name", async ({ rule, uses }) => {
    // An approved grant for p/guard's scope.
    const store = await freshStore();
    const approvals = new ApprovalBook({ store, now: () => NOW });
    const opened = approvals.open({
      caller: ALICE, credentialOwner: "", rule: "p/guard", destination: DEST, resource: resourceOf(VIEW), approvers: [APPROVER], grantTtlSeconds: 60, grantUses: 1,
    });
    await approvals.approve(opened?.id ?? "", APPROVER);
    const seen = [
      (await run(result("step_up", [], rule), caller(ALICE, []), { store, approvals })).decision,
      (await run(result("step_up", [], rule), caller(ALICE, []), { store, approvals })).decision,
    ];
    expect(seen.map((d) => d.outcome)).toEqual(uses);
    if (uses[0] === "allow") expect(seen[0]?.reason).toBe(GRANT_REASON);
  });
});
