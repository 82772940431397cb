// Threat T1 (SECURITY.md): a compromised app container shares the pod's loopback, so a Check port
// on 127.0.0.1 lets it call Vigil with forged attributes. With grpc.socket Vigil serves Check and
// grpc.health.v1 on a Unix socket instead (in a volume only Envoy and Vigil mount): these rows
// start the real server that way and play Envoy over `unix:`, check nothing listens on TCP, the
// socket's mode, and what happens to whatever already sits at the path.

import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { VigilError } from "../../src/errors/index.js";
import { SUPPORT_BOT } from "../support/example-world.js";
import { createEnvoyClient, type EnvoyLikeRequest } from "../support/envoy-client.js";
import { startTestVigil, type TestVigil } from "../support/vigil.js";
import { freePort } from "../support/ports.js";

/** An honest request the example policy allows (scenario 6). */
const HONEST: EnvoyLikeRequest = { sourcePrincipal: SUPPORT_BOT, host: "tickets", method: "GET", path: "/api/tickets/4711" };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "vigil-uds-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const started: TestVigil[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((v) => v.close()));
});

async function startOnSocket(socket: string, port = 0): Promise<TestVigil> {
  const vigil = await startTestVigil({ grpc: { socket, port } });
  started.push(vigil);
  return vigil;
}

/** A TCP port nothing listens on right now. */

/** "refused" when nothing accepts TCP connections on 127.0.0.1:port, else "accepted". */
function tcpConnect(port: number): Promise<"accepted" | "refused"> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve("accepted");
    });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNREFUSED") resolve("refused");
      else reject(err);
    });
  });
}

/** Leaves a socket file nobody listens on, as a Vigil killed with SIGKILL would. */
function leaveStaleSocket(path: string): void {
  const script = "require('node:net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))";
  spawnSync(process.execPath, ["-e", script, path], { stdio: "ignore" });
  expect(statSync(path).isSocket()).toBe(true);
}

describe("Check on a Unix socket (grpc.socket)", () => {
  it("answers Envoy's Check and health over unix:, and nothing listens on the TCP port", async () => {
    const socket = join(dir, "serving.sock");
    const port = await freePort();
    // The TCP port is set too, to show the socket replaces it rather than adding to it.
    const vigil = await startOnSocket(socket, port);
    expect(vigil.grpcAddress).toBe(`unix:${socket}`);
    expect(vigil.grpcPort).toBe(0);

    const envoy = createEnvoyClient(`unix:${socket}`);
    try {
      expect(await envoy.health()).toBe("SERVING");
      const res = await envoy.check(HONEST);
      expect(res.status?.code ?? 0).toBe(0);
      expect(res.ok_response).toBeDefined();
      const denied = await envoy.check({ ...HONEST, path: "/api/tickets/../admin" });
      expect(denied.status?.code).not.toBe(0);
    } finally {
      envoy.close();
    }
    expect(await tcpConnect(port)).toBe("refused");
  });

  it("creates the socket with mode 0660: owner and group may connect, nobody else", async () => {
    const socket = join(dir, "mode.sock");
    await startOnSocket(socket);
    const stat = statSync(socket);
    expect(stat.isSocket()).toBe(true);
    expect((stat.mode & 0o777).toString(8)).toBe("660");
  });

  // libuv unlinks it with the listener; this guards that across grpc-js upgrades.
  it("leaves no socket file behind on close", async () => {
    const socket = join(dir, "closed.sock");
    const vigil = await startOnSocket(socket);
    await vigil.close();
    started.splice(started.indexOf(vigil), 1);
    expect(() => statSync(socket)).toThrow(/ENOENT/);
  });

  it("replaces a stale socket left by a killed process", async () => {
    const socket = join(dir, "stale.sock");
    leaveStaleSocket(socket);
    await startOnSocket(socket);
    const envoy = createEnvoyClient(`unix:${socket}`);
    try {
      expect(await envoy.health()).toBe("SERVING");
    } finally {
      envoy.close();
    }
  });

  it("refuses a socket another process still serves on, and leaves that process reachable", async () => {
    const socket = join(dir, "live.sock");
    const first = await startOnSocket(socket);
    const err: unknown = await startOnSocket(socket).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(VigilError);
    expect((err as VigilError).message).toMatch(/another process is serving on .*live\.sock; refusing to replace its socket/);
    const envoy = createEnvoyClient(first.grpcAddress);
    try {
      expect(await envoy.health()).toBe("SERVING");
    } finally {
      envoy.close();
    }
  });

  interface Refusal { what: string; prepare: (path: string) => void; unchanged: (path: string) => void }
  const refusals: Refusal[] = [
    {
      what: "a regular file (a mistyped --grpc-socket naming a real file)",
      prepare: (path) => { writeFileSync(path, "precious data\n"); },
      unchanged: (path) => { expect(readFileSync(path, "utf8")).toBe("precious data\n"); },
    },
    {
      what: "a directory",
      prepare: (path) => {
        mkdirSync(path);
        writeFileSync(join(path, "inside"), "kept");
      },
      unchanged: (path) => { expect(readFileSync(join(path, "inside"), "utf8")).toBe("kept"); },
    },
  ];

  it.each(refusals.map((r, i) => [r.what, r, i] as const))("refuses to start over %s and leaves it alone", async (_what, row, i) => {
    const path = join(dir, `occupied-${String(i)}`);
    row.prepare(path);
    const err: unknown = await startOnSocket(path).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(VigilError);
    expect((err as VigilError).code).toBe("invalid_input");
    expect((err as VigilError).message).toMatch(/exists and is not a socket; refusing to replace it/);
    row.unchanged(path);
  });

  it("refuses a socket path in a directory that does not exist, with a clear error", async () => {
    const err: unknown = await startOnSocket(join(dir, "missing", "authz.sock")).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(VigilError);
    expect((err as VigilError).code).toBe("invalid_input");
    expect((err as VigilError).message).toMatch(/cannot listen for gRPC on unix:.*missing\/authz\.sock: directory .*missing does not exist/);
  });
});
