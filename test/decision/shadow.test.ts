// Shadow rollout and dry run. A shadow rule (or a whole policy marked shadow) is evaluated on
// every request and never enforced: the answer is what the policy without it gives, while the
// would-be outcome and rule go on the decision line and into vigil_shadow_decisions_total. The
// sidecar-wide dry run answers allow, starts no effect (no approval, no revocation), and says
// what would have happened.

import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApprovalBook } from "../../src/approvals/index.js";
import { parseConfig } from "../../src/config/index.js";
import { createDecider, Effects, type AccessRequest } from "../../src/decision/index.js";
import { createCallerResolver, fingerprintSecret } from "../../src/identity/index.js";
import { compilePolicy, parsePolicyDocuments } from "../../src/policy/index.js";
import { createEmbeddedStore, type EmbeddedSignalStore } from "../../src/signals/index.js";
import type { DecisionLine } from "../../src/telemetry/decision-log.js";
import { createMetrics } from "../../src/telemetry/index.js";

const NOW = Date.UTC(2026, 5, 10, 10, 0, 0);
const CI = "spiffe://example.org/ns/ci/sa/deployer";
const BOT = "spiffe://example.org/ns/agents/sa/bot";
const LEAKED_KEY = "demo-leaked-key-0001";

const ENFORCED = `
apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: api }
spec:
  destinations: [api]
  rules:
    - { name: read, methods: [GET], outcome: allow }
    - { name: write, methods: [POST], sources: ["${CI}"], outcome: allow }
    - { name: leaked, when: 'signals.credential == "leaked"', outcome: revoke, revoke: [credential] }
    - name: delete
      methods: [DELETE]
      outcome: step_up
      stepUp: { approvers: ["spiffe://example.org/ns/ops/sa/approver"] }
`;
const SHADOW_RULES = `
    - { name: no-bot-reads, shadow: true, methods: [GET], sources: ["${BOT}"], outcome: deny, controls: [NHI5] }
    - { name: open-patch, shadow: true, methods: [PATCH], outcome: allow }
`;
const SHADOW_POLICY = `
---
apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: tighten }
spec:
  destinations: [api]
  shadow: true
  rules:
    - { name: writes-need-approval, methods: [POST], outcome: step_up, stepUp: { approvers: ["spiffe://example.org/ns/ops/sa/approver"] } }
    - { name: still-enforced, shadow: false, methods: [PUT], outcome: deny }
`;

function request(principal: string, method: string, headers: Record<string, string> = {}): AccessRequest {
  return {
    receivedAt: NOW,
    source: { principal, certificate: "", address: "10.0.0.7", port: 40000 },
    destination: { principal: "", certificate: "", address: "10.0.0.8", port: 8443 },
    requestId: "r-1", method, path: "/things/1", host: "api", scheme: "https", protocol: "HTTP/2",
    headers: { ":authority": "api", ...headers }, body: "", contextExtensions: { destination: "api" }, sni: "", malformed: [],
  };
}

let store: EmbeddedSignalStore;
beforeAll(async () => {
  store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: pino({ level: "silent" }), now: () => NOW });
  await store.ready();
  await store.put({ id: "k", kind: "credential", subject: fingerprintSecret(LEAKED_KEY), source: "scanner", observedAt: NOW - 1000, data: { state: "leaked" } });
});
afterAll(async () => { await store.close(); });

function sidecar(policyText: string, dryRun = false) {
  const silent = pino({ level: "silent" });
  const metrics = createMetrics({ defaultMetrics: false });
  const effects = new Effects({ store, logger: silent, metrics });
  const revoked: string[] = [];
  const revoke = effects.revoke.bind(effects);
  effects.revoke = (effect) => { revoked.push(effect.subject); revoke(effect); };
  const lines: DecisionLine[] = [];
  const decisionLog = Object.assign((line: DecisionLine) => { lines.push(line); }, { close: () => Promise.resolve() });
  const approvals = new ApprovalBook({ store, now: () => NOW });
  const policy = compilePolicy(parsePolicyDocuments(policyText, "test.yaml"));
  const decide = createDecider({
    policy: () => policy, resolveCaller: createCallerResolver(parseConfig({}).identity),
    store, approvals, effects, metrics, decisionLog, now: () => NOW, dryRun,
  });
  return { decide, lines, metrics, revoked, approvals, policy };
}

const requests: { name: string; request: AccessRequest }[] = [
  { name: "a bot read", request: request(BOT, "GET") },
  { name: "a CI read", request: request(CI, "GET") },
  { name: "a CI write", request: request(CI, "POST") },
  { name: "a bot write", request: request(BOT, "POST") },
  { name: "a patch", request: request(CI, "PATCH") },
  { name: "a put", request: request(CI, "PUT") },
  { name: "a delete", request: request(CI, "DELETE") },
  { name: "nobody", request: request("", "GET") },
];

describe("shadow rules", () => {
  it.each(requests)("never change the answer: $name", ({ request: req }) => {
    const plain = sidecar(`${ENFORCED}    - { name: still-enforced-put, methods: [PUT], outcome: deny }\n`);
    const shadowed = sidecar(`${ENFORCED}${SHADOW_RULES}${SHADOW_POLICY}`);
    const a = plain.decide({ ...req });
    const b = shadowed.decide({ ...req });
    expect(b.outcome).toBe(a.outcome);
    expect(b.reason).toBe(a.reason);
    expect(b.rule === a.rule || (a.rule === "api/still-enforced-put" && b.rule === "tighten/still-enforced")).toBe(true);
  });

  it("write the would-be outcome and rule on the decision line, and count them", async () => {
    const { decide, lines, metrics } = sidecar(`${ENFORCED}${SHADOW_RULES}${SHADOW_POLICY}`);
    for (const { request: req } of requests) decide({ ...req });
    const byMethodAndCaller = lines.map((l) => [l.method, l.caller, l.outcome, l.rule, l.shadow_outcome, l.shadow_rule]);
    expect(byMethodAndCaller).toEqual([
      ["GET", BOT, "allow", "api/read", "deny", "api/no-bot-reads"],
      ["GET", CI, "allow", "api/read", "", ""],
      ["POST", CI, "allow", "api/write", "step_up", "tighten/writes-need-approval"],
      ["POST", BOT, "deny", "", "step_up", "tighten/writes-need-approval"],
      ["PATCH", CI, "deny", "", "allow", "api/open-patch"],
      ["PUT", CI, "deny", "tighten/still-enforced", "", ""],
      ["DELETE", CI, "step_up", "api/delete", "", ""],
      ["GET", "", "allow", "api/read", "", ""],
    ]);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^vigil_shadow_decisions_total\{policy="api",rule="no-bot-reads",outcome="deny"\} 1$/m);
    expect(text).toMatch(/^vigil_shadow_decisions_total\{policy="tighten",rule="writes-need-approval",outcome="step_up"\} 2$/m);
    expect(text).toMatch(/^vigil_shadow_decisions_total\{policy="api",rule="open-patch",outcome="allow"\} 1$/m);
    expect(text).toMatch(/^vigil_decisions_total\{outcome="allow"\} 4$/m);
  });

  it("cost nothing when a policy has none", () => {
    const { decide, lines, policy } = sidecar(ENFORCED);
    expect(policy.hasShadow).toBe(false);
    decide(request(BOT, "GET"));
    expect(lines[0]).toMatchObject({ shadow_outcome: "", shadow_rule: "" });
  });
});

describe("dry run", () => {
  it("answers allow for every refusal, starts no effect, and says what would have happened", async () => {
    const { decide, lines, metrics, revoked, approvals } = sidecar(ENFORCED, true);
    const step = decide(request(CI, "DELETE"));
    const revoke = decide(request(CI, "GET", { "x-api-key": LEAKED_KEY }));
    const none = decide(request(BOT, "POST"));
    const allow = decide(request(CI, "GET"));
    for (const d of [step, revoke, none, allow]) expect(d.outcome).toBe("allow");
    expect(step).toMatchObject({ rule: "vigil/dry-run", reason: "dry run: would have been step_up" });
    expect(step.approvalId).toBeUndefined();
    expect(allow.rule).toBe("api/read");
    expect(revoked).toEqual([]);
    expect(approvals.list("pending")).toEqual([]);
    expect(lines.map((l) => [l.outcome, l.dry_run, l.would_outcome, l.would_rule])).toEqual([
      ["allow", true, "step_up", "api/delete"],
      ["allow", true, "revoke", "api/leaked"],
      ["allow", true, "deny", ""],
      ["allow", false, "", ""],
    ]);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^vigil_dry_run_decisions_total\{outcome="revoke"\} 1$/m);
    expect(text).toMatch(/^vigil_decisions_total\{outcome="allow"\} 4$/m);
  });

  it("still denies a request it could not even read", () => {
    const { decide } = sidecar(ENFORCED, true);
    expect(decide({ ...request(CI, "GET"), malformed: ["headers exceed 65536 bytes"] }).outcome).toBe("deny");
  });
});
