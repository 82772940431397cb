// The record phase (recordDecision: metrics and the one decision line per Check) in process: CPU
// and allocation per call, as it was (the line built by oldLine below, every value quoted on its own,
// written through OldLineWriter: 16 KiB chunks, a new Buffer per chunk; both copied as they were)
// and as it is (createDecisionLog, the real LineWriter: 64 KiB chunks, written buffers reused).
// Both write to /dev/null; "metrics only" is the phase without a decision log.
// Judgements come from the real pipeline (1,000 rules, decision.bench.ts's requests), judged once.
// CPU: process.cpuUsage (the whole process: it includes the thread-pool thread doing the writes)
// around batches of 2,000 calls, then the event loop turns until both writers drained (nothing may
// be dropped: a dropped line costs less); old and new in ABBA order per round. The other core may be
// busy, so compare within one run. Allocation: heapUsed growth over 200 calls after a gc(), median.
// Run: node --expose-gc --import tsx bench/record.bench.ts [--rounds 7]

import { closeSync, openSync, write } from "node:fs";
import { pino } from "pino";
import { ApprovalBook } from "../src/approvals/index.js";
import { parseConfig } from "../src/config/index.js";
import { createPipeline, Effects, recordDecision, type Judgement, type RecordSinks } from "../src/decision/index.js";
import { createCallerResolver } from "../src/identity/index.js";
import { compilePolicy, parsePolicyDocuments } from "../src/policy/index.js";
import { createEmbeddedStore } from "../src/signals/index.js";
import { createDecisionLog, createLogger, createMetrics, type DecisionLine, type DecisionLog } from "../src/telemetry/index.js";
import { LineWriter } from "../src/telemetry/line-writer.js";
import { policyYaml, request } from "./decision.bench.js";
import { abba, median, numberArg, range, round } from "./lib.js";

const COMMAND = "node --expose-gc --import tsx bench/record.bench.ts";
const ROUNDS = numberArg("--rounds", 7);
const BATCH = 2_000;
const BATCHES = 10;

// eslint-disable-next-line no-control-regex -- as it was
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u2028\u2029]/;
const quote = (value: string): string => NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
const list = (values: readonly string[]): string => values.length === 0 ? "[]" : JSON.stringify(values);

/** The decision log as it was: the same clock, every value through quote(). */
function oldLog(writer: OldLineWriter, prefix: string): DecisionLog {
  let second = -1;
  let head = "";
  const clock = (): string => {
    const now = Date.now();
    const sec = Math.floor(now / 1000);
    if (sec !== second) {
      second = sec;
      head = new Date(sec * 1000).toISOString().slice(0, 20);
    }
    const ms = now - sec * 1000;
    return `${head}${ms < 10 ? "00" : ms < 100 ? "0" : ""}${ms}Z`;
  };
  const s = quote;
  const log = (line: DecisionLine): void => {
    writer.write(
      `{"level":"info","time":"${clock()}"${prefix},"decision_id":${s(line.decision_id)},"caller":${s(line.caller)}`
      + `,"credential":${s(line.credential)},"method":${s(line.method)},"host":${s(line.host)},"destination":${s(line.destination)},"path":${s(line.path)}`
      + `,"tool":${s(line.tool)},"context":${JSON.stringify(line.context)},"outcome":${s(line.outcome)},"rule":${s(line.rule)}`
      + `,"reason":${s(line.reason)},"identity_problems":${line.identity_problems.length === 0 ? "[]" : JSON.stringify(line.identity_problems)}`
      + `,"latency_us":${line.latency_us},"policy_version":${s(line.policy_version)},"controls":${list(line.controls)}`
      + `,"matched_rules":${list(line.matched_rules)},"shadow_outcome":${s(line.shadow_outcome)},"shadow_rule":${s(line.shadow_rule)}`
      + `,"dry_run":${line.dry_run ? "true" : "false"},"would_outcome":${s(line.would_outcome)},"would_rule":${s(line.would_rule)},"msg":"decision"}\n`,
    );
  };
  return Object.assign(log, { close: () => Promise.resolve() });
}

/** LineWriter's write path before buffer reuse: 16 KiB chunks, a new Buffer for each. */
class OldLineWriter {
  static readonly CAPACITY = 16 * 1024;
  #buf = Buffer.allocUnsafe(OldLineWriter.CAPACITY);
  #len = 0;
  readonly #queue: Buffer[] = [];
  #queuedBytes = 0;
  #writing = false;
  readonly #drained: (() => void)[] = [];
  dropped = 0;

  constructor(readonly descriptor: number) {}

  write(line: string): void {
    const capacity = OldLineWriter.CAPACITY;
    if (this.#len + line.length * 3 > capacity) {
      this.flush();
      if (line.length * 3 > capacity) {
        this.#enqueue(Buffer.from(line, "utf8"));
        return;
      }
    }
    if (this.#queuedBytes + this.#len + line.length * 3 > 2 * 1024 * 1024) {
      this.dropped++;
      return;
    }
    this.#len += this.#buf.write(line, this.#len, "utf8");
  }

  flush(done?: () => void): void {
    if (this.#len > 0) {
      const chunk = this.#buf.subarray(0, this.#len);
      this.#buf = Buffer.allocUnsafe(OldLineWriter.CAPACITY);
      this.#len = 0;
      this.#enqueue(chunk);
    }
    if (done !== undefined) {
      if (this.#writing) this.#drained.push(done);
      else done();
    }
  }

  #enqueue(chunk: Buffer): void {
    if (this.#queuedBytes + chunk.length > 2 * 1024 * 1024) {
      this.dropped++;
      return;
    }
    this.#queue.push(chunk);
    this.#queuedBytes += chunk.length;
    if (!this.#writing) this.#next();
  }

  #next(): void {
    const chunk = this.#queue[0];
    if (chunk === undefined) {
      this.#writing = false;
      for (const resolve of this.#drained.splice(0)) resolve();
      return;
    }
    this.#writing = true;
    write(this.descriptor, chunk, 0, chunk.length, null, () => {
      this.#queue.shift();
      this.#queuedBytes -= chunk.length;
      this.#next();
    });
  }
}

async function judgements(): Promise<Judgement[]> {
  const policy = compilePolicy(parsePolicyDocuments(policyYaml(), "bench.yaml"));
  const silent = pino({ level: "silent" });
  const store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: silent });
  await store.ready();
  for (let i = 0; i < 2_000; i++) {
    await store.put({ id: `r${String(i)}`, kind: "risk", subject: `spiffe://example.org/ns/ns${String(i % 10)}/sa/w${String(i)}`, source: "bench", observedAt: 1, data: { level: i % 50 === 0 ? "high" : "low" } });
  }
  const metrics = createMetrics({ defaultMetrics: false });
  const pipeline = createPipeline({
    policy: () => policy,
    resolveCaller: createCallerResolver(parseConfig({}).identity),
    store, approvals: new ApprovalBook({ store }), effects: new Effects({ store, logger: silent, metrics }), metrics,
  });
  const out = Array.from({ length: 4096 }, (_, i) => pipeline.judge(request(i * 7919)));
  await store.close();
  return out;
}


const all = await judgements();
const nullFd = openSync("/dev/null", "w");
const oldWriter = new OldLineWriter(nullFd);
const newWriter = new LineWriter(nullFd);
const bindings = { component: "decision" };
const oldLogger = createLogger({ level: "info", destination: oldWriter }).child(bindings);
const newLogger = createLogger({ level: "info", destination: newWriter }).child(bindings);
const metrics = createMetrics({ defaultMetrics: false });
const noLine = Object.assign((_line: DecisionLine) => undefined, { close: () => Promise.resolve() });
const sinks: Record<"metrics" | "object" | "old" | "new", RecordSinks> = {
  metrics: { metrics },
  object: { metrics, decisionLog: noLine },
  old: { metrics, decisionLog: oldLog(oldWriter, `,${JSON.stringify(oldLogger.bindings()).slice(1, -1)}`) },
  new: { metrics, decisionLog: createDecisionLog(newLogger) },
};
type Variant = keyof typeof sinks;

let next = 0;
function batch(variant: Variant, calls: number): number {
  const s = sinks[variant];
  const t0 = process.cpuUsage();
  for (let i = 0; i < calls; i++) recordDecision(s, all[next++ & 4095] as Judgement);
  const t = process.cpuUsage(t0);
  return t.user + t.system;
}

/** Resolves once both writers have written everything they hold. */
function drained(): Promise<unknown> {
  return Promise.all([oldWriter, newWriter].map((w) => new Promise<void>((resolve) => { w.flush(() => { resolve(); }); })));
}

/** CPU ns per call over BATCHES batches, the writer drained between batches. */
async function cpuNs(variant: Variant): Promise<number> {
  let us = 0;
  for (let b = 0; b < BATCHES; b++) {
    us += batch(variant, BATCH);
    await drained();
  }
  return (us * 1000) / (BATCH * BATCHES);
}

const gc = (globalThis as { gc?: () => void }).gc;
/** Bytes allocated per call: heapUsed growth over 200 calls after a full GC, median of 25. */
async function allocation(variant: Variant): Promise<number> {
  if (gc === undefined) return Number.NaN;
  const samples: number[] = [];
  for (let i = 0; i < 25; i++) {
    gc();
    const before = process.memoryUsage().heapUsed;
    batch(variant, 200);
    samples.push((process.memoryUsage().heapUsed - before) / 200);
    await drained();
  }
  return median(samples);
}

// Warm up every path (and the JIT) before anything is measured.
for (let w = 0; w < 5; w++) for (const v of ["metrics", "object", "old", "new"] as const) await cpuNs(v);

// abba() wants synchronous timings: measure each slot ahead, in ABBA order, then hand them over.
const slots: number[] = [];
const metricsOnly: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  for (const v of ["old", "new", "new", "old"] as const) slots.push(await cpuNs(v));
  metricsOnly.push(await cpuNs("metrics"));
}
let slot = 0;
const cpu = abba(() => slots[slot++] ?? Number.NaN, "old", "new", ROUNDS);
const ratios = cpu.base.map((old, i) => (cpu.variant[i] ?? Number.NaN) / old);
const alloc = { metrics: await allocation("metrics"), object: await allocation("object"), old: await allocation("old"), new: await allocation("new") };

await drained();
await newWriter.close();
closeSync(nullFd);
const dropped = oldWriter.dropped + newWriter.stats.dropped;

const ns = (v: number): string => String(Math.round(v));
process.stdout.write([
  `record phase (recordDecision: metrics + decision line to /dev/null), ${String(ROUNDS)} ABBA rounds of ${String(BATCH * BATCHES)} calls per slot`,
  `Node ${process.version}; lines dropped: ${String(dropped)}`,
  `CPU ns/call      old (quote per value, 16 KiB new buffers) median ${ns(median(cpu.base))} (${range(cpu.base, 0)})   new (plain-line template, 64 KiB reused) median ${ns(median(cpu.variant))} (${range(cpu.variant, 0)})`,
  `                 new/old per round: median ${String(round(median(ratios), 2))} (${range(ratios, 2)}); metrics only (no line): median ${ns(median(metricsOnly))}`,
  `bytes alloc/call (JS heap) old ${ns(alloc.old)}   new ${ns(alloc.new)}   metrics only ${ns(alloc.metrics)}   metrics + DecisionLine object, no line ${ns(alloc.object)}`,
  `command: ${COMMAND}`,
  "",
].join("\n"));
