// Memory held per 100k signal subjects: RSS and heap added after putting one risk and one
// posture signal for each of 100,000 SPIFFE IDs into the store (memory only, so the figure is
// the in-memory index every sidecar holds). Goal ≤ 100 MB RSS added.
// Run: node --expose-gc --import tsx bench/memory.bench.ts

import { pino } from "pino";
import { parseConfig } from "../src/config/index.js";
import { createEmbeddedStore } from "../src/signals/index.js";
import { round, type BenchResult } from "./lib.js";

const SUBJECTS = 100_000;

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
  for (let i = 0; i < SUBJECTS; i++) {
    const subject = `spiffe://example.org/ns/team${i % 100}/sa/workload-${i}`;
    await store.put({ id: `risk-${i}`, kind: "risk", subject, source: "bench", observedAt: 1_700_000_000_000 + i, data: { level: "low", reason: "baseline" } });
    await store.put({ id: `posture-${i}`, kind: "posture", subject, source: "bench", observedAt: 1_700_000_000_000 + i, data: { status: "compliant" } });
  }
  gc();
  const after = process.memoryUsage();
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
    },
  };
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  process.stdout.write(`${JSON.stringify(await runMemoryBench(), null, 2)}\n`);
}
