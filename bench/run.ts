// Runs every benchmark and writes its results into BENCHMARKS.md: machine, Node version, the
// command behind each figure, and the goals they are measured against. Needs h2load (Debian
// nghttp2-client) and NATS JetStream on 127.0.0.1:4222; builds dist/ first.
// Run: npm run bench   (or: npx tsx bench/run.ts --quick for a short smoke run; --soak for the full
// 10-minute soak instead of a 1-minute one)
//
// It rewrites only the part of BENCHMARKS.md between `<!-- bench:run begin -->` and
// `<!-- bench:run end -->` (the intro, Goals, For comparison and Results); the title and every
// section outside the markers (the per-issue figures measured one bench at a time, "Where the Check
// time goes") stay byte for byte. If the markers are missing, repeated or out of order it refuses
// and exits 1 rather than guess what is generated: it checks before the first bench (so a long run
// is not wasted) and again before writing (the file may have been edited meanwhile); a refusal at
// the end leaves the generated part in a temporary file whose path it prints.

import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runAuthzenBench } from "./authzen.bench.js";
import { ltsNode, runCerbosBench } from "./cerbos.bench.js";
import { runThroughputBench } from "./check-throughput.bench.js";
import { runClusterBench } from "./cluster.bench.js";
import { runDecisionBenchProcesses } from "./decision.bench.js";
import { runInstructionsBench } from "./instructions.bench.js";
import { SIDECAR_NODE_FLAGS, machine, spliceGenerated, type BenchResult } from "./lib.js";
import { runPolicyBench } from "./policy.bench.js";
import { runProtobufReadersBench } from "./protobuf-readers.bench.js";
import { runRevocationNoticeBench } from "./revocation-notice.bench.js";
import { runRolloutBench } from "./rollout.bench.js";
import { runSideBySideInstructionsBench } from "./side-by-side-instructions.bench.js";
import { runSideBySideBench } from "./side-by-side.bench.js";
import { runSignalLatencyBench } from "./signal-latency.bench.js";
import { runSoakBench } from "./soak.bench.js";
import { runStallsBench } from "./stalls.bench.js";

const DOC = "BENCHMARKS.md";
const quick = process.argv.includes("--quick");
/** The full 10-minute soak (issue #10) only with --soak; otherwise a 1-minute one. */
const soakMinutes = process.argv.includes("--soak") ? 10 : 1;

function memoryBench(node = process.execPath, label = ""): BenchResult {
  // Its own process, so the RSS it reports is the store's and nothing else's.
  // With the flags the image ships (the young generation's bound): RSS as a sidecar would have it.
  const out = spawnSync(node, ["--expose-gc", ...SIDECAR_NODE_FLAGS, "--import", "tsx", "bench/memory.bench.ts"], { encoding: "utf8" });
  if (out.status !== 0) throw new Error(`memory bench failed: ${out.stderr}`);
  const result = JSON.parse(out.stdout) as BenchResult;
  if (label === "") return result;
  return { ...result, name: `${result.name} (${label})`, command: `${node === process.execPath ? "node" : ".cache/node-lts-24/bin/node"} --expose-gc ${SIDECAR_NODE_FLAGS.join(" ")} --import tsx bench/memory.bench.ts` };
}

function behaviorBench(): BenchResult[] {
  // Its own process (with --expose-gc for the heap per 10k callers); it starts one more process per
  // end-to-end variant itself.
  const out = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", "bench/behavior.bench.ts", ...(quick ? ["--quick"] : [])], { encoding: "utf8", timeout: 1_800_000 });
  if (out.status !== 0) throw new Error(`behavior bench failed: ${out.stderr}`);
  return JSON.parse(out.stdout) as BenchResult[];
}

function capsBench(): BenchResult {
  // Its own process too: it fills several structures to their caps and measures each one's heap.
  const out = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", "bench/caps.bench.ts"], { encoding: "utf8" });
  if (out.status !== 0) throw new Error(`caps bench failed: ${out.stderr}`);
  return JSON.parse(out.stdout) as BenchResult;
}

/**
 * The benches that print their own text (codec, identity, store, check-refusals): each runs in
 * its own process and its output goes into BENCHMARKS.md as it is, under the command that made it.
 */
function textBench(name: string, command: string, nodeArgs: string[], file: string, args: string[] = []): BenchResult {
  const out = spawnSync(process.execPath, [...nodeArgs, "--import", "tsx", file, ...args], { encoding: "utf8", timeout: 900_000 });
  if (out.status !== 0) throw new Error(`${name} bench failed: ${out.stderr}`);
  return { name, command, figures: {}, notes: ["```", out.stdout.trim(), "```"].join("\n") };
}

function table(result: BenchResult): string {
  if (Object.keys(result.figures).length === 0) {
    return [`### ${result.name}`, "", `Command: \`${result.command}\``, "", result.notes ?? "", ""].join("\n");
  }
  const rows = Object.entries(result.figures).map(([k, v]) => `| ${k} | ${String(v)} |`);
  return [`### ${result.name}`, "", `Command: \`${result.command}\``, "", "| figure | value |", "|---|---|", ...rows,
    ...(result.notes === undefined ? [] : ["", result.notes]), ""].join("\n");
}

/** BENCHMARKS.md with `body` as its generated part, or exits 1 with the reason (nothing is written). */
function docWith(body: string): string {
  let doc: string;
  try {
    doc = readFileSync(DOC, "utf8");
  } catch (err) {
    process.stderr.write(`bench: cannot read ${DOC} (${String(err)}); create it with the two marker lines\n`);
    process.exit(1);
  }
  const spliced = spliceGenerated(doc, body);
  if (spliced.ok) return spliced.text;
  process.stderr.write(`bench: will not rewrite ${DOC}: ${spliced.reason}. Put the markers back around the generated part (the intro, Goals, For comparison and Results).\n`);
  if (body !== "") {
    const kept = join(mkdtempSync(join(tmpdir(), "vigil-bench-")), "generated.md");
    writeFileSync(kept, body);
    process.stderr.write(`bench: this run's generated part is in ${kept}\n`);
  }
  process.exit(1);
}

docWith("");
execFileSync("npm", ["run", "build"], { stdio: "inherit" });
const started = new Date();
const results: BenchResult[] = [];
const step = async (name: string, run: () => Promise<BenchResult | BenchResult[]> | BenchResult | BenchResult[]): Promise<void> => {
  process.stderr.write(`bench: ${name}…\n`);
  const r = await run();
  results.push(...(Array.isArray(r) ? r : [r]));
};
await step("decision", () => runDecisionBenchProcesses({ processes: quick ? 1 : 5, iterations: quick ? 50_000 : 300_000 }));
await step("policy", () => runPolicyBench());
await step("rollout", () => runRolloutBench(quick ? { rounds: 5, iterations: 5_000 } : {}));
await step("stalls", () => runStallsBench());
await step("protobuf readers", () => runProtobufReadersBench(quick ? 10 : 30));
await step("memory", () => memoryBench(process.execPath, "Node 20"));
await step("memory, Node 24", () => memoryBench(ltsNode(), "Node 24"));
await step("caps", () => capsBench());
await step("behavior", () => behaviorBench());
await step("behavior, instructions", () => runInstructionsBench({ rounds: quick ? 1 : 3 }));
await step("signal latency", () => runSignalLatencyBench([1, 10, 50], quick ? 50 : 1000));
await step("cluster", () => runClusterBench(quick ? 20 : 100));
await step("soak", () => runSoakBench({ minutes: soakMinutes, saturateSeconds: 10 }));
await step("revocation notice", () => runRevocationNoticeBench(quick ? 20 : 100));
await step("throughput", () => runThroughputBench(quick ? 1 : 3, quick ? 20_000 : 100_000));
await step("codec", () => textBench("protobuf codec, in process", "node --import tsx bench/codec.bench.ts 40", [], "bench/codec.bench.ts", [quick ? "5" : "40"]));
await step("identity", () => textBench("identity resolution, in process", "npx tsx bench/identity.bench.ts", [], "bench/identity.bench.ts"));
await step("record", () => textBench("record phase (metrics + decision line), in process", "node --expose-gc --import tsx bench/record.bench.ts", ["--expose-gc"], "bench/record.bench.ts", quick ? ["--rounds", "2"] : []));
await step("store", () => textBench("signal stores", "node --expose-gc --import tsx bench/store.bench.ts all", ["--expose-gc"], "bench/store.bench.ts", ["all"]));
await step("check refusals", () => textBench("what the transport's refusal interceptor adds to a Check", "node --import tsx bench/check-refusals.bench.ts 20", [], "bench/check-refusals.bench.ts", [quick ? "3" : "20"]));
await step("side by side, Node 20", () => runSideBySideBench({ rounds: quick ? 1 : 5, requests: quick ? 10_000 : 60_000, label: "Node 20" }));
await step("side by side, Node 24", () => runSideBySideBench({ rounds: quick ? 1 : 5, requests: quick ? 10_000 : 60_000, node: ltsNode(), label: "Node 24" }));
await step("side by side, instructions", () => runSideBySideInstructionsBench({ rounds: quick ? 1 : 3, warm: quick ? 20_000 : 60_000, requests: quick ? 2_000 : 5_000 }));
await step("cerbos", () => runCerbosBench({ rounds: quick ? 1 : 3, requests: quick ? 10_000 : 40_000 }));
await step("authzen", () => runAuthzenBench({ rounds: quick ? 1 : 3, requests: quick ? 5_000 : 40_000 }));

const generated = `Written by \`npm run bench\` (bench/run.ts) on ${started.toISOString()}${quick ? " (--quick: fewer iterations)" : ""}.
Machine: ${machine()}. Each figure says the command that produced it; they are noisy from run to
run on this shared 2-core VM (steal time is visible in \`top\`), so compare ratios taken in one
run, never absolute times across runs. The sections after Results were measured one bench at a time
and written by hand; each says its command and when it ran.

## Goals

| goal | figure below |
|---|---|
| in-process decision p50 ≤ 5 µs with 1,000 rules and 100k signal subjects | "in-process decision" p50_us |
| gRPC Check throughput ≥ 80% of a do-nothing grpc-js server on the same machine | "gRPC Check throughput" vigil_over_floor |
| signal-to-enforcement p99 ≤ 20 ms with 50 watching instances | "signal to enforcement, N = 50" ack_to_deny_p99_ms |
| ≤ 100 MB RSS per 100k signal subjects | "memory per 100k subjects" rss_added_mb |
| every cache and map bounded; a full one holds tens of MB at most (approvals with 58 KB paths included) | "capped structures when full" *_heap_mb |
| a revocation reaches a CAEP receiver within a second while it is up, and after it comes back when it was down | "revocation notice" p50_ms / p99_ms |
| N sidecars racing for a one-use grant let exactly one request through, every round | "grant race" rounds_with_exactly_one_allow = rounds |
| memory flat with new subjects arriving all the time, 10 minutes at half of saturation (issue #10) | "soak" heap_min_q2_mb / heap_min_q4_mb and its sample table |
| each stall case (hostile 60 KB path, Host or header against globs and CEL regexes) under 1 ms | "stall cases at 60 KB" p50_ms / p99_ms |
| server CPU per Check ≤ a do-nothing grpc-js server's (proto-loader decode, fixed OK), allowed request and no-rule denial (issue #9) | "Vigil side by side with a do-nothing grpc-js server" vigil/floor cpu per check |
| one-at-a-time p50 within 0.03 ms of the do-nothing server (issue #9) | same table, one-at-a-time p50 vigil − floor |
| Vigil and Cerbos with 1,000 rules each, same load, same run, Node 20 and 24 (issue #9) | "Vigil and Cerbos side by side" |

## For comparison

- OPA-Envoy picks up policy and data changes by polling bundles: 60–120 s by default. Vigil
  applies a pushed signal on every sidecar in the milliseconds measured below.
- Continuous-access systems state "up to 15 minutes" of propagation for some events (Microsoft
  Entra CAE); Okta and Google state no figure.
- OPA-Envoy's published gRPC handler latency (Minikube, 1,000 rps, RBAC policy): p50 398 µs,
  p99 4.6 ms; its OPA evaluation alone p50 207 µs. Authorino's micro-benchmarks: API-key
  identity 3.1 µs, JSON-pattern authorization 1.8 µs per evaluator.

## Results

${results.map(table).join("\n")}
`;
writeFileSync(DOC, docWith(generated));
process.stderr.write("bench: wrote BENCHMARKS.md\n");
process.exit(0);
