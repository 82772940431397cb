// The pending-revocation backlog is capped (maxPendingRevocations) and never drops an entry: when
// it is full, a new revocation cannot be held by subject, so the sidecar holds everyone identified
// instead — every request carrying an identity or a credential is denied ("revocation backlog
// full") until restart — and every hold already queued stays. Nothing what should be revoked is
// allowed, and no hold is lifted, at any point.

import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApprovalBook } from "../../src/approvals/index.js";
import { parseConfig } from "../../src/config/index.js";
import { createDecider, Effects, type AccessRequest } from "../../src/decision/index.js";
import { createCallerResolver, fingerprintSecret as fp } from "../../src/identity/index.js";
import { compilePolicy, parsePolicyDocuments } from "../../src/policy/index.js";
import { createEmbeddedStore, type EmbeddedSignalStore } from "../../src/signals/index.js";
import { createMetrics, type Metrics } from "../../src/telemetry/index.js";
import { captureLogger } from "../signals/support.js";

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const ALICE = "spiffe://example.org/ns/ci/sa/alice";
const LEAKED = "key-leaked-0001";
const LEAKED_2 = "key-leaked-0002";
const ACTIVE = "key-active-0001";
/** Subjects the store refuses for a revocation: they stay pending (held here) for good. */
const STUCK = ["stuck-subject-1", "stuck-subject-2"];

const POLICY = `
apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: guards }
spec:
  destinations: ["*"]
  rules:
    - { name: revoked, when: signals.revoked, outcome: deny }
    - { name: compromised-credential, when: 'signals.credential in ["leaked", "compromised"]', outcome: revoke, revoke: [credential] }
    - { name: anyone-reads, methods: [GET], outcome: allow }
    - { name: approve-writes, methods: [POST], outcome: step_up, stepUp: { approvers: ["spiffe://example.org/ns/ops/sa/oncall"], grantTtlSeconds: 900, grantUses: 1 } }
`;

function request(principal: string, headers: Record<string, string>, method = "GET"): AccessRequest {
  return {
    receivedAt: NOW,
    source: { principal, certificate: "", address: "10.0.0.7", port: 40000 },
    destination: { principal: "spiffe://example.org/ns/svc/sa/svc", certificate: "", address: "10.0.0.8", port: 8443 },
    requestId: "r-1", method, path: "/things/1", host: "svc", scheme: "https", protocol: "HTTP/2",
    headers: { ":authority": "svc", ":method": method, ":path": "/things/1", ":scheme": "https", ...headers },
    body: "", contextExtensions: {}, sni: "", malformed: [],
  };
}

async function overflowCount(metrics: Metrics): Promise<number> {
  return (await metrics.revocationsOverflowed.get()).values[0]?.value ?? 0;
}

let store: EmbeddedSignalStore;

beforeAll(async () => {
  store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: pino({ level: "silent" }), now: () => NOW });
  await store.ready();
  for (const [secret, state] of [[LEAKED, "leaked"], [LEAKED_2, "leaked"], [ACTIVE, "active"]] as const) {
    await store.put({ id: `c-${secret}`, kind: "credential", subject: fp(secret), source: "test", observedAt: NOW - 60_000, data: { state } });
  }
});

afterAll(async () => {
  await store.close();
});

describe("a full revocation backlog", () => {
  it("holds every identified caller, keeps every queued hold, and never lifts either", async () => {
    const log = captureLogger();
    const metrics = createMetrics({ defaultMetrics: false });
    const effects = new Effects({ store, logger: log.logger, metrics, retryDelaysMs: [5], maxPending: STUCK.length });
    const policy = compilePolicy(parsePolicyDocuments(POLICY, "test.yaml"));
    const decide = createDecider({
      policy: () => policy,
      resolveCaller: createCallerResolver(parseConfig({}).identity),
      store, approvals: new ApprovalBook({ store, now: () => NOW }), effects, metrics, now: () => NOW,
    });

    // Fill the backlog with revocations the store refuses for good (they stay held here).
    for (const [i, subject] of STUCK.entries()) {
      effects.revoke({ subject, target: "credential", reason: "test", decisionId: `d-${String(i)}`, caller: ALICE, rule: "test", at: NOW });
    }
    await effects.drain();
    expect(effects.pendingCount).toBe(STUCK.length);
    expect(effects.overflowed).toBe(false);
    // Before the overflow, an active key reads.
    expect(decide(request(ALICE, { "x-api-key": ACTIVE })).outcome).toBe("allow");

    // A leaked key: the revocation cannot be queued; the decision is still a revoke.
    expect(decide(request(ALICE, { "x-api-key": LEAKED })).outcome).toBe("revoke");
    expect(effects.pendingRevoked(fp(LEAKED))).toBe(false);
    expect(effects.overflowed).toBe(true);
    expect(effects.pendingCount).toBe(STUCK.length);
    expect(await overflowCount(metrics)).toBe(1);
    expect(log.lines.filter((l) => String(l.msg).startsWith("revocation backlog full"))).toHaveLength(1);

    const rows: { name: string; principal: string; headers: Record<string, string>; method?: string; outcome: string; reason?: string }[] = [
      { name: "the leaked key again", principal: ALICE, headers: { "x-api-key": LEAKED }, outcome: "revoke" },
      { name: "the leaked key without an identity", principal: "", headers: { "x-api-key": LEAKED }, outcome: "revoke" },
      { name: "another leaked key", principal: ALICE, headers: { "x-api-key": LEAKED_2 }, outcome: "revoke" },
      { name: "an active key (its subject may be the one not queued)", principal: ALICE, headers: { "x-api-key": ACTIVE }, outcome: "deny", reason: "revocation backlog full" },
      { name: "an identity alone", principal: ALICE, headers: {}, outcome: "deny", reason: "revocation backlog full" },
      { name: "a credential alone", principal: "", headers: { "x-api-key": ACTIVE }, outcome: "deny", reason: "revocation backlog full" },
      { name: "a step-up (no approval opened)", principal: ALICE, headers: {}, method: "POST", outcome: "deny", reason: "revocation backlog full" },
      { name: "anonymous, no credential: nobody to hold", principal: "", headers: {}, outcome: "allow" },
    ];
    for (const row of rows) {
      const decision = decide(request(row.principal, row.headers, row.method));
      expect({ name: row.name, outcome: decision.outcome }).toEqual({ name: row.name, outcome: row.outcome });
      if (row.reason !== undefined) expect(decision.reason).toBe(row.reason);
    }
    expect(await overflowCount(metrics)).toBe(4); // the three revokes above found it full too

    // Nothing is lifted while running: the queued holds stay, and so does the overflow.
    await effects.drain();
    for (const subject of STUCK) expect(effects.pendingRevoked(subject)).toBe(true);
    expect(effects.overflowed).toBe(true);
    expect(effects.pendingCount).toBe(STUCK.length);
    expect((await metrics.revocationsPending.get()).values[0]?.value).toBe(STUCK.length);
    await effects.close();
    expect(effects.overflowed).toBe(true);
  });

  it("queues up to the cap and only then overflows", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const effects = new Effects({ store, logger: pino({ level: "silent" }), metrics, retryDelaysMs: [5], maxPending: 3 });
    for (let i = 0; i < 3; i++) {
      effects.revoke({ subject: `stuck-${String(i)}`, target: "credential", reason: "t", decisionId: `d${String(i)}`, caller: "", rule: "t", at: NOW });
      expect(effects.overflowed).toBe(false);
    }
    effects.revoke({ subject: "stuck-3", target: "credential", reason: "t", decisionId: "d3", caller: "", rule: "t", at: NOW });
    expect(effects.overflowed).toBe(true);
    expect(effects.pendingCount).toBe(3);
    await effects.close();
  });
});
