// Issue #9, "faster than doing nothing", counted in instructions rather than CPU seconds: the
// same two servers and requests as bench/side-by-side.bench.ts (Vigil, and a do-nothing grpc-js
// server that decodes with proto-loader and answers a fixed OK), each run whole under valgrind's
// callgrind while h2load drives it.
//
// Why: on this 2-core machine the CPU-time bench cannot settle the goal any more. h2load and the
// server share the cores, and how far the server falls behind decides how many streams' objects
// are alive at each scavenge and get promoted: the floor server alone costs anywhere from 46 to
// 93 µs per Check between runs of one bench. Instructions do not depend on the machine's load.
// What they leave out is how fast those instructions run (cache misses, the kernel's own work),
// and the garbage collector's share is not stable either: callgrind slows the process about 50×,
// so when V8 collects, and how much it finds alive, differs from a real run. So the count is
// split: the program (JavaScript, V8's builtins and runtime, Node, nghttp2, libc), the garbage
// collector, and the JIT compiler (which still optimises during the counted window); the program's
// count is the figure to compare.
//
// How: each server runs under callgrind with instrumentation off; h2load warms it (JIT, caches);
// callgrind_control turns counting on for one h2load run, then off. Servers alternate in order.
// Vigil runs from dist/ (npm run build first) with the image's Node flags.
// Run: npx tsx bench/side-by-side-instructions.bench.ts [--rounds 1] [--warm 60000] [--requests 5000] [--node PATH]

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { CALLGRIND, costsByKind, functionCosts, perfMap } from "./callgrind.js";
import { h2load, median, range, startTarget, stopTarget } from "./h2load.js";
import { cliArg, numberArg, round, type BenchResult } from "./lib.js";
import { SIDE_BY_SIDE_CASES, verify, writeCases } from "./side-by-side.bench.js";

interface Count { program: number; gc: number; compiler: number; own: number; total: number }

export interface SideBySideInstructionsOptions { rounds: number; warm: number; requests: number; node?: string }

export async function runSideBySideInstructionsBench(o: SideBySideInstructionsOptions): Promise<BenchResult> {
  const node = o.node ?? process.execPath;
  const dir = mkdtempSync(join(tmpdir(), "vigil-side-cg-"));
  const counts = new Map<string, Count[]>();
  let failed = 0;
  try {
    const cases = writeCases(dir);
    for (let r = 0; r < o.rounds; r++) {
      for (const c of cases) {
        for (const kind of r % 2 === 0 ? ["floor-standard", "vigil"] : ["vigil", "floor-standard"]) {
          const out = join(dir, `callgrind.${kind}.${c.name}`);
          const server = await startTarget(kind, {
            node, nodeFlags: ["--perf-basic-prof"],
            wrapper: [...CALLGRIND, `--callgrind-out-file=${out}`],
          });
          let mapFile = "";
          try {
            await verify(server, c.bytes, c.expectAllow);
            const load = { connections: 2, streams: 64, dataFile: c.dataFile, logFile: join(dir, "load.log") };
            failed += h2load(server.port, { ...load, requests: o.warm }).failed;
            execFileSync("callgrind_control", ["--instr=on", String(server.child.pid)], { stdio: "ignore" });
            const run = h2load(server.port, { ...load, requests: o.requests });
            execFileSync("callgrind_control", ["--instr=off", String(server.child.pid)], { stdio: "ignore" });
            failed += run.failed;
            mapFile = `/tmp/perf-${String(server.child.pid)}.map`;
            await stopTarget(server.child);
            const byKind = costsByKind(functionCosts(out, perfMap(mapFile)), "/dist/");
            const per = (n: number): number => n / Math.max(1, run.ok);
            const count: Count = {
              program: per(byKind.program), gc: per(byKind.gc), compiler: per(byKind.compiler), own: per(byKind.own),
              total: per(byKind.program + byKind.gc + byKind.compiler),
            };
            const key = `${kind}/${c.name}`;
            counts.set(key, [...(counts.get(key) ?? []), count]);
          } finally {
            await stopTarget(server.child);
            if (mapFile !== "") rmSync(mapFile, { force: true });
            rmSync(out, { force: true });
          }
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const thousands = (values: number[]): string => `${range(values.map((v) => v / 1000), 1)}k`;
  const figures: Record<string, number | string> = {
    node: execFileSync(node, ["--version"], { encoding: "utf8" }).trim(),
    h2load: `warm ${String(o.warm)}, then ${String(o.requests)} counted, -c 2 -m 64; ${String(o.rounds)} round(s)`,
  };
  for (const c of SIDE_BY_SIDE_CASES) {
    const floor = counts.get(`floor-standard/${c.name}`) ?? [];
    const vigil = counts.get(`vigil/${c.name}`) ?? [];
    const pick = (list: Count[], field: keyof Count): number[] => list.map((x) => x[field]);
    figures[`${c.name}: floor program instructions per check`] = thousands(pick(floor, "program"));
    figures[`${c.name}: vigil program instructions per check`] = thousands(pick(vigil, "program"));
    figures[`${c.name}: vigil/floor program instructions`] = round(median(pick(vigil, "program")) / median(pick(floor, "program")), 3);
    figures[`${c.name}: vigil's own code (dist/) per check`] = thousands(pick(vigil, "own"));
    figures[`${c.name}: floor gc / compiler per check`] = `${thousands(pick(floor, "gc"))} / ${thousands(pick(floor, "compiler"))}`;
    figures[`${c.name}: vigil gc / compiler per check`] = `${thousands(pick(vigil, "gc"))} / ${thousands(pick(vigil, "compiler"))}`;
    figures[`${c.name}: vigil/floor all instructions`] = round(median(pick(vigil, "total")) / median(pick(floor, "total")), 3);
  }
  figures.failed_requests = failed;
  return {
    name: "Vigil side by side with a do-nothing grpc-js server, in instructions (callgrind)",
    command: `npx tsx bench/side-by-side-instructions.bench.ts --rounds ${String(o.rounds)} --warm ${String(o.warm)} --requests ${String(o.requests)}${o.node === undefined ? "" : ` --node ${relative(process.cwd(), o.node)}`}`,
    figures,
    notes: "Each server process whole (all threads) under valgrind --tool=callgrind, counting one h2load run after an uncounted warm-up. "
      + "program = JavaScript, V8's builtins and runtime, Node's C++, nghttp2, libc; gc and compiler are V8's collector and JIT compilers, "
      + "reported apart because under callgrind's 50× slowdown when they run is not what it is in a real run. JIT code is named through --perf-basic-prof.",
  };
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const result = await runSideBySideInstructionsBench({
    rounds: numberArg("--rounds", 1),
    warm: numberArg("--warm", 60_000),
    requests: numberArg("--requests", 5_000),
    node: cliArg("--node"),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
