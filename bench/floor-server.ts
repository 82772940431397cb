// The throughput floor for benchmarks: a grpc-js server that answers every Check with the same
// pre-encoded allow and never decodes the request, so h2load against it measures HTTP/2 and
// grpc-js alone (hot-path.md, "transport only"). Vigil's real server is compared against it.
// Run: `tsx bench/floor-server.ts [port]` (default 9191; 0 picks a free one and prints it).

import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import type { Decision } from "../src/model/index.js";
import { encodeCheckResponse } from "../src/transport/envoy/index.js";

const CHECK_PATH = "/envoy.service.auth.v3.Authorization/Check";

/** A typical allow, encoded once: the same size on the wire as what Vigil answers. */
const FIXED_ALLOW: Decision = {
  id: "00000000-0000-4000-8000-000000000000",
  outcome: "allow",
  rule: "floor",
  reason: "",
  caller: "spiffe://example.org/ns/ci/sa/release-pipeline",
  trustDomain: "example.org",
  credentialFingerprint: "sha256:0000000000000000000000000000000000000000000000000000000000000000",
  headersToRemove: [],
  durationNs: 0,
};

export interface FloorServer {
  port: number;
  close(): Promise<void>;
}

export async function startFloorServer(port: number, host = "127.0.0.1"): Promise<FloorServer> {
  const answer = encodeCheckResponse(FIXED_ALLOW);
  const server = new grpc.Server();
  const check: grpc.MethodDefinition<Buffer, Buffer> = {
    path: CHECK_PATH,
    requestStream: false,
    responseStream: false,
    // Identity (de)serialisers: the request bytes are never looked at.
    requestSerialize: (value) => value,
    requestDeserialize: (bytes) => bytes,
    responseSerialize: (value) => value,
    responseDeserialize: (bytes) => bytes,
  };
  const handle: grpc.handleUnaryCall<Buffer, Buffer> = (_call, callback) => {
    callback(null, answer);
  };
  server.addService({ Check: check }, { Check: handle });
  const bound = await new Promise<number>((resolvePort, reject) => {
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => {
      if (err !== null) reject(err);
      else resolvePort(p);
    });
  });
  return {
    port: bound,
    close: () => new Promise((done) => {
      server.tryShutdown(() => {
        done();
      });
    }),
  };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const floor = await startFloorServer(Number(process.argv[2] ?? 9191));
  console.log(`floor server listening on 127.0.0.1:${floor.port}`);
  const stop = (): void => {
    void floor.close().then(() => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
