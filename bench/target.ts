// A server for the throughput benchmark, run as its own process so h2load, the floor server and
// Vigil each get the machine the same way. `vigil` runs the full sidecar (example policy and
// signals, decision log to stdout); `floor` answers every Check with a fixed OK without decoding.
// Prints "ready <port>" on stdout once it listens.
// Run: node --import tsx bench/target.ts vigil|floor

import { pino } from "pino";
import { startVigil } from "../src/cli/serve.js";
import { parseConfig } from "../src/config/index.js";
import { startFloorServer } from "./floor-server.js";

const kind = process.argv[2];
let close: () => Promise<void>;
if (kind === "floor") {
  const floor = await startFloorServer(0);
  close = () => floor.close();
  process.stderr.write(`ready ${floor.port}\n`);
} else if (kind === "vigil") {
  const vigil = await startVigil(parseConfig({
    grpc: { port: 0 }, http: { port: 0 }, policyDir: "examples/policies", signalsFile: "examples/signals.yaml",
    store: { journalPath: "" },
  }), { logger: pino({ level: process.env.BENCH_LOG_LEVEL ?? "info" }, pino.destination({ dest: 1, sync: false, minLength: 4096 })) });
  close = () => vigil.close();
  process.stderr.write(`ready ${vigil.grpcPort}\n`);
} else {
  throw new Error("usage: target.ts vigil|floor");
}
process.on("SIGTERM", () => {
  void close().then(() => process.exit(0));
});
