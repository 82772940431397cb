// Memory of the capped structures when full: what a hostile or unlucky input can make each one
// hold, at its default cap. Each structure is filled in turn in this one process and the heap and
// RSS it adds (after a full GC) is reported; the inputs themselves are garbage once handed over.
// - approvals book: 10,000 pending (16 per caller) + 10,000 settled, every resource a 58 KB path
//   (src/approvals/book.ts keeps an excerpt and a digest, never the path);
// - identity caches: 4,096 principals and 256 peer certificates (src/identity/resolve.ts);
// - SSF replay cache: 100,000 (iss, jti) pairs (src/signals/ssf/replay.ts);
// - pending revocations: 10,000 held while the store does not take them (src/decision/effects.ts).
// Small and bounded (a few seconds). Run: npx tsx bench/caps.bench.ts

import { runInNewContext } from "node:vm";
import { setFlagsFromString } from "node:v8";
import { pino } from "pino";
import { ApprovalBook } from "../src/approvals/index.js";
import { parseConfig } from "../src/config/index.js";
import { Effects } from "../src/decision/index.js";
import { createCallerResolver } from "../src/identity/index.js";
import { createEmbeddedStore } from "../src/signals/index.js";
import { ReplayGuard, REPLAY_MEMORY_LIMIT } from "../src/signals/ssf/replay.js";
import { createMetrics } from "../src/telemetry/index.js";
import { round, type BenchResult } from "./lib.js";

const PATH_BYTES = 58 * 1024;
const MB = 2 ** 20;

/** A full collection, with or without node --expose-gc. */
const gc: () => void = (() => {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed !== undefined) return exposed;
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
})();

function settle(): NodeJS.MemoryUsage {
  gc();
  gc();
  return process.memoryUsage();
}

/** A fresh flat string, as a decoded request path is (not a slice or rope of a shared one). */
function longPath(i: number): string {
  return Buffer.from(`/files/${String(i)}/${"x".repeat(PATH_BYTES)}`, "latin1").toString("latin1");
}

async function measure(fill: () => Promise<{ held: number; keep: unknown }>): Promise<{ held: number; heapMb: number; rssMb: number; perEntry: number; keep: unknown }> {
  const before = settle();
  const { held, keep } = await fill();
  const after = settle();
  const heap = after.heapUsed - before.heapUsed;
  return { held, heapMb: round(heap / MB, 1), rssMb: round((after.rss - before.rss) / MB, 1), perEntry: Math.round(heap / Math.max(1, held)), keep };
}

export async function runCapsBench(): Promise<BenchResult> {
  const silent = pino({ level: "silent" });
  const store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: silent });
  await store.ready();
  const keep: unknown[] = [];

  // Approvals: fill pending, let it expire into settled, fill pending again; then knock on the caps.
  let clock = 1_700_000_000_000;
  let refused = 0;
  const approvals = await measure(async () => {
    const book = new ApprovalBook({ store, now: () => clock, onRefused: () => { refused++; } });
    const round1 = (base: number): void => {
      for (let i = 0; i < 10_000 + 200; i++) {
        book.open({
          caller: `spiffe://example.org/ns/bots/sa/caller-${String((base + i) >> 4)}`, credentialOwner: "", rule: "writes/step-up",
          destination: "spiffe://example.org/ns/svc/sa/payments", resource: `GET ${longPath(base + i)}`,
          approvers: ["spiffe://example.org/ns/ops/sa/oncall"], grantTtlSeconds: 900, grantUses: 1,
        });
      }
    };
    round1(0);
    clock += 3_600_000; // every pending request expires: settled on the next open
    round1(1_000_000);
    await Promise.resolve();
    return { held: book.size, keep: book };
  });
  keep.push(approvals.keep);

  // Identity caches: more distinct principals and certificates than the caches hold.
  const identity = await measure(() => {
    const resolve = createCallerResolver(parseConfig({}).identity);
    const cert = encodeURIComponent(`-----BEGIN CERTIFICATE-----\n${"A".repeat(2000)}\n-----END CERTIFICATE-----\n`);
    for (let i = 0; i < 10_000; i++) {
      resolve({ principal: `spiffe://example.org/ns/team-${String(i % 100)}/sa/workload-with-a-long-name-${String(i)}`, certificate: "", headers: {} });
      resolve({ principal: "", certificate: `${cert}${String(i)}`, headers: {} });
    }
    return Promise.resolve({ held: 4096 + 256, keep: resolve });
  });
  keep.push(identity.keep);

  // SSF replay cache at its limit.
  const replay = await measure(() => {
    const guard = new ReplayGuard(3_600_000);
    const iss = "https://transmitter.example.com/ssf";
    for (let i = 0; i < REPLAY_MEMORY_LIMIT + 1_000; i++) {
      const jti = `${String(i).padStart(8, "0")}-7a4c-4d3e-9f2b-0c1d2e3f4a5b`;
      guard.reserve(iss, jti, "0".repeat(64), clock);
      guard.commit(iss, jti, clock);
    }
    return Promise.resolve({ held: REPLAY_MEMORY_LIMIT, keep: guard });
  });
  keep.push(replay.keep);

  // Pending revocations the store will not take (subjects it refuses: held here for good).
  let overflowed = false;
  const effectsFull = await measure(async () => {
    const effects = new Effects({ store, logger: silent, metrics: createMetrics({ defaultMetrics: false }), retryDelaysMs: [1] });
    for (let i = 0; i < 10_000 + 100; i++) {
      effects.revoke({
        subject: `held-${String(i).padStart(65, "0")}`, target: "credential", reason: "the presented credential is compromised",
        decisionId: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`, caller: "spiffe://example.org/ns/bots/sa/caller",
        rule: "guards/compromised-credential", at: clock,
      });
    }
    await effects.drain();
    overflowed = effects.overflowed;
    return { held: effects.pendingCount, keep: effects };
  });
  keep.push(effectsFull.keep);

  await store.close();
  const figures: Record<string, number | string> = {};
  for (const [name, m] of [["approvals", approvals], ["identity_caches", identity], ["ssf_replay", replay], ["pending_revocations", effectsFull]] as const) {
    figures[`${name}_entries`] = m.held;
    figures[`${name}_heap_mb`] = m.heapMb;
    figures[`${name}_rss_mb`] = m.rssMb;
    figures[`${name}_bytes_per_entry`] = m.perEntry;
  }
  figures.approvals_refused_past_caps = refused;
  figures.revocation_backlog_overflowed = String(overflowed);
  return {
    name: "capped structures when full",
    command: "npx tsx bench/caps.bench.ts",
    figures,
    notes: "Approvals: 10,000 pending + 10,000 settled, each opened with a 58 KB path (kept as an excerpt and digest). "
      + "Identity: 4,096 principals + 256 certificates. SSF: 100,000 replay pairs. Revocations: 10,000 pending, the next one overflows.",
  };
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  process.stdout.write(`${JSON.stringify(await runCapsBench(), null, 2)}\n`);
}
