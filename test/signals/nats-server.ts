// Starts a private nats-server (from sbin) on a free loopback port with JetStream and the given
// authorization / tls configuration, for tests of credentials and TLS. Never the shared one on 4222.

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../support/ports.js";

export const NATS_SERVER = ["/usr/sbin/nats-server", "/usr/local/sbin/nats-server", "/usr/bin/nats-server"].find((p) => existsSync(p));

export interface NatsProcess {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** SIGKILL, as a crashed or OOM-killed server: nothing flushed, connections reset. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and JetStream directory (after stop or kill). */
  restart(): Promise<void>;
}

/** Spawns nats-server on `conf` and waits until it says it is ready. */
async function spawnReady(conf: string, name: string, env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const child: ChildProcess = spawn(NATS_SERVER ?? "nats-server", ["-c", conf], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`nats-server ${name} did not start: ${output}`)); }, 10_000);
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("Server is ready")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server ${name} exited with ${String(code)}: ${output}`));
    });
  });
  child.removeAllListeners("exit");
  return child;
}

function ended(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) { resolve(); return; }
    child.once("exit", () => { resolve(); });
    child.kill(signal);
  });
}

/** Starts nats-server with JetStream and `body` (authorization / tls blocks) on a free port. */
export async function startNats(scratch: string, name: string, body: string, scheme = "nats", env: NodeJS.ProcessEnv = {}): Promise<NatsProcess> {
  const port = await freePort();
  const conf = join(scratch, `${name}.conf`);
  writeFileSync(conf, `listen: "127.0.0.1:${String(port)}"\njetstream { store_dir: "${join(scratch, `${name}-js`)}" }\n${body}\n`);
  let child = await spawnReady(conf, name, env);
  return {
    url: `${scheme}://127.0.0.1:${String(port)}`,
    port,
    stop: () => ended(child, "SIGTERM"),
    kill: () => ended(child, "SIGKILL"),
    restart: async () => {
      child = await spawnReady(conf, name, env);
    },
  };
}
