// The throughput floors for benchmarks, two do-nothing grpc-js servers that answer every Check
// with a fixed OK (hot-path.md):
// - "transport": never decodes the request and answers pre-encoded bytes, so h2load against it
//   measures HTTP/2 and grpc-js alone;
// - "standard": what a do-nothing grpc-js service written the usual way costs: proto-loader's own
//   deserialiser (protobufjs decode + toObject) for the request and its serialiser for a fixed
//   `{status: {code: 0}}`. Issue #9's "faster than doing nothing" is measured against this one.
// Run: `tsx bench/floor-server.ts [port] [transport|standard]` (default 9191, transport; port 0
// picks a free one and prints it).

import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import type { ServiceDefinition } from "@grpc/proto-loader";
import type { Decision } from "../src/model/index.js";
import { encodeCheckResponse } from "../src/transport/envoy/index.js";
import { loadAuthorizationPackage } from "../src/transport/envoy/proto.js";

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

export type FloorMode = "transport" | "standard";

/** proto-loader's own Check method definition: its deserialiser decodes and calls toObject. */
function standardCheck(): grpc.MethodDefinition<unknown, unknown> {
  const definition = loadAuthorizationPackage()["envoy.service.auth.v3.Authorization"] as ServiceDefinition | undefined;
  const check = definition?.Check;
  if (check === undefined) throw new Error("proto-loader found no Authorization/Check");
  return check as grpc.MethodDefinition<unknown, unknown>;
}

export async function startFloorServer(port: number, host = "127.0.0.1", mode: FloorMode = "transport"): Promise<FloorServer> {
  const server = new grpc.Server();
  if (mode === "standard") {
    const check = standardCheck();
    // Read the request the way a handler would, so the decode cannot be optimised away.
    let seen = 0;
    server.addService({ Check: check }, {
      Check: (call: grpc.ServerUnaryCall<{ attributes?: unknown }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (call.request.attributes !== undefined) seen++;
        callback(null, { status: { code: seen >= 0 ? 0 : 2 } });
      },
    });
    return bindFloor(server, port, host);
  }
  const answer = encodeCheckResponse(FIXED_ALLOW);
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
  return bindFloor(server, port, host);
}

async function bindFloor(server: grpc.Server, port: number, host: string): Promise<FloorServer> {
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
  const floor = await startFloorServer(Number(process.argv[2] ?? 9191), "127.0.0.1", process.argv[3] === "standard" ? "standard" : "transport");
  console.log(`floor server listening on 127.0.0.1:${floor.port}`);
  const stop = (): void => {
    void floor.close().then(() => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
