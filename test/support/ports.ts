// Loopback ports for tests that start real servers and processes.

import { createServer } from "node:net";

/** A loopback TCP port free right now (bound to port 0, then closed): nothing listens on it. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => { server.listen(0, "127.0.0.1", resolve); });
  const address = server.address();
  await new Promise<void>((resolve) => { server.close(() => { resolve(); }); });
  if (address === null || typeof address === "string") throw new Error("no TCP port");
  return address.port;
}
