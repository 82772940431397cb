// Issue #9, "faster than doing nothing": Vigil next to a do-nothing grpc-js server that decodes
// each CheckRequest with proto-loader and answers a fixed OK (floor-server.ts, "standard"), in one
// run, on the same machine, runs interleaved and alternating in order. Two requests, both
// 723-byte Envoy-shaped CheckRequests (mTLS principals, 15 headers with a bearer token, context
// extensions): one the example policy allows through a CEL rule (deploy-api staging-deploy), one
// no rule matches (a path deploy-api has no rule for), which Vigil denies.
// A third server in every round does the floor's work on node:http2 without grpc-js: the floor
// minus it is grpc-js's own share of a Check, which Vigil pays too (it is served by grpc-js).
// Per run: h2load -c 2 -m 64 throughput and the server's CPU per Check (utime + stime of the whole
// process, all threads, from /proc, before and after); per round: one-at-a-time p50 (-c 1 -m 1).
// Goals: Vigil's CPU per Check ≤ the floor's; one-at-a-time p50 within 0.03 ms of the floor's.
// Vigil runs from dist/ (npm run build first). --node picks the Node binary for both servers.
// Run: npx tsx bench/side-by-side.bench.ts [--rounds 5] [--requests 60000] [--node PATH]

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { buildCheckRequestBytes, createEnvoyClient, type EnvoyLikeRequest } from "../test/support/envoy-client.js";
import { grpcFrame } from "./h2load-data.js";
import { cpuSeconds, h2load, median, range, residentMb, startTarget, stopTarget, type Target } from "./h2load.js";
import { cliArg, numberArg, round, type BenchResult } from "./lib.js";

const CONNECTIONS = 2;
/**
 * The servers of each round: the do-nothing grpc-js floor, Vigil, and the same do-nothing work on
 * node:http2 without grpc-js (floor-server.ts "http2"), whose difference from the floor is grpc-js's
 * own share of a Check: the part Vigil, served by grpc-js, pays exactly as the floor does.
 */
const KINDS = ["floor-standard", "vigil", "floor-http2"] as const;
const STREAMS = 64;

const BASE: EnvoyLikeRequest = {
  sourcePrincipal: "spiffe://example.org/ns/ci/sa/deployer",
  destinationPrincipal: "spiffe://example.org/ns/ci/sa/deploy-api",
  host: "deploy-api",
  method: "POST",
  authorization: "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJyIn0.c2ln",
  headers: {
    "content-type": "application/json",
    "content-length": "182",
    "accept-encoding": "gzip",
    "x-forwarded-for": "10.0.1.17",
    "x-b3-sampled": "1",
    "traceparent": null,
    "x-envoy-attempt-count": "1",
  },
  contextExtensions: { action: "deploy", env: "staging" },
};

/** The two requests, with the answer Vigil must give (checked before any load). */
export const SIDE_BY_SIDE_CASES = [
  { name: "allow", request: { ...BASE, path: "/v1/deploy" }, expectAllow: true },
  { name: "deny", request: { ...BASE, path: "/v1/rollback" }, expectAllow: false },
] as const;

interface Sample { rps: number; cpuUsPerCheck: number }

/** The cases with their CheckRequest bytes, each also written to `dir` as an h2load data file (a gRPC frame). */
export function writeCases(dir: string): (typeof SIDE_BY_SIDE_CASES[number] & { bytes: Buffer; dataFile: string })[] {
  return SIDE_BY_SIDE_CASES.map((c) => {
    const bytes = buildCheckRequestBytes(c.request);
    const dataFile = join(dir, `${c.name}.grpc`);
    writeFileSync(dataFile, grpcFrame(bytes));
    return { ...c, bytes, dataFile };
  });
}

/** Checks, before any load, that `target` answers `bytes` as it must (Vigil: `expectAllow`; the floor: always OK). */
export async function verify(target: Target, bytes: Buffer, expectAllow: boolean): Promise<void> {
  const client = createEnvoyClient(`127.0.0.1:${target.port}`);
  try {
    const answer = await client.checkRaw(bytes);
    const allowed = (answer.status?.code ?? 0) === 0;
    const want = target.kind === "vigil" ? expectAllow : true;
    if (allowed !== want) {
      throw new Error(`${target.kind} answered ${allowed ? "allow" : "deny"}, the bench expects ${want ? "allow" : "deny"}`);
    }
  } finally {
    client.close();
  }
}

export interface SideBySideOptions { rounds: number; requests: number; node?: string; label?: string }

export async function runSideBySideBench(o: SideBySideOptions): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-side-"));
  const cases = writeCases(dir);
  const load = { connections: CONNECTIONS, streams: STREAMS, requests: o.requests, logFile: join(dir, "load.log") };
  const samples = new Map<string, Sample[]>();
  const single = new Map<string, number[]>();
  const push = <T>(m: Map<string, T[]>, key: string, value: T): void => {
    const list = m.get(key) ?? [];
    list.push(value);
    m.set(key, list);
  };
  let failed = 0;
  let vigilRss = Number.NaN;
  let nodeVersion = process.version;
  const targets: Target[] = [];
  try {
    for (let round = 0; round < o.rounds; round++) {
      // Both servers are up for the whole round (an idle one costs nothing); the order alternates.
      const kinds = round % 2 === 0 ? [...KINDS] : [...KINDS].reverse();
      targets.length = 0;
      for (const kind of kinds) targets.push(await startTarget(kind, { node: o.node }));
      for (const t of targets) {
        for (const c of cases) await verify(t, c.bytes, c.expectAllow);
        // Warm-up: JIT and caches, not measured.
        h2load(t.port, { ...load, requests: Math.min(20_000, o.requests), dataFile: cases[0]?.dataFile ?? "" });
      }
      for (const c of cases) {
        for (const t of targets) {
          const before = cpuSeconds(t.child.pid);
          const run = h2load(t.port, { ...load, dataFile: c.dataFile });
          const cpu = cpuSeconds(t.child.pid) - before;
          failed += run.failed;
          push(samples, `${t.kind}/${c.name}`, { rps: run.rps, cpuUsPerCheck: (cpu * 1e6) / Math.max(1, run.ok) });
        }
      }
      for (const c of cases) {
        for (const t of targets) {
          const run = h2load(t.port, { ...load, connections: 1, streams: 1, requests: Math.min(5_000, o.requests), dataFile: c.dataFile });
          failed += run.failed;
          push(single, `${t.kind}/${c.name}`, run.p50Ms);
        }
      }
      const vigil = targets.find((t) => t.kind === "vigil");
      vigilRss = residentMb(vigil?.child.pid);
      for (const t of targets) await stopTarget(t.child);
    }
    if (o.node !== undefined) nodeVersion = execFileSync(o.node, ["--version"], { encoding: "utf8" }).trim();
  } finally {
    for (const t of targets) await stopTarget(t.child);
    rmSync(dir, { recursive: true, force: true });
  }
  const figures: Record<string, number | string> = {
    node: nodeVersion,
    request_bytes: cases.map((c) => `${c.name} ${c.bytes.length}`).join(", "),
    h2load: `-n ${o.requests} -c ${CONNECTIONS} -m ${STREAMS} -t 1, ${o.rounds} rounds`,
  };
  for (const c of cases) {
    const floor = samples.get(`floor-standard/${c.name}`) ?? [];
    const vigil = samples.get(`vigil/${c.name}`) ?? [];
    const cpuRatios = vigil.map((v, i) => v.cpuUsPerCheck / (floor[i]?.cpuUsPerCheck ?? Number.NaN));
    const rpsRatios = vigil.map((v, i) => v.rps / (floor[i]?.rps ?? Number.NaN));
    figures[`${c.name}: floor cpu_us_per_check`] = range(floor.map((s) => s.cpuUsPerCheck), 1);
    figures[`${c.name}: vigil cpu_us_per_check`] = range(vigil.map((s) => s.cpuUsPerCheck), 1);
    figures[`${c.name}: vigil/floor cpu per check`] = `${range(cpuRatios)} (median ${round(median(cpuRatios))})`;
    figures[`${c.name}: floor rps`] = floor.map((s) => Math.round(s.rps)).join(", ");
    figures[`${c.name}: vigil rps`] = vigil.map((s) => Math.round(s.rps)).join(", ");
    figures[`${c.name}: vigil/floor throughput`] = `${range(rpsRatios)} (median ${round(median(rpsRatios))})`;
    const fs = single.get(`floor-standard/${c.name}`) ?? [];
    const vs = single.get(`vigil/${c.name}`) ?? [];
    figures[`${c.name}: one-at-a-time p50 ms floor`] = range(fs, 3);
    figures[`${c.name}: one-at-a-time p50 ms vigil`] = range(vs, 3);
    figures[`${c.name}: one-at-a-time p50 vigil − floor ms (median)`] = round(median(vs) - median(fs), 3);
    const bare = samples.get(`floor-http2/${c.name}`) ?? [];
    const shares = floor.map((f, i) => f.cpuUsPerCheck - (bare[i]?.cpuUsPerCheck ?? Number.NaN));
    const hs = single.get(`floor-http2/${c.name}`) ?? [];
    figures[`${c.name}: floor on node:http2 (no grpc-js) cpu_us_per_check`] = range(bare.map((s) => s.cpuUsPerCheck), 1);
    figures[`${c.name}: grpc-js's own share, floor − floor on node:http2, cpu µs per check`] = `${range(shares, 1)} (median ${round(median(shares), 1)})`;
    figures[`${c.name}: grpc-js's own share of one-at-a-time p50 ms (median)`] = round(median(fs) - median(hs), 3);
  }
  figures.failed_requests = failed;
  figures.vigil_rss_after_load_mb = round(vigilRss, 1);
  return {
    name: `Vigil side by side with a do-nothing grpc-js server${o.label === undefined ? "" : ` (${o.label})`}`,
    command: `npx tsx bench/side-by-side.bench.ts --rounds ${o.rounds} --requests ${o.requests}${o.node === undefined ? "" : ` --node ${relative(process.cwd(), o.node)}`}`,
    figures,
    notes: "floor = grpc-js with proto-loader's deserialiser (decode + toObject) answering a fixed OK; floor on node:http2 = the same work served without grpc-js. CPU per Check is the server process's utime + stime (all threads) over one h2load run divided by the requests answered; ratios pair the runs of one round. Ranges are min–max over the rounds.",
  };
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const result = await runSideBySideBench({
    rounds: numberArg("--rounds", 5),
    requests: numberArg("--requests", 60_000),
    node: cliArg("--node"),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
