// Shared pieces of the benchmarks: percentiles, machine description, result records.

import os from "node:os";

/**
 * The Node flags the sidecar ships with (the image's NODE_OPTIONS, repeated in deploy/): benches
 * that start Vigil as its own process pass them, so they measure what runs in production.
 * test/deploy/node-flags.test.ts keeps the three places in step.
 */
export const SIDECAR_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=16"];

export interface BenchResult {
  name: string;
  command: string;
  figures: Record<string, number | string>;
  notes?: string;
}

/** The value after `--name` on the command line, or undefined when the flag is absent. */
export function cliArg(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at === -1 ? undefined : process.argv[at + 1];
}

/** A numeric flag's value, `fallback` when absent; a value that is not a number is refused, not run as NaN. */
export function numberArg(name: string): number | undefined;
export function numberArg(name: string, fallback: number): number;
export function numberArg(name: string, fallback?: number): number | undefined {
  const text = cliArg(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value)) throw new Error(`${name} needs a number, got ${JSON.stringify(text)}`);
  return value;
}

export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

export function sortedCopy(values: ArrayLike<number>): Float64Array {
  const copy = Float64Array.from(values);
  copy.sort();
  return copy;
}

export function machine(): string {
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  return `${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** CPU time (user + system, µs) `run` takes: this process's, so other processes' load is not in it. */
export function cpuUs(run: () => void): number {
  const t0 = process.cpuUsage();
  run();
  const t = process.cpuUsage(t0);
  return t.user + t.system;
}

export function median(values: readonly number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
}

/** "min–max" of values, rounded. */
export function range(values: readonly number[], digits = 3): string {
  return `${String(round(Math.min(...values), digits))}–${String(round(Math.max(...values), digits))}`;
}

/**
 * The cost `variant` adds over `base`, both timed as CPU µs per operation by `time` (which runs
 * one measurement of a variant), in ABBA order per round (base, variant, variant, base: a drift in
 * the machine's speed during a round cancels out); the rounds' differences, with each side's.
 */
export function abba<V extends string>(time: (variant: V) => number, base: V, variant: V, rounds: number): { base: number[]; variant: number[]; added: number[] } {
  const out = { base: [] as number[], variant: [] as number[], added: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    const a1 = time(base);
    const b1 = time(variant);
    const b2 = time(variant);
    const a2 = time(base);
    out.base.push((a1 + a2) / 2);
    out.variant.push((b1 + b2) / 2);
    out.added.push((b1 + b2 - a1 - a2) / 2);
  }
  return out;
}

/**
 * The markers around the part of BENCHMARKS.md that `npm run bench` (bench/run.ts) writes. What is
 * outside them (the title, the sections written by hand from single-bench runs) is never touched.
 */
export const GENERATED_BEGIN = "<!-- bench:run begin -->";
export const GENERATED_END = "<!-- bench:run end -->";

/** BENCHMARKS.md with a new generated part, or why it cannot take one without losing text. */
export type SpliceResult = { ok: true; text: string } | { ok: false; reason: string };

function occurrences(text: string, marker: string): number[] {
  const at: number[] = [];
  for (let i = text.indexOf(marker); i !== -1; i = text.indexOf(marker, i + marker.length)) at.push(i);
  return at;
}

/**
 * Replaces what lies between the two markers in `doc` with `body` and keeps every other character
 * of `doc` as it is. Refuses unless each marker is there exactly once, begin before end: with a
 * marker missing, repeated or out of order there is no telling which text is generated, and
 * guessing could delete hand-written sections. `body` is written with the first line ending found
 * in `doc` (so a CRLF file stays CRLF), followed by a blank line, so that the end marker never
 * continues a table or a paragraph; it may not itself contain a marker.
 */
export function spliceGenerated(doc: string, body: string): SpliceResult {
  const begins = occurrences(doc, GENERATED_BEGIN);
  const ends = occurrences(doc, GENERATED_END);
  const [begin] = begins;
  const [end] = ends;
  if (begin === undefined || end === undefined || begins.length > 1 || ends.length > 1) {
    return { ok: false, reason: `expected "${GENERATED_BEGIN}" and "${GENERATED_END}" once each, found them ${begins.length} and ${ends.length} times` };
  }
  if (end < begin) return { ok: false, reason: `"${GENERATED_END}" comes before "${GENERATED_BEGIN}"` };
  if (body.includes(GENERATED_BEGIN) || body.includes(GENERATED_END)) {
    return { ok: false, reason: "the generated text contains a marker itself; the next run could not tell where it ends" };
  }
  const eol = /\r?\n/.exec(doc)?.[0] ?? "\n";
  const lines = body.replace(/\r\n/g, "\n").replace(/\n+$/, "");
  const inner = lines === "" ? eol : eol + lines.split("\n").join(eol) + eol + eol;
  return { ok: true, text: doc.slice(0, begin + GENERATED_BEGIN.length) + inner + doc.slice(end) };
}

const DIST = new URL("../dist/", import.meta.url).href;

/**
 * The shipped build's modules (npm run build first): what `npm start` and the image run. Benches
 * that time the Check in-process load these rather than src/ through tsx: tsx's on-the-fly
 * transpilation names every function it creates (esbuild's keepNames), and the pipeline makes a
 * closure per Check, whose renaming (Object.defineProperty on the closure) V8 pays for with a
 * property reconfiguration, 1.5k-3.9k instructions per Check (callgrind), which the shipped code
 * never runs.
 */
export async function shipped(): Promise<{
  approvals: typeof import("../src/approvals/index.js");
  behavior: typeof import("../src/behavior/index.js");
  config: typeof import("../src/config/index.js");
  decision: typeof import("../src/decision/index.js");
  identity: typeof import("../src/identity/index.js");
  policy: typeof import("../src/policy/index.js");
  signals: typeof import("../src/signals/index.js");
  telemetry: typeof import("../src/telemetry/index.js");
  transport: typeof import("../src/transport/envoy/index.js");
}> {
  const load = async <T>(path: string): Promise<T> => await import(`${DIST}${path}`) as T;
  return {
    approvals: await load("approvals/index.js"),
    behavior: await load("behavior/index.js"),
    config: await load("config/index.js"),
    decision: await load("decision/index.js"),
    identity: await load("identity/index.js"),
    policy: await load("policy/index.js"),
    signals: await load("signals/index.js"),
    telemetry: await load("telemetry/index.js"),
    transport: await load("transport/envoy/index.js"),
  };
}
