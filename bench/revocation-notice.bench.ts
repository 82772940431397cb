// Revocation notice latency: from the Check that revokes a leaked key to the moment a CAEP
// receiver has the signed SET (its 202), through the durable outbox (embedded: outbox.jsonl,
// fsynced). Three receivers: healthy, slow (answers after 250 ms), and briefly down (its port
// refuses connections for the first 2 s, then it comes back); the outbox's default retry
// delays (1 s, 5 s, … jittered) apply. Revocations arrive at 20 per second, each a different key.
// Run: npx tsx bench/revocation-notice.bench.ts [REVOCATIONS]

import { generateKeyPairSync } from "node:crypto";
import { createServer, type Server } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pino } from "pino";
import { startVigil } from "../src/cli/serve.js";
import { parseConfig } from "../src/config/index.js";
import { fingerprintSecret } from "../src/identity/index.js";
import { createEnvoyClient } from "../test/support/envoy-client.js";
import { DEPLOYER } from "../test/support/example-world.js";
import { percentile, round, sortedCopy, type BenchResult } from "./lib.js";

const ADMIN = "bench-admin-token-0123456789abcdef";
const SIDECAR = { host: "deploy-api", destination: "deploy-api", destinationPrincipal: "spiffe://example.org/ns/vigil-demo/sa/deploy-api" };

interface Scenario {
  name: string;
  /** Delay before the receiver answers 202. */
  answerDelayMs: number;
  /** The receiver's port refuses connections this long after the first revocation. */
  downForMs: number;
}

const SCENARIOS: Scenario[] = [
  { name: "receiver healthy", answerDelayMs: 0, downForMs: 0 },
  { name: "receiver slow (answers after 250 ms)", answerDelayMs: 250, downForMs: 0 },
  { name: "receiver down for the first 2 s", answerDelayMs: 0, downForMs: 2_000 },
];

/** A CAEP receiver that notes when each SET (by its subject) arrived. */
function receiver(arrivals: Map<string, number>, answerDelayMs: number): Server {
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const at = performance.now();
      const payload = JSON.parse(Buffer.from(Buffer.concat(chunks).toString().split(".")[1] ?? "", "base64url").toString()) as { sub_id: { id: string } };
      const answer = (): void => {
        // The notice counts as delivered when the receiver says 202: that is when it has it.
        if (!arrivals.has(payload.sub_id.id)) arrivals.set(payload.sub_id.id, answerDelayMs === 0 ? at : performance.now());
        res.writeHead(202).end();
      };
      if (answerDelayMs === 0) answer();
      else setTimeout(answer, answerDelayMs);
    });
  });
}

async function listen(server: Server, port = 0): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

async function runScenario(scenario: Scenario, revocations: number): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-bench-notice-"));
  const keyFile = join(dir, "set.pem");
  writeFileSync(keyFile, generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "pem", type: "pkcs8" }));
  const arrivals = new Map<string, number>();
  let server = receiver(arrivals, scenario.answerDelayMs);
  const port = await listen(server);
  const vigil = await startVigil(parseConfig({
    grpc: { port: 0 }, http: { port: 0, adminTokens: [`${ADMIN} bench signals:write`] },
    policyDir: "examples/policies", signalsFile: "examples/signals.yaml",
    store: { journalPath: join(dir, "journal.jsonl") },
    transmitter: {
      issuer: "https://vigil.bench.example", signingKeyFile: keyFile,
      receivers: [{ name: "idp", url: `http://127.0.0.1:${String(port)}/ssf/push`, audience: "idp" }],
    },
    logLevel: "silent",
  }), { logger: pino({ level: "silent" }) });
  const client = createEnvoyClient(`127.0.0.1:${String(vigil.grpcPort)}`);
  const sentAt = new Map<string, number>();
  try {
    if (scenario.downForMs > 0) {
      await new Promise<void>((resolve) => { server.close(() => { resolve(); }); });
      setTimeout(() => {
        server = receiver(arrivals, scenario.answerDelayMs);
        void listen(server, port);
      }, scenario.downForMs);
    }
    const started = performance.now();
    // One unmeasured revocation first: it pays for loading and compiling the signing path.
    for (let i = -1; i < revocations; i++) {
      const key = `bench-leaked-key-${String(i)}-${String(Date.now())}`;
      const fp = fingerprintSecret(key);
      const put = await fetch(`http://127.0.0.1:${String(vigil.httpPort)}/v1/signals`, {
        method: "POST", headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        body: JSON.stringify({ kind: "credential", subject: fp, data: { state: "leaked", owner: DEPLOYER } }),
      });
      if (put.status !== 201) throw new Error(`signal put answered ${String(put.status)}`);
      if (i >= 0) sentAt.set(fp, performance.now());
      await client.check({ sourcePrincipal: DEPLOYER, ...SIDECAR, method: "POST", path: "/v1/release", apiKey: key });
      // 20 revocations a second: a burst of leaks, not a steady flood.
      const next = started + (i + 1) * 50;
      const wait = next - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
    const deadline = performance.now() + 60_000;
    while ([...sentAt.keys()].some((fp) => !arrivals.has(fp)) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const latencies = [...sentAt].map(([fp, at]) => (arrivals.get(fp) ?? Number.NaN) - at).filter((v) => !Number.isNaN(v));
    const sorted = sortedCopy(latencies);
    return {
      name: `revocation notice, decision to receiver's 202: ${scenario.name}`,
      command: "npx tsx bench/revocation-notice.bench.ts",
      figures: {
        revocations,
        delivered: latencies.length,
        p50_ms: round(percentile(sorted, 50), 1),
        p99_ms: round(percentile(sorted, 99), 1),
        max_ms: round(percentile(sorted, 100), 1),
      },
      notes: "From the moment the revoking Check is sent (gRPC, loopback) to the receiver's 202 for that key's SET: store write, RSA SET signing, outbox fsync, push. Embedded store and outbox file; default outbox settings (8 in flight, retries 1 s, 5 s, … ±20 %).",
    };
  } finally {
    client.close();
    await vigil.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => { server.close(() => { resolve(); }); });
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runRevocationNoticeBench(revocations = 100): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const scenario of SCENARIOS) results.push(await runScenario(scenario, revocations));
  return results;
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const n = Number(process.argv[2] ?? "100");
  const results = await runRevocationNoticeBench(n);
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
}
