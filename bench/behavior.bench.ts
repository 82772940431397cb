// What behaviour baselines (src/behavior, issue #12) cost: the time they add to one Check (goal
// < 0.5 µs) and the memory of 10,000 learned callers.
//
// Added Check cost, in the decision bench's world (1,000 rules over 50 destinations, 4,096
// distinct requests, from 4,096 callers or from 20), every caller's baseline learned and enforced
// (no request is an anomaly: the steady state). The machine these run on is shared and loaded, so
// wall-clock times drift by more than the figure sought: everything is measured as CPU time
// (process.cpuUsage) in ONE process, with- and without-behaviour Checks interleaved ABBA each round,
// and reported as medians with their ranges:
// - check_without / check_with: the whole Check (judge + record) without and with behaviour;
//   added_check_cost_us is the median of the per-round differences;
// - behavior_calls_alone: exactly what the pipeline adds (seedPath, the action key's hashing in
//   its pass over the path, checkRequest, observeChecked), over fresh copies of the view's strings
//   (as decoded off the wire: no string hash cached yet) and the caller's SPIFFE ID as the identity
//   resolver memoises it: those calls with the pass over the path, minus the pass alone (ABBA);
// - action_key_alone: the action hash of a request whose key the pipeline's pass did not start
//   (actionKey: a path with a problem, a record phase after another request's judge).
// The queue is drained after each pass, outside the timing; its cost per observation is reported
// on its own (it runs off the hot path).
//
// Memory: heap after admitting 10,000 callers with 8 actions and 2 source networks each, minus
// the heap before, after a full GC (run with --expose-gc, in a process of its own).
// Run: npm run build && node --expose-gc --import tsx bench/behavior.bench.ts [--quick]
// Profile one pipeline: node --cpu-prof --import tsx bench/behavior.bench.ts --profile [few] [plain]

import { pino } from "pino";
import type { AccessRequest, Pipeline } from "../src/decision/index.js";
import type { RequestView } from "../src/model/index.js";
import { policyYaml, request } from "./decision.bench.js";
import { abba, cpuUs, median, numberArg, range, round, shipped, type BenchResult } from "./lib.js";

// The shipped build (npm run build first), as the decision bench runs it: why in lib.ts.
const {
  approvals: { ApprovalBook }, behavior: { BehaviorMonitor }, config: { behaviorSchema, parseConfig },
  decision: { createPipeline, Effects, pathProblem }, identity: { createCallerResolver }, policy: { compilePolicy, parsePolicyDocuments },
  signals: { createEmbeddedStore }, telemetry: { createMetrics },
} = await shipped();

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
  behavior: InstanceType<typeof BehaviorMonitor>;
  requests: AccessRequest[];
  close(): Promise<void>;
}

/**
 * The decision bench's world, with every caller's baseline learned and enforced. `many`: its 4,096
 * requests come from as many callers (each baseline cold in the CPU caches when its next request
 * comes); `few`: from 20 callers (one per rule's source namespace), as a sidecar serving a handful
 * of client workloads sees them, each baseline holding up to 50 actions.
 */
export async function world(callers: "many" | "few"): Promise<World> {
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
  const requests: AccessRequest[] = Array.from({ length: BATCH }, (_, i) => {
    if (callers === "many") return request(i * 7919);
    const rule = (i * 7919) % 20;
    return request(i * 7919, undefined, `spiffe://example.org/ns/ns${String(rule % 10)}/sa/w${String(rule)}`);
  });
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

export function batch(pipeline: Pipeline, requests: readonly AccessRequest[]): void {
  for (const req of requests) pipeline.record(pipeline.judge(req));
}

/**
 * Everything in one process: per round the whole Check without behaviour and with it in ABBA order
 * (without, with, with, without), then the calls behaviour adds alone (with the pass over the
 * path that starts the action key, minus that pass alone, ABBA) and actionKey alone. Each
 * measurement is the CPU time of `passes` passes over the 4,096 requests; the queue is drained
 * after each pass, outside the timing (its cost per observation is reported on its own: it runs
 * off the Check path).
 */
async function interleaved(callers: "many" | "few", rounds: number, passes: number): Promise<Record<string, number | string>> {
  const w = await world(callers);
  const judged = w.requests.map((req) => w.observed.judge(req));
  const items = judged.map((j) => ({ caller: j.caller?.spiffeId ?? "", hints: j.caller?.hints, view: j.view as RequestView, at: j.at ?? 0 }));
  // A sidecar's requests arrive as new strings (decoded from the wire), whose hashes V8 has not
  // computed yet: the calls are timed over fresh copies of the view's strings, made before each
  // pass, outside the timing (the path without its query sliced from the path, as the pipeline
  // does). The caller is passed as the pipeline passes it: the identity
  // resolver's SPIFFE ID string, memoised per principal (the same string for each of the caller's
  // requests while the memo holds it, as it holds all 4,096 here), with the hints on its memo entry.
  const fresh = (t: string): string => Buffer.from(t).toString();
  let copies = items;
  const refresh = (): void => {
    copies = items.map(({ caller, hints, view: v, at }) => {
      // As the pipeline makes them: the path without its query is a slice of the decoded path, and
      // the view is one object literal in requestView's field order (one shape for every view). A
      // spread copy ({ ...v, … }) gave each copy a shape of its own here, and every property load
      // in the calls missed its inline cache: 9.5k instead of 2.2k instructions per actionKey.
      const path = fresh(v.path);
      const view: RequestView = {
        method: fresh(v.method), path, path_only: v.path_only.length === path.length ? path : path.slice(0, v.path_only.length),
        host: v.host, scheme: v.scheme, headers: v.headers, grpc_service: v.grpc_service, grpc_method: v.grpc_method,
        mcp_method: v.mcp_method, mcp_tool: v.mcp_tool, mcp: v.mcp, properties: v.properties, source_ip: fresh(v.source_ip),
        destination: fresh(v.destination),
      };
      return { caller, hints, at, view };
    });
  };
  let flagged = 0;
  let sink = 0;
  const variants = {
    plain: (): void => {
      batch(w.plain, w.requests);
    },
    behavior: (): void => {
      batch(w.observed, w.requests);
    },
    calls: (): void => {
      // As the pipeline calls them: its pass over the path (pathProblem) started the action key.
      for (const { caller, hints, view, at } of copies) {
        sink += pathProblem(view.path, view.path_only.length, w.behavior.seedPath(view.destination, view.method, view.path))?.length ?? 1;
        flagged += w.behavior.checkRequest(caller, view, at, hints).length;
        w.behavior.observeChecked(caller, view, at, "", w.behavior.ticket);
      }
    },
    path: (): void => {
      // The pass over the path a Check without behaviour makes: subtracted from `calls`.
      for (const { view } of copies) sink += pathProblem(view.path, view.path_only.length)?.length ?? 1;
    },
    actionKey: (): void => {
      for (const { view } of copies) sink += w.behavior.actionKey(view);
    },
  };
  type Variant = keyof typeof variants;
  let drainUs = 0;
  let drained = 0;
  // One measurement: `passes` passes of a variant, each followed by a drain outside the timing.
  const time = (name: Variant): number => {
    let us = 0;
    for (let p = 0; p < passes; p++) {
      if (name === "calls" || name === "path" || name === "actionKey") refresh();
      us += cpuUs(variants[name]);
      const d = cpuUs(() => { w.behavior.drain(); });
      if (name === "behavior" || name === "calls") {
        drainUs += d;
        drained += items.length;
      }
    }
    return us / (passes * BATCH);
  };
  // Warm-up: every variant optimised before anything counts.
  for (let r = 0; r < 3; r++) for (const name of Object.keys(variants) as Variant[]) time(name);
  drainUs = 0;
  drained = 0;
  const whole = abba(time, "plain", "behavior", rounds);
  const calls = abba(time, "path", "calls", rounds);
  const actionKeys: number[] = [];
  for (let r = 0; r < rounds; r++) actionKeys.push(time("actionKey"));
  const enforced = w.behavior.size;
  await w.close();
  if (sink === 0.5) throw new Error("unreachable: keeps actionKey's result alive");
  return {
    callers_enforced: enforced,
    live_anomalies: flagged,
    rounds,
    check_without_behavior_us_median: round(median(whole.base), 3),
    check_without_behavior_us_range: range(whole.base),
    check_with_behavior_us_median: round(median(whole.variant), 3),
    check_with_behavior_us_range: range(whole.variant),
    added_check_cost_us_median: round(median(whole.added), 3),
    added_check_cost_us_range: range(whole.added),
    behavior_calls_alone_us_median: round(median(calls.added), 3),
    behavior_calls_alone_us_range: range(calls.added),
    action_key_alone_us_median: round(median(actionKeys), 3),
    drain_per_observation_us_off_path: round(drainUs / drained, 3),
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

export async function runBehaviorBench(options: { quick?: boolean; rounds?: number; passes?: number } = {}): Promise<BenchResult[]> {
  const quick = options.quick === true;
  const rounds = options.rounds ?? (quick ? 5 : 25);
  const passes = options.passes ?? (quick ? 2 : 4);
  const many = await interleaved("many", rounds, passes);
  const few = await interleaved("few", rounds, passes);
  const memory = await memoryPer10kCallers();
  const command = "node --expose-gc --import tsx bench/behavior.bench.ts";
  const how = "CPU time (process.cpuUsage, user + system) per Check over passes of the decision bench's 4,096 requests (1,000 rules), "
    + "everything in one process: per round the whole Check without behaviour and with it in ABBA order (without, with, with, without), "
    + "then the calls behaviour adds alone (seedPath, pathProblem with the seeded lanes, checkRequest, observeChecked, minus pathProblem without them, ABBA) over fresh copies "
    + "of the view's strings (the caller's SPIFFE ID as the identity resolver memoises it), and actionKey alone (the hash of a request whose key the pipeline's pass over "
    + "the path did not start); medians and ranges over the rounds. added_check_cost_us is the median of the rounds' differences (with − without). "
    + "Every baseline is learned and enforced (no request is an anomaly: the steady state). The drain (learning, windows, detection, "
    + "signal writes) runs off the Check path a few milliseconds later; it is timed on its own.";
  return [
    { name: "behaviour baselines: added Check cost, 4,096 callers (goal < 0.5 µs)", command, figures: many, notes: how },
    { name: "behaviour baselines: added Check cost, 20 callers (goal < 0.5 µs)", command, figures: few,
      notes: "As above, the same 4,096 requests from 20 callers (one per rule's source namespace), as a sidecar serving a handful of client workloads sees them." },
    { name: "behaviour baselines: memory per 10k callers", command, figures: memory,
      notes: "Heap after admitting 10,000 callers with 8 actions and 2 source networks each, minus the heap before, after a full GC." },
  ];
}

const main = import.meta.url === `file://${process.argv[1] ?? ""}`;
if (main && process.argv.includes("--profile")) {
  const w = await world(process.argv.includes("few") ? "few" : "many");
  const which = process.argv.includes("plain") ? w.plain : w.observed;
  for (let i = 0; i < 400; i++) { batch(which, w.requests); w.behavior.drain(); }
  await w.close();
} else if (main) {
  const result = await runBehaviorBench({ quick: process.argv.includes("--quick"), rounds: numberArg("--rounds"), passes: numberArg("--passes") });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
