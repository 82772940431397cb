// Quick figures for the signal stores, not a test (vitest only runs *.test.ts): memory added by
// 100k subjects in the memory-only embedded store, read cost, embedded put throughput with fsync
// (group commit) at several concurrency levels, and journal replay time. It belongs in bench/ as
// a *.bench file; it lives here until bench/ exists.
//
//   node --expose-gc --import tsx bench/store.bench.ts [memory|throughput|all]

import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { storeSchema } from "../src/config/schema.js";
import { createEmbeddedStore } from "../src/signals/index.js";
import type { SignalInput } from "../src/signals/index.js";

const logger = pino({ level: "silent" });
const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => undefined);

async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);

function risk(i: number, observedAt = 1_750_000_000_000): SignalInput {
  return {
    id: `evt-${i}-${observedAt}`, kind: "risk", subject: `spiffe://example.org/ns/team-${i % 100}/sa/workload-${i}`,
    source: "risk-engine", observedAt, data: { level: "high", reason: "anomalous call pattern" },
  };
}

async function memory(subjects: number): Promise<void> {
  const store = createEmbeddedStore(storeSchema.parse({ journalPath: "" }), { logger });
  await store.ready();
  await settle();
  const before = process.memoryUsage();
  // Inputs are built inside the loop: their strings are retained as they would be from the wire.
  for (let i = 0; i < subjects; i++) await store.put(risk(i));
  await settle();
  const after = process.memoryUsage();
  const heap = after.heapUsed - before.heapUsed;
  console.log(`memory: ${subjects} subjects x 1 risk signal: RSS +${mib(after.rss - before.rss)} MiB, `
    + `heap +${mib(heap)} MiB (${Math.round(heap / subjects)} B/subject)`);

  const probes = Array.from({ length: 1_000 }, (_, i) => `spiffe://example.org/ns/team-${(i * 97) % 100}/sa/workload-${i * 97}`);
  let hits = 0;
  for (let i = 0; i < 200_000; i++) if (store.get(probes[i % 1_000]!, "risk") !== undefined) hits++;
  const started = process.hrtime.bigint();
  const reads = 2_000_000;
  for (let i = 0; i < reads; i++) if (store.get(probes[i % 1_000]!, "risk") !== undefined) hits++;
  const ns = Number(process.hrtime.bigint() - started) / reads;
  console.log(`read: get() ${ns.toFixed(0)} ns/op (${hits} hits)`);
  await store.close();
}

async function throughput(total: number, concurrency: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "vigil-figures-"));
  const path = join(dir, "journal.jsonl");
  const store = createEmbeddedStore(storeSchema.parse({ journalPath: path, compactAfterRecords: 1_000_000 }), { logger });
  await store.ready();
  let next = 0;
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const i = next++;
      const begun = performance.now();
      await store.put(risk(i));
      latencies.push(performance.now() - begun);
    }
  }));
  const seconds = (performance.now() - started) / 1_000;
  latencies.sort((a, b) => a - b);
  const stats = store.journalStats()!;
  console.log(`throughput: concurrency ${concurrency}: ${Math.round(total / seconds)} puts/s, `
    + `${stats.flushes} fsyncs for ${total} puts, p50 ${latencies[Math.floor(total * 0.5)]!.toFixed(2)} ms, `
    + `p99 ${latencies[Math.floor(total * 0.99)]!.toFixed(2)} ms, journal ${mib((await stat(path)).size)} MiB`);
  await store.close();
  await rm(dir, { recursive: true, force: true });
}

async function replay(records: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "vigil-figures-"));
  const config = storeSchema.parse({ journalPath: join(dir, "journal.jsonl"), compactAfterRecords: 1_000_000 });
  const writer = createEmbeddedStore(config, { logger });
  await writer.ready();
  // In batches under store.maxQueuedWrites: past it the store refuses writes (a bound, issue #8).
  const batch = Math.min(500, config.maxQueuedWrites);
  for (let from = 0; from < records; from += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, records - from) }, (_, i) => writer.put(risk(from + i))));
  }
  await writer.close();
  const started = performance.now();
  const reader = createEmbeddedStore(config, { logger });
  await reader.ready();
  console.log(`replay: ${records} records in ${(performance.now() - started).toFixed(0)} ms`);
  await reader.close();
  await rm(dir, { recursive: true, force: true });
}

const mode = process.argv[2] ?? "all";
console.log(`node ${process.version}, ${process.platform}/${process.arch}`);
if (mode === "memory" || mode === "all") await memory(100_000);
if (mode === "throughput" || mode === "all") {
  await throughput(2_000, 1);
  await throughput(20_000, 16);
  await throughput(50_000, 256);
  await replay(100_000);
}
