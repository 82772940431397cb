// A server for the throughput benchmark, run as its own process so h2load, the floor server and
// Vigil each get the machine the same way. `vigil` runs the full sidecar (example policy and
// signals, decision log to stdout); `floor` answers every Check with a fixed OK without decoding;
// `floor-standard` decodes with proto-loader and answers a fixed OK (floor-server.ts);
// `floor-http2` does the same on node:http2 without grpc-js.
// VIGIL_POLICY_DIR / VIGIL_SIGNALS_FILE replace the example policy and signals (thousand-rules.ts).
// Prints "ready <port>" on stdout once it listens.
// Vigil runs from dist/ (what `npm start` and the image run: tsc output), not from tsx's on-the-fly
// transpilation, whose keepNames helpers add calls on the hot path. Build first (npm run build).
// Run: node --import tsx bench/target.ts vigil|floor|floor-standard|floor-http2   (h2load.ts's startTarget adds
// the image's Node flags, SIDECAR_NODE_FLAGS in lib.ts, for vigil)

type Serve = typeof import("../src/cli/serve.js");
type Config = typeof import("../src/config/index.js");
type Telemetry = typeof import("../src/telemetry/index.js");
const DIST = new URL("../dist/", import.meta.url).href;

const kind = process.argv[2];
let close: () => Promise<void>;
if (kind === "floor" || kind === "floor-standard" || kind === "floor-http2") {
  // Imported here, not at the top: floor-server.ts loads src/ (through tsx), a second copy of
  // Vigil's own modules that the Vigil target must not carry (see below).
  const { startFloorServer } = await import("./floor-server.js");
  const floor = await startFloorServer(0, "127.0.0.1", kind === "floor" ? "transport" : kind === "floor-http2" ? "http2" : "standard");
  close = () => floor.close();
  process.stderr.write(`ready ${floor.port}\n`);
} else if (kind === "vigil") {
  const { startVigil } = await import(`${DIST}cli/serve.js`) as Serve;
  const { parseConfig } = await import(`${DIST}config/index.js`) as Config;
  const { createLogger } = await import(`${DIST}telemetry/index.js`) as Telemetry;
  const vigil = await startVigil(parseConfig({
    grpc: { port: 0 }, http: { port: 0 }, policyDir: process.env.VIGIL_POLICY_DIR ?? "examples/policies",
    signalsFile: process.env.VIGIL_SIGNALS_FILE ?? "examples/signals.yaml",
    store: { journalPath: "" },
  }), { logger: createLogger({ level: process.env.BENCH_LOG_LEVEL ?? "info" }) });
  close = () => vigil.close();
  process.stderr.write(`ready ${vigil.grpcPort}\n`);
} else {
  throw new Error("usage: target.ts vigil|floor|floor-standard|floor-http2");
}
process.on("SIGTERM", () => {
  void close().then(() => process.exit(0));
});
