// A server for the throughput benchmark, run as its own process so h2load, the floor server and
// Vigil each get the machine the same way. `vigil` runs the full sidecar (example policy and
// signals, decision log to stdout); `floor` answers every Check with a fixed OK without decoding.
// Prints "ready <port>" on stdout once it listens.
// Vigil runs from dist/ (what `npm start` and the image run: tsc output), not from tsx's on-the-fly
// transpilation, whose keepNames helpers add calls on the hot path. Build first (npm run build).
// Run: node --import tsx bench/target.ts vigil|floor

import { startFloorServer } from "./floor-server.js";

type Serve = typeof import("../src/cli/serve.js");
type Config = typeof import("../src/config/index.js");
type Telemetry = typeof import("../src/telemetry/index.js");
const DIST = new URL("../dist/", import.meta.url).href;

const kind = process.argv[2];
let close: () => Promise<void>;
if (kind === "floor") {
  const floor = await startFloorServer(0);
  close = () => floor.close();
  process.stderr.write(`ready ${floor.port}\n`);
} else if (kind === "vigil") {
  const { startVigil } = await import(`${DIST}cli/serve.js`) as Serve;
  const { parseConfig } = await import(`${DIST}config/index.js`) as Config;
  const { createLogger } = await import(`${DIST}telemetry/index.js`) as Telemetry;
  const vigil = await startVigil(parseConfig({
    grpc: { port: 0 }, http: { port: 0 }, policyDir: "examples/policies", signalsFile: "examples/signals.yaml",
    store: { journalPath: "" },
  }), { logger: createLogger({ level: process.env.BENCH_LOG_LEVEL ?? "info" }) });
  close = () => vigil.close();
  process.stderr.write(`ready ${vigil.grpcPort}\n`);
} else {
  throw new Error("usage: target.ts vigil|floor");
}
process.on("SIGTERM", () => {
  void close().then(() => process.exit(0));
});
