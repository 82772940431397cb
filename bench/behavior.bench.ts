// What behaviour baselines (src/behavior, issue #12) cost: the time they add to one Check (goal
// < 0.5 µs) and the memory of 10,000 learned callers.
//
// Added Check cost, in the decision bench's world (1,000 rules over 50 destinations, 4,096
// distinct requests from as many callers), every caller's baseline learned and enforced (no
// request is an anomaly: the steady state):
// - added_check_cost_us: exactly the calls the pipeline makes per Check (actionKey, networkKey,
//   check, observe), timed on their own over the requests' views;
// - end to end: the whole Check without and with behaviour, each pipeline alone in a process of
//   its own (so call sites stay as monomorphic as in a sidecar), alternated, medians.
// The queue is drained between batches, outside the timing; its cost per observation is reported
// on its own (it runs off the hot path).
//
// Memory: heap after admitting 10,000 callers with 8 actions and 2 source networks each, minus
// the heap before, after a full GC (run with --expose-gc, in a process of its own).
// Run: node --expose-gc --import tsx bench/behavior.bench.ts [--quick]

import { spawnSync } from "node:child_process";
import { pino } from "pino";
import { ApprovalBook } from "../src/approvals/index.js";
import { BehaviorMonitor } from "../src/behavior/index.js";
import { behaviorSchema, parseConfig } from "../src/config/index.js";
import { createPipeline, Effects, type AccessRequest, type Pipeline } from "../src/decision/index.js";
import { createCallerResolver } from "../src/identity/index.js";
import type { RequestView } from "../src/model/index.js";
import { compilePolicy, parsePolicyDocuments } from "../src/policy/index.js";
import { createEmbeddedStore } from "../src/signals/index.js";
import { createMetrics } from "../src/telemetry/index.js";
import { policyYaml, request } from "./decision.bench.js";
import { round, type BenchResult } from "./lib.js";

const BATCH = 4096;
const silent = pino({ level: "silent" });

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error("run with node --expose-gc");
  collect();
  collect();
}

interface World {
  plain: Pipeline;
  observed: Pipeline;
  behavior: BehaviorMonitor;
  requests: AccessRequest[];
  close(): Promise<void>;
}

/** The decision bench's world, with every caller's baseline learned and enforced. */
async function world(): Promise<World> {
  const policy = compilePolicy(parsePolicyDocuments(policyYaml(), "bench.yaml"));
  const clock = { now: 1_000 };
  const store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: silent, now: () => clock.now });
  await store.ready();
  const metrics = createMetrics({ defaultMetrics: false });
  const effects = new Effects({ store, logger: silent, metrics });
  const approvals = new ApprovalBook({ store });
  const behavior = new BehaviorMonitor({
    config: behaviorSchema.parse({ learningPeriodMs: 1_000 }), store, logger: silent, metrics, now: () => clock.now,
  });
  const deps = {
    policy: () => policy, resolveCaller: createCallerResolver(parseConfig({}).identity), store, approvals, effects, metrics,
    now: () => clock.now,
  };
  const plain = createPipeline(deps);
  const observed = createPipeline({ ...deps, behavior });
  const requests: AccessRequest[] = Array.from({ length: BATCH }, (_, i) => request(i * 7919));
  for (let i = 0; i < 4; i++) {
    for (const req of requests) observed.record(observed.judge(req));
    behavior.drain();
  }
  clock.now = 10_000;
  return {
    plain, observed, behavior, requests,
    close: async () => {
      await behavior.close();
      await effects.close();
      await store.close();
    },
  };
}

function batch(pipeline: Pipeline, requests: readonly AccessRequest[]): number {
  const t0 = process.hrtime.bigint();
  for (const req of requests) pipeline.record(pipeline.judge(req));
  return Number(process.hrtime.bigint() - t0);
}

/** Mean µs per Check of one pipeline, alone in this process (so its call sites stay monomorphic). */
async function variantMean(variant: "plain" | "behavior", rounds: number): Promise<number> {
  const w = await world();
  const pipeline = variant === "plain" ? w.plain : w.observed;
  for (let i = 0; i < 10; i++) {
    batch(pipeline, w.requests);
    w.behavior.drain();
  }
  let ns = 0;
  for (let r = 0; r < rounds; r++) {
    ns += batch(pipeline, w.requests);
    w.behavior.drain();
  }
  await w.close();
  return ns / (rounds * BATCH) / 1000;
}

/**
 * What the pipeline calls on the Check path, timed on its own: actionKey, networkKey, check and
 * observe for each request's view, against enforced baselines. The drain is timed separately.
 */
async function hotPathCalls(rounds: number): Promise<Record<string, number>> {
  const w = await world();
  const judged = w.requests.map((req) => w.observed.judge(req));
  const items = judged.map((j) => ({ caller: j.caller?.spiffeId ?? "", view: j.view, at: j.at ?? 0 }));
  let ns = 0;
  let drainNs = 0;
  let flagged = 0;
  for (let r = 0; r < rounds + 10; r++) {
    const t0 = process.hrtime.bigint();
    for (const { caller, view, at } of items) {
      if (view === undefined) continue;
      const action = w.behavior.actionKey(view);
      const network = w.behavior.networkKey(view.source_ip);
      flagged += w.behavior.check(caller, action, network, at).length;
      w.behavior.observe(caller, view, action, network, at, "");
    }
    const t1 = process.hrtime.bigint();
    w.behavior.drain();
    if (r >= 10) {
      ns += Number(t1 - t0);
      drainNs += Number(process.hrtime.bigint() - t1);
    }
  }
  const callers = w.behavior.size;
  await w.close();
  return {
    callers_enforced: callers,
    live_anomalies: flagged,
    added_check_cost_us: round(ns / (rounds * BATCH) / 1000, 3),
    drain_per_observation_us_off_path: round(drainNs / (rounds * BATCH) / 1000, 3),
  };
}

/** The whole Check with and without behaviour, each pipeline in processes of its own, alternated. */
function endToEnd(rounds: number, repeats: number): Record<string, number> {
  const means: Record<"plain" | "behavior", number[]> = { plain: [], behavior: [] };
  for (let i = 0; i < repeats; i++) {
    for (const variant of ["plain", "behavior"] as const) {
      const out = spawnSync(process.execPath, ["--import", "tsx", "bench/behavior.bench.ts", "--variant", variant, String(rounds)], { encoding: "utf8", timeout: 600_000 });
      if (out.status !== 0) throw new Error(`behaviour bench variant ${variant} failed: ${out.stderr}`);
      means[variant].push(Number(out.stdout.trim()));
    }
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
  return {
    check_without_behavior_us_median: round(median(means.plain), 3),
    check_with_behavior_us_median: round(median(means.behavior), 3),
    end_to_end_difference_us: round(median(means.behavior) - median(means.plain), 3),
  };
}

const ACTION_NAMES = ["orders", "invoices", "customers", "refunds", "reports", "tickets", "changes", "hosts"];

function view(caller: number, action: number, network: number): RequestView {
  return {
    // Letters only: a segment with a digit would be an id ("*"), folding the actions into one.
    method: "GET", path: `/api/${ACTION_NAMES[action] ?? "x"}/items`, path_only: `/api/${ACTION_NAMES[action] ?? "x"}/items`, host: "svc", scheme: "https",
    headers: {}, grpc_service: "", grpc_method: "", mcp_method: "", mcp_tool: "", mcp: { method: "", tool: "", arguments: {}, uri: "", prompt: "" }, properties: {}, destination: `svc${String(caller % 50)}`,
    source_ip: `10.${String(caller % 200)}.${String(network)}.7`,
  };
}

async function memoryPer10kCallers(): Promise<Record<string, number>> {
  const CALLERS = 10_000;
  const ACTIONS = 8;
  const NETWORKS = 2;
  const store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: silent });
  await store.ready();
  // Everything the monitor is fed is built first, so the heap delta is the monitor's own.
  const callers = Array.from({ length: CALLERS }, (_, c) => `spiffe://example.org/ns/ns${String(c % 10)}/sa/w${String(c)}`);
  const views = Array.from({ length: ACTIONS * NETWORKS }, (_, i) => view(0, i % ACTIONS, Math.floor(i / ACTIONS)));
  const perCaller = (c: number): RequestView[] => views.map((v) => ({ ...v, destination: `svc${String(c % 50)}`, source_ip: `10.${String(c % 200)}.${v.source_ip.split(".")[2] ?? "0"}.7` }));
  const fed = callers.map((_, c) => perCaller(c));
  const behavior = new BehaviorMonitor({
    config: behaviorSchema.parse({ maxCallers: CALLERS, maxQueued: 1_048_576 }), store, logger: silent,
  });
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let c = 0; c < CALLERS; c++) {
    for (const v of fed[c] ?? []) behavior.observe(callers[c] ?? "", v, behavior.actionKey(v), behavior.networkKey(v.source_ip), 1_000, "");
    if (c % 1_000 === 999) behavior.drain();
  }
  behavior.drain();
  gc();
  const after = process.memoryUsage().heapUsed;
  // The inputs stay reachable until here, so the GC above cannot subtract them from the figure.
  if (fed.length !== CALLERS || views.length === 0) throw new Error("inputs lost");
  const shown = behavior.show(callers[0] ?? "");
  await behavior.close();
  await store.close();
  return {
    callers: behavior.size,
    actions_per_caller: shown?.actions.length ?? 0,
    networks_per_caller: shown?.networks.length ?? 0,
    heap_mb_per_10k_callers: round((after - before) / 2 ** 20, 2),
    heap_bytes_per_caller: Math.round((after - before) / CALLERS),
  };
}

export async function runBehaviorBench(options: { quick?: boolean } = {}): Promise<BenchResult> {
  const quick = options.quick === true;
  const calls = await hotPathCalls(quick ? 50 : 400);
  const memory = await memoryPer10kCallers();
  const whole = endToEnd(quick ? 20 : 100, quick ? 1 : 5);
  return {
    name: "behaviour baselines: added Check cost (goal < 0.5 µs) and memory per 10k callers",
    command: "node --expose-gc --import tsx bench/behavior.bench.ts",
    figures: { ...calls, ...whole, ...memory },
    notes: "added_check_cost_us times exactly what the pipeline calls per Check (actionKey, networkKey, check, observe) over the decision "
      + "bench's 4,096 requests from 4,096 callers with enforced baselines. The end-to-end figures run the whole Check (1,000 rules) with "
      + "and without behaviour, each in processes of its own, alternated (medians). "
      + "The drain (learning, windows, detection, signal writes) runs off the Check path, a few milliseconds after the requests it folds.",
  };
}

const main = import.meta.url === `file://${process.argv[1] ?? ""}`;
const variantAt = process.argv.indexOf("--variant");
if (main && variantAt > 0) {
  const variant = process.argv[variantAt + 1] === "plain" ? "plain" : "behavior";
  process.stdout.write(`${String(await variantMean(variant, Number(process.argv[variantAt + 2] ?? "100")))}\n`);
} else if (main) {
  const result = await runBehaviorBench({ quick: process.argv.includes("--quick") });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
