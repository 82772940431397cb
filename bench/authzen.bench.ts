// AuthZEN evaluations per second (issue #13), side by side with the Envoy path on the same policy
// and the same server: one Vigil process (`vigil serve`, its own process, from src through tsx)
// with a one-rule policy that reads the entities file ("reader" in subject.roles). The AuthZEN
// evaluation asks about the same SPIFFE subject, method and path the Envoy Check carries, so both
// take the same rule, entity lookup and signals; only the transport differs.
//   AuthZEN:  autocannon, POST /access/v1/evaluation (HTTP/1.1 keep-alive), and /evaluations with 10 items
//   Envoy:    h2load, gRPC Check (HTTP/2), the same connections × in-flight requests
// Runs alternate; the figures are the medians. Before any load each path must answer allow.
// Run: npx tsx bench/authzen.bench.ts [--rounds 3] [--requests 40000]

import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import autocannon from "autocannon";
import { buildCheckRequestBytes, createEnvoyClient } from "../test/support/envoy-client.js";
import { freePort } from "../test/support/ports.js";
import { grpcFrame } from "./h2load-data.js";
import { h2load, median, range } from "./h2load.js";
import { numberArg, round, type BenchResult } from "./lib.js";

const CLIENT = "spiffe://example.org/ns/bench/sa/client";
const TOKEN = "bench-pep-token-0123456789abcdef";
const CONNECTIONS = 2;
const IN_FLIGHT = 32;

const POLICY = `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: bench }
spec:
  destinations: ["bench"]
  rules:
    - name: readers-read
      methods: [GET]
      when: '"reader" in subject.roles'
      outcome: allow
`;
const ENTITIES = `apiVersion: vigil.dev/v1alpha1
kind: Entities
spec:
  subjects:
    - ids: ["${CLIENT}"]
      roles: [reader]
`;
const EVALUATION = { subject: { type: "workload", id: CLIENT }, action: { name: "GET" }, resource: { type: "route", id: "/v1/things" } };
const EVALUATIONS = {
  subject: EVALUATION.subject, action: EVALUATION.action,
  evaluations: Array.from({ length: 10 }, (_, i) => ({ resource: { type: "route", id: `/v1/things/${String(i)}` } })),
};

async function startVigil(dir: string): Promise<{ child: ChildProcess; grpcPort: number; httpPort: number }> {
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const child = spawn(process.execPath, [
    "--import", "tsx", "src/cli/main.ts", "serve", "--policy", join(dir, "policies"), "--entities", join(dir, "entities.yaml"),
    "--authzen-destination", "bench", "--destination", "bench", "--admin-tokens-file", join(dir, "tokens"),
    "--grpc-port", String(grpcPort), "--http-port", String(httpPort), "--journal", "", "--log-level", "warn",
  ], { stdio: ["ignore", "ignore", "pipe"] });
  const lines = createInterface({ input: child.stderr as NodeJS.ReadableStream });
  lines.on("line", () => { /* drained; warnings only */ });
  // Ready when the HTTP port answers /readyz.
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${String(httpPort)}/readyz`);
      if (res.status === 200) return { child, grpcPort, httpPort };
    } catch { /* not yet */ }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill("SIGTERM");
  throw new Error("vigil did not become ready");
}

async function post(port: number, path: string, body: unknown): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${String(port)}${path}`, {
    method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: JSON.stringify(body),
  });
  return (await res.text()).trim();
}

function cannon(port: number, path: string, body: unknown, amount: number): Promise<{ rps: number; p50Ms: number; p99Ms: number; non2xx: number; errors: number }> {
  return new Promise((resolve, reject) => {
    autocannon({
      url: `http://127.0.0.1:${String(port)}${path}`, method: "POST", connections: CONNECTIONS, pipelining: IN_FLIGHT / CONNECTIONS, amount,
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: JSON.stringify(body),
    }, (err, result) => {
      if (err !== null && err !== undefined) {
        reject(err instanceof Error ? err : new Error("autocannon failed"));
        return;
      }
      resolve({ rps: result.requests.average, p50Ms: result.latency.p50, p99Ms: result.latency.p99, non2xx: result.non2xx, errors: result.errors });
    });
  });
}

export async function runAuthzenBench(options: { rounds?: number; requests?: number } = {}): Promise<BenchResult> {
  const rounds = options.rounds ?? 3;
  const requests = options.requests ?? 40_000;
  const dir = mkdtempSync(join(tmpdir(), "vigil-authzen-bench-"));
  const vigil = { child: undefined as ChildProcess | undefined };
  try {
    writeFileSync(join(dir, "entities.yaml"), ENTITIES);
    writeFileSync(join(dir, "tokens"), `${TOKEN} bench-pep authzen:evaluate\n`);
    mkdirSync(join(dir, "policies"));
    writeFileSync(join(dir, "policies", "bench.yaml"), POLICY);
    const dataFile = join(dir, "check.grpc");
    const checkRequest = { sourcePrincipal: CLIENT, method: "GET", path: "/v1/things", host: "bench", contextExtensions: { destination: "bench" } };
    writeFileSync(dataFile, grpcFrame(buildCheckRequestBytes(checkRequest)));
    const started = await startVigil(dir);
    vigil.child = started.child;

    // Both paths must allow before any load: a bench of denials would measure the wrong thing.
    const single = await post(started.httpPort, "/access/v1/evaluation", EVALUATION);
    if (single !== '{"decision":true}') throw new Error(`AuthZEN answered ${single}`);
    const batch = await post(started.httpPort, "/access/v1/evaluations", EVALUATIONS);
    if (batch !== JSON.stringify({ evaluations: Array.from({ length: 10 }, () => ({ decision: true })) })) throw new Error(`AuthZEN batch answered ${batch}`);
    const client = createEnvoyClient(`127.0.0.1:${String(started.grpcPort)}`);
    const check = await client.check(checkRequest);
    client.close();
    if (check.status?.code !== undefined && check.status.code !== 0) throw new Error(`Check answered ${JSON.stringify(check.status)}`);

    const authzen: number[] = [];
    const authzenP50: number[] = [];
    const authzenP99: number[] = [];
    const batches: number[] = [];
    const envoy: number[] = [];
    const envoyP50: number[] = [];
    const envoyP99: number[] = [];
    let failures = 0;
    // Warm-up of both paths, not counted.
    await cannon(started.httpPort, "/access/v1/evaluation", EVALUATION, Math.min(5_000, requests));
    h2load(started.grpcPort, { requests: Math.min(5_000, requests), connections: CONNECTIONS, streams: IN_FLIGHT / CONNECTIONS, dataFile, logFile: join(dir, "h2load.log") });
    for (let r = 0; r < rounds; r++) {
      const a = await cannon(started.httpPort, "/access/v1/evaluation", EVALUATION, requests);
      authzen.push(a.rps);
      authzenP50.push(a.p50Ms);
      authzenP99.push(a.p99Ms);
      failures += a.non2xx + a.errors;
      const b = await cannon(started.httpPort, "/access/v1/evaluations", EVALUATIONS, Math.round(requests / 10));
      batches.push(b.rps * 10);
      failures += b.non2xx + b.errors;
      const e = h2load(started.grpcPort, { requests, connections: CONNECTIONS, streams: IN_FLIGHT / CONNECTIONS, dataFile, logFile: join(dir, "h2load.log") });
      envoy.push(e.rps);
      envoyP50.push(e.p50Ms);
      envoyP99.push(e.p99Ms);
      failures += e.failed;
    }
    return {
      name: "AuthZEN evaluations next to Envoy Checks (same policy, same server)",
      command: `npx tsx bench/authzen.bench.ts --rounds ${String(rounds)} --requests ${String(requests)}`,
      figures: {
        authzen_evaluation_rps: round(median(authzen), 0),
        authzen_evaluation_rps_range: range(authzen, 0),
        authzen_evaluation_p50_ms: round(median(authzenP50)),
        authzen_evaluation_p99_ms: round(median(authzenP99)),
        authzen_evaluations_batch10_decisions_per_s: round(median(batches), 0),
        envoy_check_rps: round(median(envoy), 0),
        envoy_check_rps_range: range(envoy, 0),
        envoy_check_p50_ms: round(median(envoyP50)),
        envoy_check_p99_ms: round(median(envoyP99)),
        authzen_over_envoy: round(median(authzen) / median(envoy)),
        failed_or_non_2xx: failures,
      },
      notes: `${String(CONNECTIONS)} connections, ${String(IN_FLIGHT)} requests in flight on each path (autocannon pipelining ${String(IN_FLIGHT / CONNECTIONS)} per HTTP/1.1 connection; h2load -m ${String(IN_FLIGHT / CONNECTIONS)} streams per HTTP/2 connection), ${String(rounds)} alternating rounds of ${String(requests)} requests (the batch: ${String(Math.round(requests / 10))} requests of 10 evaluations). One Vigil process serves both ports; the load generators run on the same 2 cores.`,
    };
  } finally {
    if (vigil.child !== undefined && vigil.child.exitCode === null) {
      const exited = new Promise((resolve) => vigil.child?.once("exit", resolve));
      vigil.child.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const result = await runAuthzenBench({ rounds: numberArg("--rounds", 3), requests: numberArg("--requests", 40_000) });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
