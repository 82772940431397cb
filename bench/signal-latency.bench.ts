// Signal-to-enforcement latency in cluster mode: a transmitter pushes a signed SET (CAEP
// risk-level-change HIGH) to instance A's SSF endpoint; from the moment A acknowledges it (202)
// until each of N watching instances — each with its own NATS connection, store and decision
// pipeline — decides "deny" for that caller. p50/p99 over 1,000 signals for N = 1, 10, 50.
// Needs NATS JetStream at 127.0.0.1:4222. Run: npx tsx bench/signal-latency.bench.ts [--signals 1000]

import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { pino } from "pino";
import { ApprovalBook } from "../src/approvals/index.js";
import { startVigil } from "../src/cli/serve.js";
import { parseConfig } from "../src/config/index.js";
import { createDecider, Effects, type AccessRequest, type Decide } from "../src/decision/index.js";
import { createCallerResolver } from "../src/identity/index.js";
import { compilePolicy, parsePolicyDocuments } from "../src/policy/index.js";
import { createNatsStore, signalsBucketName, type SignalStore } from "../src/signals/index.js";
import { CAEP } from "../src/signals/ssf/index.js";
import { createMetrics } from "../src/telemetry/index.js";
import { percentile, round, sortedCopy, type BenchResult } from "./lib.js";

const NATS_URL = "nats://127.0.0.1:4222";
const ISSUER = "https://transmitter.example.org/";
const AUDIENCE = "vigil";
const POLICY = `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: payments }
spec:
  destinations: ["payments"]
  rules:
    - name: read
      sources: ["spiffe://example.org/ns/bench/sa/*"]
      methods: [GET]
      when: 'signals.risk in ["none", "low"]'
      outcome: allow
`;

function request(subject: string): AccessRequest {
  return {
    receivedAt: 0, requestId: "1", method: "GET", path: "/v1/payments/1", host: "payments", scheme: "https", protocol: "HTTP/2",
    source: { principal: subject, certificate: "", address: "10.0.0.1", port: 1 },
    destination: { principal: "", certificate: "", address: "", port: 0 },
    headers: {}, body: "", contextExtensions: {}, sni: "", malformed: [],
  };
}

interface Watcher { store: SignalStore; decide: Decide }

export async function runSignalLatencyBench(counts: number[], signals: number): Promise<BenchResult[]> {
  const silent = pino({ level: "silent" });
  const dir = mkdtempSync(join(tmpdir(), "vigil-bench-"));
  const policyDir = join(dir, "policies");
  const prefix = `vigilbench_${randomBytes(4).toString("hex")}`;
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  writeFileSync(join(dir, "jwks.json"), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" }] }));
  const { mkdirSync } = await import("node:fs");
  mkdirSync(policyDir);
  writeFileSync(join(policyDir, "payments.yaml"), POLICY);
  const policy = compilePolicy(parsePolicyDocuments(POLICY, "payments.yaml"));
  const storeConfig = parseConfig({ store: { bus: NATS_URL, bucketPrefix: prefix, freshnessBoundMs: 5000 } }).store;

  const a = await startVigil(parseConfig({
    grpc: { port: 0 }, http: { port: 0 }, policyDir, store: storeConfig,
    ssf: { issuer: ISSUER, audience: [AUDIENCE], jwksFile: join(dir, "jwks.json"), replayWindowMs: 3_600_000 },
    logLevel: "silent",
  }), { logger: silent });
  const results: BenchResult[] = [];
  const watchers: Watcher[] = [];
  let sequence = 0;
  try {
    for (const n of counts) {
      while (watchers.length < n) {
        const store = createNatsStore(storeConfig, { logger: silent, name: `watcher-${watchers.length}` });
        await store.ready();
        const metrics = createMetrics({ defaultMetrics: false });
        const effects = new Effects({ store, logger: silent, metrics, hookUrl: "" });
        const decide = createDecider({
          policy: () => policy, resolveCaller: createCallerResolver(parseConfig({}).identity),
          store, effects, approvals: new ApprovalBook({ store }),
        });
        watchers.push({ store, decide });
      }
      const active = watchers.slice(0, n);
      const fromAck: number[] = [];
      const fromSend: number[] = [];
      let missed = 0;
      for (let i = 0; i < signals; i++) {
        const subject = `spiffe://example.org/ns/bench/sa/w${++sequence}`;
        const req = request(subject);
        const denied: number[] = [];
        let resolveAll: () => void = () => undefined;
        const all = new Promise<void>((resolve) => { resolveAll = resolve; });
        const unsubscribe = active.map((w) => w.store.subscribe((signal) => {
          if (signal.subject !== subject) return;
          if (w.decide(req).outcome === "deny") {
            denied.push(performance.now());
            if (denied.length === n) resolveAll();
          }
        }));
        const token = await new SignJWT({
          events: { [CAEP.riskLevelChange]: { principal: "SERVICE", current_level: "HIGH", risk_reason: "bench" } },
          sub_id: { format: "uri", uri: subject },
        }).setProtectedHeader({ alg: "ES256", kid: "k1", typ: "secevent+jwt" }).setIssuer(ISSUER).setAudience(AUDIENCE)
          .setIssuedAt().setJti(`bench-${sequence}`).sign(privateKey);
        const sent = performance.now();
        const res = await fetch(`http://127.0.0.1:${a.httpPort}/ssf/events`, {
          method: "POST", headers: { "content-type": "application/secevent+jwt" }, body: token,
        });
        const acked = performance.now();
        if (res.status !== 202) throw new Error(`SET push answered ${res.status}: ${await res.text()}`);
        await Promise.race([all, new Promise((resolve) => setTimeout(resolve, 2000))]);
        for (const off of unsubscribe) off();
        missed += n - denied.length;
        for (const t of denied) {
          fromAck.push(Math.max(0, t - acked));
          fromSend.push(t - sent);
        }
      }
      const ack = sortedCopy(fromAck);
      const send = sortedCopy(fromSend);
      results.push({
        name: `signal to enforcement, N = ${n}`,
        command: `npx tsx bench/signal-latency.bench.ts --signals ${signals}`,
        figures: {
          watchers: n, signals, samples: fromAck.length, missed,
          ack_to_deny_p50_ms: round(percentile(ack, 50)), ack_to_deny_p99_ms: round(percentile(ack, 99)),
          push_to_deny_p50_ms: round(percentile(send, 50)), push_to_deny_p99_ms: round(percentile(send, 99)),
        },
      });
    }
  } finally {
    for (const w of watchers) await w.store.close();
    await a.close();
    const nc = await connect({ servers: NATS_URL });
    await (await new Kvm(nc).open(signalsBucketName(prefix))).destroy();
    await nc.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const at = process.argv.indexOf("--signals");
  const signals = at === -1 ? 1000 : Number(process.argv[at + 1]);
  const results = await runSignalLatencyBench([1, 10, 50], signals);
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
}
