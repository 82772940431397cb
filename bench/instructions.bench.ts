// Instructions per Check, counted by valgrind's callgrind (Debian package valgrind): what the
// behaviour baselines add to a Check (issue #12), in the behaviour bench's world (1,000 rules,
// 4,096 requests, every baseline learned and enforced). Wall-clock and CPU-time differences of
// a fraction of a microsecond drown in this shared machine's noise (bench/behavior.bench.ts
// reports ranges of ±5 µs per round); an instruction count does not depend on the machine's load.
// It is not a time: hashing runs at a higher IPC than the memory-bound rest of a Check.
//
// How: each run is a process of its own (bench/instructions-child.ts) under callgrind with
// instrumentation off while it builds the world and warms both pipelines; callgrind_control turns
// it on for exactly one pass of the 4,096 requests through one pipeline (without or with
// behaviour), then off. Runs alternate (without, with, with, without, ...); the figure is the
// median per pipeline, and the added count is the difference of the medians. With
// --perf-basic-prof the JIT's code is named, so the behaviour functions' own share is reported too.
// Run: npm run build && npx tsx bench/instructions.bench.ts [--rounds 2] [--callers many|few]

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { CALLGRIND, functionCosts, perfMap, type PerfMap } from "./callgrind.js";
import { cliArg, median, numberArg, range, round, type BenchResult } from "./lib.js";

const REQUESTS = 4096;

interface Run { instructions: number; behaviorFunctions: number }

/** Instructions in the behaviour module's JIT code (dist/behavior, or src/behavior through tsx), from callgrind's per-function totals. */
function behaviorInstructions(callgrindOut: string, map: PerfMap): number {
  let sum = 0;
  for (const [name, count] of functionCosts(callgrindOut, map)) if (/\/(?:src|dist)\/behavior\//.test(name)) sum += count;
  return sum;
}

async function run(mode: "plain" | "behavior", callers: string, dir: string): Promise<Run> {
  const out = join(dir, `callgrind.${mode}`);
  rmSync(out, { force: true });
  const [valgrind = "valgrind", ...callgrind] = CALLGRIND;
  const child = spawn(valgrind, [
    ...callgrind, `--callgrind-out-file=${out}`,
    process.execPath, "--perf-basic-prof", "--expose-gc", "--import", "tsx", "bench/instructions-child.ts", mode, callers,
  ], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => { stderr += chunk.toString(); });
  const exited = new Promise<void>((resolve) => { child.once("exit", () => { resolve(); }); });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const expectLine = async (want: string): Promise<void> => {
    const got = await lines.next();
    if (got.value !== want) throw new Error(`instructions child: expected "${want}", got ${JSON.stringify(got.value)}: ${stderr.slice(-2000)}`);
  };
  await expectLine("ready");
  execFileSync("callgrind_control", ["--instr=on", String(child.pid)], { stdio: "ignore" });
  child.stdin.write("go\n");
  await expectLine("done");
  execFileSync("callgrind_control", ["--instr=off", String(child.pid)], { stdio: "ignore" });
  child.stdin.write("end\n");
  await exited;
  const collected = /Collected : (\d+)/.exec(stderr);
  if (collected === null) throw new Error(`callgrind printed no total: ${stderr.slice(-2000)}`);
  const mapFile = `/tmp/perf-${String(child.pid)}.map`;
  try {
    return { instructions: Number(collected[1]), behaviorFunctions: mode === "behavior" ? behaviorInstructions(out, perfMap(mapFile)) : 0 };
  } finally {
    rmSync(mapFile, { force: true });
  }
}

export async function runInstructionsBench(options: { rounds?: number; callers?: "many" | "few" } = {}): Promise<BenchResult> {
  const rounds = options.rounds ?? 2;
  const callers = options.callers ?? "many";
  const dir = mkdtempSync(join(tmpdir(), "vigil-instructions-"));
  const plain: number[] = [];
  const observed: number[] = [];
  const own: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      for (const mode of r % 2 === 0 ? ["plain", "behavior"] as const : ["behavior", "plain"] as const) {
        const result = await run(mode, callers, dir);
        if (mode === "plain") {
          plain.push(result.instructions / REQUESTS);
        } else {
          observed.push(result.instructions / REQUESTS);
          own.push(result.behaviorFunctions / REQUESTS);
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    name: `instructions per Check, without and with behaviour baselines (${callers === "many" ? "4,096 callers" : "20 callers"})`,
    command: `npx tsx bench/instructions.bench.ts --rounds ${String(rounds)} --callers ${callers}`,
    figures: {
      rounds,
      instructions_per_check_without: Math.round(median(plain)),
      instructions_per_check_without_range: range(plain, 0),
      instructions_per_check_with: Math.round(median(observed)),
      instructions_per_check_with_range: range(observed, 0),
      added_instructions_per_check: Math.round(median(observed) - median(plain)),
      behavior_functions_instructions_per_check: Math.round(median(own)),
      added_share_percent: round((100 * (median(observed) - median(plain))) / median(plain), 1),
    },
    notes: "valgrind --tool=callgrind, instrumentation on for one pass of the 4,096 requests only (world built and both pipelines warmed uninstrumented); "
      + "behavior_functions_instructions_per_check: the instructions in the behaviour module's own compiled code (dist/behavior) (named through node --perf-basic-prof); "
      + "the rest of the added count is the pipeline's branch, the record phase's call and what V8 does for them (ICs, GC).",
  };
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const result = await runInstructionsBench({ rounds: numberArg("--rounds", 2), callers: cliArg("--callers") === "few" ? "few" : "many" });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
