// gRPC Check throughput and latency under h2load (Debian nghttp2-client): the full Vigil sidecar
// against the floor — a trivial grpc-js server that returns a fixed OK without decoding — on the
// same machine, runs alternating. The request is Envoy-shaped (mTLS principals, 14 headers with a
// bearer token, context extensions) and is allowed by a CEL rule of the example policy.
// Goal: Vigil ≥ 80% of the floor's throughput.
// Run: npx tsx bench/check-throughput.bench.ts [--runs 3] [--requests 100000]

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCheckRequestBytes } from "../test/support/envoy-client.js";
import { grpcFrame } from "./h2load-data.js";
import { h2load as runH2load, median, residentMb, startTarget, stopTarget as stop, type H2loadRun } from "./h2load.js";
import { numberArg, round, type BenchResult } from "./lib.js";

const CONNECTIONS = 2;
const STREAMS = 64;

function h2load(port: number, dataFile: string, requests: number, logFile: string, connections = CONNECTIONS, streams = STREAMS): H2loadRun {
  return runH2load(port, { dataFile, requests, logFile, connections, streams });
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
  process.stdout.write(`${JSON.stringify(await runThroughputBench(numberArg("--runs", 3), numberArg("--requests", 100_000)), null, 2)}\n`);
}
