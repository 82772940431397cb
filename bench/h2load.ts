// Shared pieces of the h2load benchmarks: start a target server as its own process (on a chosen
// Node binary), drive it with h2load (Debian nghttp2-client), and read its CPU time from /proc.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { createInterface } from "node:readline";
import { SIDECAR_NODE_FLAGS, percentile, sortedCopy } from "./lib.js";

export const CHECK_URL_PATH = "/envoy.service.auth.v3.Authorization/Check";

export interface Target { kind: string; child: ChildProcess; port: number }

export interface TargetOptions {
  node?: string;
  env?: NodeJS.ProcessEnv;
  /** Node flags added to the target's own (e.g. --perf-basic-prof). */
  nodeFlags?: readonly string[];
  /** A program and its arguments that run Node (e.g. valgrind --tool=callgrind ...). */
  wrapper?: readonly string[];
}

/**
 * Starts `bench/target.ts KIND` and waits for its "ready <port>" line. Vigil runs with the Node
 * flags the image ships (SIDECAR_NODE_FLAGS); the floor servers with Node's defaults.
 */
export async function startTarget(kind: string, options: TargetOptions = {}): Promise<Target> {
  const flags = kind === "vigil" ? SIDECAR_NODE_FLAGS : [];
  const command = [...options.wrapper ?? [], options.node ?? process.execPath, ...flags, ...options.nodeFlags ?? [], "--import", "tsx", "bench/target.ts", kind];
  const child = spawn(command[0] ?? "", command.slice(1), {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...options.env },
  });
  const lines = createInterface({ input: child.stderr });
  const errors: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => { reject(new Error(`${kind} target exited with ${code ?? "signal"}: ${errors.join("\n")}`)); });
    lines.on("line", (line) => {
      const match = /^ready (\d+)$/.exec(line);
      if (match) resolve(Number(match[1]));
      else if (errors.length < 50) errors.push(line);
    });
  });
  return { kind, child, port };
}

export async function stopTarget(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

export interface H2loadRun { rps: number; p50Ms: number; p99Ms: number; ok: number; failed: number }

export interface H2loadOptions {
  requests: number;
  connections: number;
  streams: number;
  dataFile: string;
  logFile: string;
  path?: string;
}

export function h2load(port: number, o: H2loadOptions): H2loadRun {
  // h2load appends to an existing log file; each run reads its own requests only.
  rmSync(o.logFile, { force: true });
  const res = spawnSync("h2load", [
    "-n", String(o.requests), "-c", String(o.connections), "-m", String(o.streams), "-t", "1",
    "-d", o.dataFile, "-H", "content-type: application/grpc", "-H", "te: trailers", "--log-file", o.logFile,
    `http://127.0.0.1:${port}${o.path ?? CHECK_URL_PATH}`,
  ], { encoding: "utf8", timeout: 600_000 });
  if (res.status !== 0) throw new Error(`h2load failed: ${res.stderr}${res.stdout}`);
  const rps = Number(/finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(res.stdout)?.[1] ?? Number.NaN);
  const statusLine = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(res.stdout);
  const latencies = readFileSync(o.logFile, "utf8").trim().split("\n").map((line) => Number(line.split("\t")[2]) / 1000);
  const sorted = sortedCopy(latencies);
  return { rps, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), ok: Number(statusLine?.[3] ?? 0), failed: Number(statusLine?.[4] ?? 0) };
}

/** User + system CPU seconds a process (all its threads: GC, libuv) has used so far. */
export function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / clockTicks();
}

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    const out = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
    ticksPerSecond = Number(out.stdout.trim()) || 100;
  }
  return ticksPerSecond;
}

export function residentMb(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match === null ? Number.NaN : Number(match[1]) / 1024;
}

export function median(values: number[]): number {
  return sortedCopy(values)[Math.floor(values.length / 2)] ?? Number.NaN;
}

/** "min–max" of a list of figures, for ranges over interleaved runs. */
export function range(values: number[], digits = 2): string {
  const f = 10 ** digits;
  const r = (v: number): number => Math.round(v * f) / f;
  return `${r(Math.min(...values))}–${r(Math.max(...values))}`;
}
