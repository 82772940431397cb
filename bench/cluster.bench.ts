// Cluster mode, two figures the issue asks for:
//   grant race: N sidecar stores (each its own NATS connection, store and index, as N sidecars
//     hold them) see the same one-use grant; all N try to use it at the same instant. Counted per
//     round: how many were allowed (must be exactly 1), and how long a use took to decide.
//   approval visibility: an approval opened on replica A (its own ledger and connection) until
//     replica B holds it; then approved on B until A holds the decision.
// In one process (the stores and ledgers are the real ones; only the gRPC hop is left out).
// Needs NATS JetStream at 127.0.0.1:4222. Run: npx tsx bench/cluster.bench.ts [rounds]

import { randomBytes } from "node:crypto";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { ApprovalBook, approvalsBucketName, NatsLedger } from "../src/approvals/index.js";
import { storeSchema } from "../src/config/schema.js";
import { createNatsStore, signalsBucketName, type NatsSignalStore } from "../src/signals/index.js";
import { percentile, round, sortedCopy, type BenchResult } from "./lib.js";
import { NATS_URL } from "./signal-latency.fixtures.js";

const logger = pino({ level: "silent" });
const APPROVER = "spiffe://example.org/ns/ops/sa/change-approver";

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function destroy(buckets: string[]): Promise<void> {
  const nc = await connect({ servers: NATS_URL });
  for (const bucket of buckets) await (await new Kvm(nc).open(bucket)).destroy().catch(() => undefined);
  await nc.close();
}

async function grantRace(sidecars: number, rounds: number): Promise<BenchResult> {
  const prefix = `vigilbench_${randomBytes(4).toString("hex")}`;
  // The default grantTimeoutMs (250 ms): a use the bus cannot decide in time counts as a denial here too.
  const config = storeSchema.parse({ bus: NATS_URL, bucketPrefix: prefix, journalPath: "" });
  const stores: NatsSignalStore[] = [];
  for (let i = 0; i < sidecars; i++) stores.push(createNatsStore(config, { logger, name: `sidecar-${String(i)}` }));
  await Promise.all(stores.map((s) => s.ready()));
  const subject = "spiffe://example.org/ns/agents/sa/support-bot";
  const allowsPerRound: number[] = [];
  const decideMs: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      const name = `race-${String(r)}`;
      await stores[0]?.put({
        id: `g-${String(r)}`, kind: "grant", subject, name, source: "approval:bench", observedAt: Date.now(),
        data: { approvalId: `apr-${String(r)}`, scope: "bench", approver: APPROVER, usesLeft: 1 },
      });
      await until(() => stores.every((s) => s.get(subject, "grant", name) !== undefined));
      const now = Date.now();
      const results = await Promise.all(stores.map(async (s) => {
        const started = performance.now();
        const used = await s.useGrant(subject, name, now);
        decideMs.push(performance.now() - started);
        return used;
      }));
      allowsPerRound.push(results.filter((used) => used).length);
    }
  } finally {
    await Promise.all(stores.map((s) => s.close()));
    await destroy([signalsBucketName(prefix)]);
  }
  const sorted = sortedCopy(decideMs);
  return {
    name: `grant race, ${String(sidecars)} sidecars, one one-use grant`,
    command: `npx tsx bench/cluster.bench.ts ${String(rounds)}`,
    figures: {
      rounds,
      rounds_with_exactly_one_allow: allowsPerRound.filter((n) => n === 1).length,
      most_allows_in_a_round: Math.max(...allowsPerRound),
      fewest_allows_in_a_round: Math.min(...allowsPerRound),
      use_decided_p50_ms: round(percentile(sorted, 50), 2),
      use_decided_p99_ms: round(percentile(sorted, 99), 2),
    },
  };
}

async function approvalVisibility(rounds: number): Promise<BenchResult> {
  const prefix = `vigilbench_${randomBytes(4).toString("hex")}`;
  const config = storeSchema.parse({ bus: NATS_URL, bucketPrefix: prefix, journalPath: "" });
  const grants = createNatsStore(config, { logger, name: "grants" });
  await grants.ready();
  const ledgers = [0, 1].map(() => new NatsLedger({ config, logger, maxAgeMs: 3_600_000 }));
  await Promise.all(ledgers.map((l) => l.ready()));
  const [a, b] = ledgers.map((ledger) => new ApprovalBook({ store: grants, ledger, sweepIntervalMs: 0, maxPendingPerCaller: rounds + 1, maxPending: rounds + 1 })) as [ApprovalBook, ApprovalBook];
  const openedMs: number[] = [];
  const decidedMs: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      let started = performance.now();
      const approval = a.open({
        caller: "spiffe://example.org/ns/agents/sa/support-bot", credentialOwner: "", rule: "bench/step-up",
        destination: "change-mgmt", resource: `mcp:create_change-${String(r)}`, approvers: [APPROVER], grantTtlSeconds: 60, grantUses: 1,
      });
      const id = approval?.id ?? "";
      await until(() => b.get(id) !== undefined);
      openedMs.push(performance.now() - started);
      started = performance.now();
      await b.deny(id, APPROVER);
      await until(() => a.get(id)?.status === "denied");
      decidedMs.push(performance.now() - started);
    }
  } finally {
    a.close();
    b.close();
    await Promise.all(ledgers.map((l) => l.close()));
    await grants.close();
    await destroy([approvalsBucketName(prefix), signalsBucketName(prefix)]);
  }
  const opened = sortedCopy(openedMs);
  const decided = sortedCopy(decidedMs);
  return {
    name: "approval visible on another replica",
    command: `npx tsx bench/cluster.bench.ts ${String(rounds)}`,
    figures: {
      rounds,
      opened_on_a_seen_on_b_p50_ms: round(percentile(opened, 50), 2),
      opened_on_a_seen_on_b_p99_ms: round(percentile(opened, 99), 2),
      decided_on_b_seen_on_a_p50_ms: round(percentile(decided, 50), 2),
      decided_on_b_seen_on_a_p99_ms: round(percentile(decided, 99), 2),
    },
    notes: "decided_on_b includes the compare-and-set write on B (what an approver's request waits for) and the watch delivering it to A.",
  };
}

export async function runClusterBench(rounds: number): Promise<BenchResult[]> {
  return [await grantRace(5, rounds), await grantRace(20, rounds), await approvalVisibility(rounds)];
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const rounds = Number(process.argv[2] ?? "100");
  for (const result of await runClusterBench(rounds)) process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}
