// gRPC Check throughput and latency under h2load (Debian nghttp2-client): the full Vigil sidecar
// against the floor — a trivial grpc-js server that returns a fixed OK without decoding — on the
// same machine, runs alternating. The request is Envoy-shaped (mTLS principals, 14 headers with a
// bearer token, context extensions) and is allowed by a CEL rule of the example policy.
// Goal: Vigil ≥ 80% of the floor's throughput.
// Run: npx tsx bench/check-throughput.bench.ts [--runs 3] [--requests 100000]

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { buildCheckRequestBytes } from "../test/support/envoy-client.js";
import { grpcFrame } from "./h2load-data.js";
import { percentile, round, sortedCopy, type BenchResult } from "./lib.js";

const CONNECTIONS = 2;
const STREAMS = 64;

async function startTarget(kind: "vigil" | "floor"): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", "bench/target.ts", kind], { stdio: ["ignore", "ignore", "pipe"] });
  const lines = createInterface({ input: child.stderr });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => { reject(new Error(`${kind} target exited with ${code ?? "signal"}`)); });
    lines.on("line", (line) => {
      const match = /^ready (\d+)$/.exec(line);
      if (match) resolve(Number(match[1]));
    });
  });
  return { child, port };
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

interface H2loadRun { rps: number; p50Ms: number; p99Ms: number; ok: number; failed: number }

function h2load(port: number, dataFile: string, requests: number, logFile: string, connections = CONNECTIONS, streams = STREAMS): H2loadRun {
  const res = spawnSync("h2load", [
    "-n", String(requests), "-c", String(connections), "-m", String(streams), "-t", "1",
    "-d", dataFile, "-H", "content-type: application/grpc", "-H", "te: trailers", "--log-file", logFile,
    `http://127.0.0.1:${port}/envoy.service.auth.v3.Authorization/Check`,
  ], { encoding: "utf8", timeout: 300_000 });
  if (res.status !== 0) throw new Error(`h2load failed: ${res.stderr}${res.stdout}`);
  const rps = Number(/finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(res.stdout)?.[1] ?? Number.NaN);
  const statusLine = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(res.stdout);
  const latencies = readFileSync(logFile, "utf8").trim().split("\n").map((line) => Number(line.split("\t")[2]) / 1000);
  const sorted = sortedCopy(latencies);
  return { rps, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), ok: Number(statusLine?.[3] ?? 0), failed: Number(statusLine?.[4] ?? 0) };
}

function residentMb(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match === null ? Number.NaN : Number(match[1]) / 1024;
}

export async function runThroughputBench(runs = 3, requests = 100_000): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-h2load-"));
  const dataFile = join(dir, "check.grpc");
  const request = buildCheckRequestBytes({
    sourcePrincipal: "spiffe://example.org/ns/ci/sa/deployer", destinationPrincipal: "spiffe://example.org/ns/ci/sa/deploy-api",
    host: "deploy-api", method: "POST", path: "/v1/deploy", authorization: "Bearer eyJhbGciOiJFUzI1NiJ9.bench.token",
    contextExtensions: { action: "deploy", env: "staging" },
  });
  writeFileSync(dataFile, grpcFrame(request));
  const results: Record<"vigil" | "floor", H2loadRun[]> = { vigil: [], floor: [] };
  let single: H2loadRun | undefined;
  let rssMb = Number.NaN;
  try {
    for (let r = 0; r < runs; r++) {
      for (const kind of ["floor", "vigil"] as const) {
        const { child, port } = await startTarget(kind);
        try {
          h2load(port, dataFile, Math.min(20_000, requests), join(dir, "warmup.log"));
          results[kind].push(h2load(port, dataFile, requests, join(dir, `${kind}-${r}.log`)));
          if (kind === "vigil" && r === runs - 1) {
            rssMb = residentMb(child.pid);
            // One request at a time: the latency one Envoy sees when Vigil is not saturated.
            single = h2load(port, dataFile, Math.min(10_000, requests), join(dir, "single.log"), 1, 1);
          }
        } finally {
          await stop(child);
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const median = (values: number[]): number => sortedCopy(values)[Math.floor(values.length / 2)] ?? Number.NaN;
  const vigilRps = median(results.vigil.map((x) => x.rps));
  const floorRps = median(results.floor.map((x) => x.rps));
  return {
    name: "gRPC Check throughput (h2load) — Vigil vs. floor",
    command: `npx tsx bench/check-throughput.bench.ts --runs ${runs} --requests ${requests}`,
    figures: {
      request_bytes: request.length,
      h2load: `-n ${requests} -c ${CONNECTIONS} -m ${STREAMS} -t 1`,
      floor_rps_runs: results.floor.map((x) => Math.round(x.rps)).join(", "),
      vigil_rps_runs: results.vigil.map((x) => Math.round(x.rps)).join(", "),
      vigil_over_floor: round(vigilRps / floorRps, 3),
      floor_p50_ms: round(median(results.floor.map((x) => x.p50Ms))),
      floor_p99_ms: round(median(results.floor.map((x) => x.p99Ms))),
      vigil_p50_ms: round(median(results.vigil.map((x) => x.p50Ms))),
      vigil_p99_ms: round(median(results.vigil.map((x) => x.p99Ms))),
      failed_requests: [...results.floor, ...results.vigil].reduce((n, x) => n + x.failed, 0),
      vigil_one_at_a_time_p50_ms: round(single?.p50Ms ?? Number.NaN, 3),
      vigil_one_at_a_time_p99_ms: round(single?.p99Ms ?? Number.NaN, 3),
      vigil_rss_after_load_mb: round(rssMb, 1),
    },
    notes: `p50/p99 under load are per request with ${CONNECTIONS * STREAMS} requests in flight, so they are mostly queueing; the one-at-a-time figures (h2load -c 1 -m 1) are what one Envoy waits for a Check when Vigil is not saturated.`,
  };
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const arg = (name: string, fallback: number): number => {
    const at = process.argv.indexOf(name);
    return at === -1 ? fallback : Number(process.argv[at + 1]);
  };
  process.stdout.write(`${JSON.stringify(await runThroughputBench(arg("--runs", 3), arg("--requests", 100_000)), null, 2)}\n`);
}
