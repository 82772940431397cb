// Starts a real Vigil sidecar as its own OS process (`node --import tsx src/cli/main.ts serve`), on
// free loopback ports, with an admin tokens file in a scratch folder, and waits until /readyz says
// it is ready. For faults an in-process server cannot show: SIGKILL right after an acknowledged
// write, SIGTERM as the kubelet sends it. Also used by bench/soak.bench.ts to measure the
// sidecar's own memory apart from the load generator.

import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_TOKEN, adminCall, APPROVER_TOKEN, READ_ONLY_TOKEN } from "./vigil.js";
import { freePort } from "./ports.js";

/** The repository root (this file is test/support/vigil-process.ts). */
const ROOT = new URL("../../", import.meta.url).pathname;

export interface VigilProcessOptions {
  /** Scratch folder for the tokens file and, by default, the journal. */
  dir: string;
  /** Embedded journal path (default DIR/journal.jsonl); ignored with `bus`. */
  journal?: string;
  /** NATS URL: cluster mode. */
  bus?: string;
  bucketPrefix?: string;
  shutdownDrainMs?: number;
  /** YAML settings file contents (e.g. store.sweepIntervalMs), passed with --config. */
  settings?: string;
  /** More `vigil serve` flags. */
  args?: string[];
  /** Extra node flags (e.g. --max-old-space-size), after `--import tsx` so a .ts preload works. */
  nodeArgs?: string[];
  /** How long to wait for /readyz (default 30 s). */
  readyTimeoutMs?: number;
}

export interface AdminAnswer { status: number; json: unknown }

export interface VigilProcess {
  pid: number;
  grpcAddress: string;
  httpUrl: string;
  /** What the process wrote to stdout and stderr so far (its log lines). */
  output(): string;
  admin(method: string, path: string, body?: unknown, token?: string): Promise<AdminAnswer>;
  /** Sends the signal and resolves when the process has exited, with how it exited. */
  signal(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when the process exits by itself or by a signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns `vigil serve` and resolves once /readyz answers 200; rejects (and kills it) otherwise. */
export async function startVigilProcess(options: VigilProcessOptions): Promise<VigilProcess> {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const tokens = join(options.dir, "admin-tokens");
  writeFileSync(tokens, [
    `${ADMIN_TOKEN} ops-admin signals:write,signals:reinstate`,
    `${APPROVER_TOKEN} spiffe://example.org/ns/ops/sa/change-approver approvals:decide`,
    `${READ_ONLY_TOKEN} auditor`,
  ].join("\n") + "\n", { mode: 0o600 });
  const args = [
    "--import", "tsx", ...(options.nodeArgs ?? []), "src/cli/main.ts", "serve",
    "--grpc-port", String(grpcPort), "--http-port", String(httpPort),
    "--policy", "examples/policies", "--signals", "examples/signals.yaml",
    "--admin-tokens-file", tokens,
    "--shutdown-drain-ms", String(options.shutdownDrainMs ?? 0),
    "--log-level", "info",
    ...(options.bus !== undefined
      ? ["--bus", options.bus, "--bucket-prefix", options.bucketPrefix ?? "vigil"]
      : ["--journal", options.journal ?? join(options.dir, "journal.jsonl")]),
    ...(options.settings !== undefined ? ["--config", writeSettings(options.dir, options.settings)] : []),
    ...(options.args ?? []),
  ];
  const env: NodeJS.ProcessEnv = { ...process.env };
  // The test's own environment must not reconfigure the child.
  for (const name of ["VIGIL_BUS", "VIGIL_CONFIG", "VIGIL_ADMIN_TOKENS", "VIGIL_LOG_LEVEL", "VIGIL_SSF_PUSH_TOKENS"]) Reflect.deleteProperty(env, name);
  const child: ChildProcess = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => { resolve({ code, signal }); });
  });
  const state = { gone: false };
  void exited.then(() => { state.gone = true; });
  const httpUrl = `http://127.0.0.1:${String(httpPort)}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (state.gone) throw new Error(`vigil serve exited before it was ready:\n${output.slice(-4_000)}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`vigil serve was not ready within ${String(options.readyTimeoutMs ?? 30_000)} ms:\n${output.slice(-4_000)}`);
    }
    try {
      if ((await fetch(`${httpUrl}/readyz`)).status === 200) break;
    } catch { /* not listening yet */ }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (child.pid === undefined) throw new Error("vigil serve has no pid");
  return {
    pid: child.pid,
    grpcAddress: `127.0.0.1:${String(grpcPort)}`,
    httpUrl,
    output: () => output,
    admin: (method, path, body, token = ADMIN_TOKEN) => adminCall(httpUrl, method, path, body, token),
    signal: (signal) => {
      if (!state.gone) child.kill(signal);
      return exited;
    },
    exited,
  };
}

function writeSettings(dir: string, yaml: string): string {
  const file = join(dir, "settings.yaml");
  writeFileSync(file, yaml);
  return file;
}
