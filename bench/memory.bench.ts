// Memory held per 100k signal subjects: RSS and heap added after putting one risk and one
// posture signal for each of 100,000 SPIFFE IDs into the store (memory only, so the figure is
// the in-memory index every sidecar holds). Goal ≤ 100 MB RSS added. Run it with the Node flags the
// image ships (SIDECAR_NODE_FLAGS in lib.ts; npm run bench does): without --max-semi-space-size=16,
// Node 24 grows its young generation to 128 MB during the puts and RSS doubles.
// Run: node --expose-gc --max-semi-space-size=16 --import tsx bench/memory.bench.ts
//      (Node 24: .cache/node-lts-24/bin/node; drop the flag to see Node's defaults)

import v8 from "node:v8";
import { pino } from "pino";
import { parseConfig } from "../src/config/index.js";
import { createEmbeddedStore } from "../src/signals/index.js";
import { round, type BenchResult } from "./lib.js";

const SUBJECTS = 100_000;

/** Physical memory of V8's young generation: it grows with allocation rate, not with what is held. */
function youngGenerationMb(): number {
  const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space");
  return (space?.physical_space_size ?? 0) / 2 ** 20;
}

/** The --max-semi-space-size this process runs with (command line or NODE_OPTIONS), or "". */
function youngGenerationFlag(): string {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)];
  return flags.findLast((flag) => flag.startsWith("--max-semi-space-size")) ?? "";
}

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error("run with node --expose-gc");
  collect();
  collect();
}

export async function runMemoryBench(): Promise<BenchResult> {
  const store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: pino({ level: "silent" }) });
  await store.ready();
  gc();
  const before = process.memoryUsage();
  const youngBefore = youngGenerationMb();
  for (let i = 0; i < SUBJECTS; i++) {
    const subject = `spiffe://example.org/ns/team${i % 100}/sa/workload-${i}`;
    await store.put({ id: `risk-${i}`, kind: "risk", subject, source: "bench", observedAt: 1_700_000_000_000 + i, data: { level: "low", reason: "baseline" } });
    await store.put({ id: `posture-${i}`, kind: "posture", subject, source: "bench", observedAt: 1_700_000_000_000 + i, data: { status: "compliant" } });
  }
  gc();
  const after = process.memoryUsage();
  const youngAfter = youngGenerationMb();
  const keys = store.size();
  await store.close();
  return {
    name: "memory per 100k subjects (2 signals each)",
    command: `node --expose-gc ${youngGenerationFlag()} --import tsx bench/memory.bench.ts`.replace("  ", " "),
    figures: {
      subjects: SUBJECTS,
      young_generation_flag: youngGenerationFlag() === "" ? "none (Node's default)" : youngGenerationFlag(),
      keys,
      rss_added_mb: round((after.rss - before.rss) / 2 ** 20, 1),
      heap_added_mb: round((after.heapUsed - before.heapUsed) / 2 ** 20, 1),
      bytes_per_key: Math.round((after.heapUsed - before.heapUsed) / keys),
      young_generation_growth_mb: round(youngAfter - youngBefore, 1),
      rss_added_without_young_generation_growth_mb: round((after.rss - before.rss) / 2 ** 20 - (youngAfter - youngBefore), 1),
    },
    notes: "heap_added is what the 200k values hold. rss_added also counts V8's young generation, which grows while the puts allocate and stays committed though empty: by default to 32 MB on Node 20 and 128 MB on Node 24; it is sized by allocation rate, not by what is held. --max-semi-space-size=16, which the image ships, bounds it to 32 MB on both.",
  };
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  process.stdout.write(`${JSON.stringify(await runMemoryBench(), null, 2)}\n`);
}
