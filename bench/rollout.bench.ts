// What issue #11's rollout features add to one in-process decision: the explanation of a refusal
// (`CompiledPolicy.explain` walks the candidate rules a second time on every non-allow decision)
// and a shadow rule (a policy holding one evaluates its shadow index on every request).
//
// The world is the example policy (examples/policies) with examples/signals.yaml, judging
// examples/requests/deploy-staging.json at a fixed time (Monday 10:00 UTC). The same request is an
// allow (the deployer's risk is low) or a deny (a second store where the deployer's risk is
// critical: guards/critical-risk). Each decision is a full createDecider call (identity, signals,
// policy, effects, metrics; no log line, as in the decision bench).
//
// The machine these run on is shared and loaded, so wall-clock times drift by more than the figures
// sought: every variant is measured as CPU time (process.cpuUsage) in ONE process, each pair in
// ABBA order per round (base, variant, variant, base), and reported as medians with ranges:
// - explain: a deny with the explanation vs the same deny with `explain` hidden from the pipeline
//   (the policy wrapped without it); also `explain` alone on the deny's input;
// - shadow: the example policy plus one shadow rule (on deploy-api POSTs, the rule evaluated and
//   not matching: the common case) vs the example policy, for the allow and for the deny; also
//   `wouldBe` alone.
// Run: node --import tsx bench/rollout.bench.ts [--quick]

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { ApprovalBook } from "../src/approvals/index.js";
import { parseConfig } from "../src/config/index.js";
import { createPipeline, Effects, type AccessRequest, type Pipeline } from "../src/decision/index.js";
import { createCallerResolver } from "../src/identity/index.js";
import { compilePolicy, loadPolicyDir, type CompiledPolicy, type PolicyInput } from "../src/policy/index.js";
import { createEmbeddedStore, loadSignalsFile, type SignalStore } from "../src/signals/index.js";
import { createMetrics } from "../src/telemetry/index.js";
import { decodeCheckRequest, DEFAULT_MAX_HEADER_BYTES, encodeCheckRequestJson } from "../src/transport/envoy/index.js";
import { abba, cpuUs, median, range, round, type BenchResult } from "./lib.js";

const NOW = Date.parse("2026-11-02T10:00:00Z");
const DEPLOYER = "spiffe://example.org/ns/ci/sa/deployer";
const silent = pino({ level: "silent" });

const SHADOW_POLICY = `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: rollout-bench }
spec:
  destinations: ["deploy-api"]
  rules:
    # Being rolled out: deploys from a caller at medium risk or worse would be refused.
    - name: deploy-needs-low-risk
      shadow: true
      sources: ["spiffe://example.org/ns/ci/**"]
      methods: [POST]
      paths: ["/v1/deploy"]
      when: signals.risk in ["medium", "high", "critical"]
      outcome: deny
      reason: deploys need low risk
`;

async function loadPolicies(): Promise<{ plain: CompiledPolicy; shadowed: CompiledPolicy }> {
  const plain = compilePolicy((await loadPolicyDir("examples/policies")).documents);
  const dir = mkdtempSync(join(tmpdir(), "vigil-rollout-bench-"));
  try {
    cpSync("examples/policies", dir, { recursive: true });
    writeFileSync(join(dir, "rollout-bench.yaml"), SHADOW_POLICY);
    const shadowed = compilePolicy((await loadPolicyDir(dir)).documents);
    if (shadowed.hasShadow !== true) throw new Error("the shadow rule was not compiled as shadow");
    return { plain, shadowed };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The policy as a pipeline sees it, without `explain` (so refusals carry no explanation). */
function withoutExplain(policy: CompiledPolicy): CompiledPolicy {
  return { ruleCount: policy.ruleCount, rules: policy.rules, version: policy.version, evaluate: (input) => policy.evaluate(input) };
}

async function seededStore(riskCritical: boolean): Promise<SignalStore> {
  const store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: silent, now: () => NOW });
  await store.ready();
  for (const seed of await loadSignalsFile("examples/signals.yaml")) await store.put(seed);
  if (riskCritical) {
    await store.put({ id: "bench-critical", kind: "risk", subject: DEPLOYER, source: "bench", observedAt: NOW - 60_000, data: { level: "critical" } });
  }
  return store;
}

export async function runRolloutBench(options: { rounds?: number; iterations?: number } = {}): Promise<BenchResult> {
  const rounds = options.rounds ?? 21;
  const iterations = options.iterations ?? 20_000;
  const { plain, shadowed } = await loadPolicies();
  const request: AccessRequest = decodeCheckRequest(
    encodeCheckRequestJson(JSON.parse(readFileSync("examples/requests/deploy-staging.json", "utf8")) as unknown), DEFAULT_MAX_HEADER_BYTES);
  request.receivedAt = NOW;
  const stores = { low: await seededStore(false), critical: await seededStore(true) };
  const metrics = createMetrics({ defaultMetrics: false });
  const closers: (() => Promise<void>)[] = [];
  const pipeline = (policy: CompiledPolicy, store: SignalStore): Pipeline => {
    const effects = new Effects({ store, logger: silent, metrics });
    closers.push(() => effects.close());
    return createPipeline({
      policy: () => policy, resolveCaller: createCallerResolver(parseConfig({}).identity), store,
      approvals: new ApprovalBook({ store, now: () => NOW }), effects, metrics, now: () => NOW,
    });
  };
  const pipelines = {
    allow: pipeline(plain, stores.low),
    allowShadow: pipeline(shadowed, stores.low),
    deny: pipeline(plain, stores.critical),
    denyNoExplain: pipeline(withoutExplain(plain), stores.critical),
    denyShadow: pipeline(shadowed, stores.critical),
  };
  type Variant = keyof typeof pipelines;
  // What each variant decides, checked before anything is timed: the comparison is only fair if so.
  const expected: Record<Variant, [string, boolean]> = {
    allow: ["allow", false], allowShadow: ["allow", false], deny: ["deny", true], denyNoExplain: ["deny", false], denyShadow: ["deny", true],
  };
  let denyInput: PolicyInput | undefined;
  let denyShadowLine = "";
  for (const [name, p] of Object.entries(pipelines) as [Variant, Pipeline][]) {
    const j = p.judge(request);
    p.record(j);
    const [outcome, explained] = expected[name];
    if (j.decision.outcome !== outcome || (j.decision.matched !== undefined) !== explained) {
      throw new Error(`rollout bench: ${name} decided ${j.decision.outcome} (matched ${JSON.stringify(j.decision.matched)}), expected ${outcome}`);
    }
    if (name === "deny") denyInput = j.input;
    if (name === "denyShadow") denyShadowLine = j.decision.shadow === undefined ? "none" : `${j.decision.shadow.outcome} by ${j.decision.shadow.rule}`;
  }
  if (denyInput === undefined) throw new Error("rollout bench: no deny input");
  const input = denyInput;
  const denyResult = plain.evaluate(input);

  let sink = 0;
  const runs: Record<Variant | "explainAlone" | "wouldBeAlone", () => void> = {
    allow: () => { for (let i = 0; i < iterations; i++) pipelines.allow.record(pipelines.allow.judge(request)); },
    allowShadow: () => { for (let i = 0; i < iterations; i++) pipelines.allowShadow.record(pipelines.allowShadow.judge(request)); },
    deny: () => { for (let i = 0; i < iterations; i++) pipelines.deny.record(pipelines.deny.judge(request)); },
    denyNoExplain: () => { for (let i = 0; i < iterations; i++) pipelines.denyNoExplain.record(pipelines.denyNoExplain.judge(request)); },
    denyShadow: () => { for (let i = 0; i < iterations; i++) pipelines.denyShadow.record(pipelines.denyShadow.judge(request)); },
    explainAlone: () => { for (let i = 0; i < iterations; i++) sink += plain.explain?.(input).length ?? 0; },
    wouldBeAlone: () => { for (let i = 0; i < iterations; i++) sink += shadowed.wouldBe?.(input, denyResult) === undefined ? 0 : 1; },
  };
  type Run = keyof typeof runs;
  const time = (name: Run): number => cpuUs(runs[name]) / iterations;
  for (let w = 0; w < 3; w++) for (const name of Object.keys(runs) as Run[]) time(name);

  const explain = abba(time, "denyNoExplain", "deny", rounds);
  const shadowAllow = abba(time, "allow", "allowShadow", rounds);
  const shadowDeny = abba(time, "deny", "denyShadow", rounds);
  const allowVsDeny = abba(time, "allow", "deny", rounds);
  const explainAlone: number[] = [];
  const wouldBeAlone: number[] = [];
  for (let r = 0; r < rounds; r++) {
    explainAlone.push(time("explainAlone"));
    wouldBeAlone.push(time("wouldBeAlone"));
  }
  for (const close of closers) await close();
  await stores.low.close();
  await stores.critical.close();
  if (sink < 0) throw new Error("unreachable: keeps the results alive");

  const m = (values: readonly number[]): number => round(median(values), 3);
  return {
    name: "policy rollout: what explanations and a shadow rule add to a decision (issue #11)",
    command: "node --import tsx bench/rollout.bench.ts",
    figures: {
      rules: plain.ruleCount,
      rules_with_shadow: shadowed.ruleCount,
      rounds,
      decisions_per_measurement: iterations,
      allow_us_median: m(allowVsDeny.base),
      allow_us_range: range(allowVsDeny.base),
      deny_with_explain_us_median: m(allowVsDeny.variant),
      deny_with_explain_us_range: range(allowVsDeny.variant),
      deny_minus_allow_us_median: m(allowVsDeny.added),
      deny_without_explain_us_median: m(explain.base),
      explain_added_us_median: m(explain.added),
      explain_added_us_range: range(explain.added),
      explain_alone_us_median: m(explainAlone),
      allow_with_shadow_rule_us_median: m(shadowAllow.variant),
      shadow_added_to_allow_us_median: m(shadowAllow.added),
      shadow_added_to_allow_us_range: range(shadowAllow.added),
      deny_with_shadow_rule_us_median: m(shadowDeny.variant),
      shadow_added_to_deny_us_median: m(shadowDeny.added),
      shadow_added_to_deny_us_range: range(shadowDeny.added),
      would_be_alone_us_median: m(wouldBeAlone),
      deny_with_shadow_rule_would_be: denyShadowLine,
    },
    notes: "CPU time (process.cpuUsage) per decision, one process, each pair in ABBA order per round, medians and ranges over the rounds. "
      + "The request is examples/requests/deploy-staging.json against examples/policies and examples/signals.yaml; the deny is the same "
      + "request with the deployer's risk critical (guards/critical-risk). The shadow rule (deploy-api POST /v1/deploy from ci/**, deny "
      + "at medium risk or worse) is evaluated on every decision; it does not match the allow (risk low) and matches the deny (risk critical), where the "
      + "decision carries the would-be outcome when enforcing the shadow rule would change the outcome or the deciding rule "
      + "(deny_with_shadow_rule_would_be). wouldBe alone is timed on the deny's input.",
  };
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const quick = process.argv.includes("--quick");
  const result = await runRolloutBench(quick ? { rounds: 5, iterations: 5_000 } : {});
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
