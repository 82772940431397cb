// Signal-to-enforcement latency in cluster mode: a transmitter pushes a signed SET (CAEP
// risk-level-change HIGH) to instance A's SSF endpoint; from the moment A acknowledges it (202)
// until each of N watching sidecars — each with its own NATS connection, store and decision
// pipeline, spread over several processes as sidecars would be — decides "deny" for that caller.
// p50/p99 over 1,000 signals for N = 1, 10, 50. Times are wall-clock (performance.timeOrigin +
// now) so they compare across processes; the IPC hop back to this process is not counted.
// Needs NATS JetStream at 127.0.0.1:4222. Run: npx tsx bench/signal-latency.bench.ts [--signals 1000]

import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { pino } from "pino";
import { startVigil } from "../src/cli/serve.js";
import { parseConfig } from "../src/config/index.js";
import { signalsBucketName } from "../src/signals/index.js";
import { CAEP } from "../src/signals/ssf/index.js";
import { numberArg, percentile, round, sortedCopy, type BenchResult } from "./lib.js";
import { BENCH_POLICY, NATS_URL } from "./signal-latency.fixtures.js";

const ISSUER = "https://transmitter.example.org/";
const AUDIENCE = "vigil";
/** Watchers per process: sidecars are separate processes; one process per 10 keeps 2 cores busy without thrashing. */
const PER_PROCESS = 10;

interface Denial { subject: string; at: number }

function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

async function startWatchers(prefix: string, count: number, onDenial: (d: Denial) => void): Promise<ChildProcess[]> {
  const children: ChildProcess[] = [];
  for (let left = count; left > 0; left -= PER_PROCESS) {
    const child = fork("bench/signal-watchers.ts", [prefix, String(Math.min(PER_PROCESS, left))], {
      execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    await new Promise<void>((resolve, reject) => {
      child.once("exit", (code) => { reject(new Error(`watcher process exited with ${code ?? "signal"}`)); });
      child.on("message", (message: { ready?: boolean } & Partial<Denial>) => {
        if (message.ready === true) resolve();
        else if (typeof message.subject === "string" && typeof message.at === "number") onDenial({ subject: message.subject, at: message.at });
      });
    });
    children.push(child);
  }
  return children;
}

async function stopWatchers(children: ChildProcess[]): Promise<void> {
  await Promise.all(children.map((child) => new Promise((resolve) => {
    child.removeAllListeners("exit");
    child.once("exit", resolve);
    child.send("stop");
  })));
}

export async function runSignalLatencyBench(counts: number[], signals: number): Promise<BenchResult[]> {
  const silent = pino({ level: "silent" });
  const dir = mkdtempSync(join(tmpdir(), "vigil-bench-"));
  const policyDir = join(dir, "policies");
  mkdirSync(policyDir);
  writeFileSync(join(policyDir, "payments.yaml"), BENCH_POLICY);
  const prefix = `vigilbench_${randomBytes(4).toString("hex")}`;
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  writeFileSync(join(dir, "jwks.json"), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" }] }));
  const storeConfig = parseConfig({ store: { bus: NATS_URL, bucketPrefix: prefix, freshnessBoundMs: 5000 } }).store;

  const a = await startVigil(parseConfig({
    grpc: { port: 0 }, http: { port: 0 }, policyDir, store: storeConfig,
    ssf: { issuer: ISSUER, audience: [AUDIENCE], jwksFile: join(dir, "jwks.json"), replayWindowMs: 3_600_000 },
    logLevel: "silent",
  }), { logger: silent });
  const results: BenchResult[] = [];
  let sequence = 0;
  let waiting: { subject: string; times: number[]; expected: number; done: () => void } | undefined;
  const onDenial = (d: Denial): void => {
    if (waiting?.subject !== d.subject) return;
    waiting.times.push(d.at);
    if (waiting.times.length === waiting.expected) waiting.done();
  };
  try {
    for (const n of counts) {
      const children = await startWatchers(prefix, n, onDenial);
      const fromAck: number[] = [];
      const fromSend: number[] = [];
      let missed = 0;
      try {
        for (let i = 0; i < signals; i++) {
          const subject = `spiffe://example.org/ns/bench/sa/w${++sequence}`;
          const times: number[] = [];
          const all = new Promise<void>((resolve) => { waiting = { subject, times, expected: n, done: resolve }; });
          const token = await new SignJWT({
            events: { [CAEP.riskLevelChange]: { principal: "SERVICE", current_level: "HIGH", risk_reason: "bench" } },
            sub_id: { format: "uri", uri: subject },
          }).setProtectedHeader({ alg: "ES256", kid: "k1", typ: "secevent+jwt" }).setIssuer(ISSUER).setAudience(AUDIENCE)
            .setIssuedAt().setJti(`bench-${sequence}`).sign(privateKey);
          const sent = wallNow();
          const res = await fetch(`http://127.0.0.1:${a.httpPort}/ssf/events`, {
            method: "POST", headers: { "content-type": "application/secevent+jwt" }, body: token,
          });
          const acked = wallNow();
          if (res.status !== 202) throw new Error(`SET push answered ${res.status}: ${await res.text()}`);
          await Promise.race([all, new Promise((resolve) => setTimeout(resolve, 2000))]);
          waiting = undefined;
          missed += n - times.length;
          for (const t of times) {
            fromAck.push(Math.max(0, t - acked));
            fromSend.push(t - sent);
          }
        }
      } finally {
        await stopWatchers(children);
      }
      const ack = sortedCopy(fromAck);
      const send = sortedCopy(fromSend);
      results.push({
        name: `signal to enforcement, N = ${n}`,
        command: `npx tsx bench/signal-latency.bench.ts --signals ${signals}`,
        figures: {
          watchers: n, processes: Math.ceil(n / PER_PROCESS), signals, samples: fromAck.length, missed,
          ack_to_deny_p50_ms: round(percentile(ack, 50)), ack_to_deny_p99_ms: round(percentile(ack, 99)),
          push_to_deny_p50_ms: round(percentile(send, 50)), push_to_deny_p99_ms: round(percentile(send, 99)),
        },
        notes: "ack = the moment the transmitter got 202 from instance A; push = the moment it sent the SET (includes JWS verification, the JetStream write and ack). A watcher that applied the change before the 202 reached the transmitter counts 0 from ack.",
      });
    }
  } finally {
    await a.close();
    const nc = await connect({ servers: NATS_URL });
    await (await new Kvm(nc).open(signalsBucketName(prefix))).destroy();
    await nc.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const signals = numberArg("--signals", 1000);
  const results = await runSignalLatencyBench([1, 10, 50], signals);
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
}
