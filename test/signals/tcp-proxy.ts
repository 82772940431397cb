// A loopback TCP proxy that can cut every connection and refuse new ones, to play a network
// outage between a store and a real NATS server, or hold the server's replies for a while (a
// write that lands but whose answer comes too late).

import { connect as tcpConnect, createServer } from "node:net";
import type { Server, Socket } from "node:net";

export class TcpProxy {
  readonly #targetHost: string;
  readonly #targetPort: number;
  /** Every open connection: the client's socket and the one to the server. */
  readonly #links = new Set<{ client: Socket; upstream: Socket }>();
  #server: Server | undefined;
  #port = 0;

  constructor(targetHost: string, targetPort: number) {
    this.#targetHost = targetHost;
    this.#targetPort = targetPort;
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.#port}`;
  }

  /** Listens on the port used before (or a free one the first time). */
  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = tcpConnect(this.#targetPort, this.#targetHost);
      const link = { client, upstream };
      this.#links.add(link);
      const close = (): void => {
        this.#links.delete(link);
        client.destroy();
        upstream.destroy();
      };
      client.on("error", close).on("close", close);
      upstream.on("error", close).on("close", close);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("proxy has no TCP address");
    this.#port = address.port;
    this.#server = server;
  }

  /**
   * Holds what the server sends on every open connection for `ms`, then lets it all through in
   * order: requests still reach the server, their answers arrive late.
   */
  holdReplies(ms: number): void {
    for (const { client, upstream } of this.#links) {
      upstream.unpipe(client);
      upstream.pause();
      setTimeout(() => {
        if (!upstream.destroyed && !client.destroyed) upstream.pipe(client);
      }, ms);
    }
  }

  /** Cuts every connection and stops listening: the bus is gone. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const { client, upstream } of this.#links) {
      client.destroy();
      upstream.destroy();
    }
    this.#links.clear();
    if (server !== undefined) {
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    }
  }
}

/** Whether something accepts TCP connections at host:port within the timeout. */
export function canConnect(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, host);
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => {
      done(false);
    });
    socket.once("connect", () => {
      done(true);
    });
    socket.once("error", () => {
      done(false);
    });
  });
}
