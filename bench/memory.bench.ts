// Memory held per 100k signal subjects: RSS and heap added after putting one risk and one
// posture signal for each of 100,000 SPIFFE IDs into the store (memory only, so the figure is
// the in-memory index every sidecar holds). Goal ≤ 100 MB RSS added.
// Run: node --expose-gc --import tsx bench/memory.bench.ts   (Node 24: .cache/node-lts-24/bin/node)

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
    command: "node --expose-gc --import tsx bench/memory.bench.ts",
    figures: {
      subjects: SUBJECTS,
      keys,
      rss_added_mb: round((after.rss - before.rss) / 2 ** 20, 1),
      heap_added_mb: round((after.heapUsed - before.heapUsed) / 2 ** 20, 1),
      bytes_per_key: Math.round((after.heapUsed - before.heapUsed) / keys),
      young_generation_growth_mb: round(youngAfter - youngBefore, 1),
      rss_added_without_young_generation_growth_mb: round((after.rss - before.rss) / 2 ** 20 - (youngAfter - youngBefore), 1),
    },
    notes: "heap_added is what the 200k values hold. rss_added also counts V8's young generation, which grows while the puts allocate (to 32 MB on Node 20, 128 MB on Node 24) and stays committed though empty; it is sized by allocation rate, not by what is held, and --max-semi-space-size bounds it.",
  };
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  process.stdout.write(`${JSON.stringify(await runMemoryBench(), null, 2)}\n`);
}
