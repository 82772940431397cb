// Shared pieces of the callgrind benches (valgrind --tool=callgrind, Debian package valgrind):
// naming the JIT's code through node's --perf-basic-prof map, and each function's own
// instructions from callgrind_annotate, sorted into what spent them.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/**
 * valgrind's callgrind, counting off until callgrind_control turns it on. `--fair-sched=yes`: by
 * default valgrind hands its one big lock to whichever thread grabs it, and on some machines (an
 * Intel Xeon VM here, 2026-12-02) V8's background threads then hardly ever run: the concurrent
 * TurboFan jobs the warm-up queued were still unfinished in the counted pass, which ran Sparkplug
 * code (60,664 instructions per Check instead of about 24,500, and about 33,700 with
 * --no-concurrent-recompilation, the concurrent sweeper's work then landing on the main thread).
 * With a fair lock the counts match the machines where the default happened to be fair.
 */
export const CALLGRIND: readonly string[] = ["valgrind", "--tool=callgrind", "--fair-sched=yes", "--instr-atstart=no"];

/** Named JIT code ranges from node's --perf-basic-prof map: [start, size, name], sorted. */
export type PerfMap = readonly [number, number, string][];

export function perfMap(path: string): PerfMap {
  return readFileSync(path, "utf8").trim().split("\n").map((line): [number, number, string] => {
    const [start = "0", size = "0", ...name] = line.split(" ");
    return [parseInt(start, 16), parseInt(size, 16), name.join(" ")];
  }).sort((a, b) => a[0] - b[0]);
}

export function nameAt(map: PerfMap, address: number): string {
  let lo = 0;
  let hi = map.length - 1;
  let found: readonly [number, number, string] | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const entry = map[mid];
    if (entry !== undefined && entry[0] <= address) {
      found = entry;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found !== undefined && address < found[0] + found[1] ? found[2] : "";
}

/**
 * Each function's own (exclusive) instructions in a callgrind output file, JIT code named through
 * `map` ("JS:*name file:line" as node writes it; "jit" when the map does not know the address).
 */
export function functionCosts(callgrindOut: string, map: PerfMap): Map<string, number> {
  const annotated = execFileSync("callgrind_annotate", ["--threshold=100", "--inclusive=no", callgrindOut], { encoding: "utf8", maxBuffer: 1 << 28 });
  const costs = new Map<string, number>();
  for (const line of annotated.split("\n")) {
    const match = /^\s*([\d,]+) \([\s\d.]+%\)\s+(.*)$/.exec(line);
    if (match === null) continue;
    const where = match[2] ?? "";
    if (where.includes("PROGRAM TOTALS")) continue;
    // "file:function [object]" or "???:0x... [???]" for JIT code.
    const colon = where.indexOf(":");
    let name = (colon === -1 ? where : where.slice(colon + 1)).replace(/\s+\[[^\]]*\]$/, "");
    if (/^0x[0-9a-f]+$/.test(name)) name = nameAt(map, parseInt(name, 16)) || "jit";
    costs.set(name, (costs.get(name) ?? 0) + Number((match[1] ?? "0").replaceAll(",", "")));
  }
  return costs;
}

/** What spent an instruction: the garbage collector, the JIT compiler, or the program itself. */
export type CostKind = "gc" | "compiler" | "program";

// V8's own C++ names: its heap (scavenger, marking, sweeping, evacuation and their bookkeeping)
// and its compilers (TurboFan's graph reducers, Maglev, Sparkplug, the parser and bytecode
// generator). Everything else is the program: JavaScript, V8's builtins and runtime, Node's C++,
// nghttp2, libc, the kernel's share as seen from user space.
const GC = /v8::internal::(?:Scaveng|Heap::|Heap\b|MarkCompact|Marking|Minor|Sweep|Evacuat|MemoryAllocator|PagedSpace|NewSpace|SemiSpace|Concurrent|RememberedSet|SlotSet|Worklist|ArrayBufferSweeper|Pretenuring|BodyDescriptor|IterateAndScavenge|RecordMigrated|EvacuateVisitor|LiveObject|FreeList|HeapObject::SizeFromMap|IdentityMap|InternalizedStringTableCleaner|ExternalStringTableCleaner|RememberedSetUpdating)|heap::base::|cppgc::|MemoryChunk|ActiveSystemPages|_Map_base<v8::internal::MemoryChunk|ScavengeVisitor|MarkingVisitor/;
const COMPILER = /v8::internal::(?:compiler::|maglev::|baseline::|interpreter::Bytecode(?:Generator|ArrayBuilder)|Parser|Scanner|Compiler|Zone|CodeGenerator|OptimizingCompile|Deoptimizer|RelocIterator)|Turboshaft|TurboFan/;

export function costKind(name: string): CostKind {
  if (GC.test(name)) return "gc";
  if (COMPILER.test(name)) return "compiler";
  return "program";
}

/** Instructions by kind, and the program's own share in code under `ownPath` (JIT names hold file URLs). */
export function costsByKind(costs: ReadonlyMap<string, number>, ownPath?: string): Record<CostKind | "own", number> {
  const out = { gc: 0, compiler: 0, program: 0, own: 0 };
  for (const [name, count] of costs) {
    const kind = costKind(name);
    out[kind] += count;
    if (kind === "program" && ownPath !== undefined && name.includes(ownPath)) out.own += count;
  }
  return out;
}
