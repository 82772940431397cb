// The throughput floors for benchmarks, two do-nothing grpc-js servers that answer every Check
// with a fixed OK (hot-path.md):
// - "transport": never decodes the request and answers pre-encoded bytes, so h2load against it
//   measures HTTP/2 and grpc-js alone;
// - "standard": what a do-nothing grpc-js service written the usual way costs: proto-loader's own
//   deserialiser (protobufjs decode + toObject) for the request and its serialiser for a fixed
//   `{status: {code: 0}}`. Issue #9's "faster than doing nothing" is measured against this one;
// - "http2": the same work as "standard" (proto-loader's deserialiser and serialiser, a fixed OK)
//   served on node:http2 directly, with no grpc-js: what is left of a do-nothing server without
//   grpc-js's own per-call machinery (Metadata, interceptor chain, call objects, deadline timers).
//   Standard minus http2 is grpc-js's own share of a Check (side-by-side.bench.ts reports it). It
//   speaks just enough gRPC for a unary call from h2load or a grpc-js client; it is a yardstick,
//   not a server to run.
// Run: `tsx bench/floor-server.ts [port] [transport|standard|http2]` (default 9191, transport; port 0
// picks a free one and prints it).

import { createServer as createHttp2Server, constants as h2 } from "node:http2";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import type { ServiceDefinition } from "@grpc/proto-loader";
import type { Decision } from "../src/model/index.js";
import { encodeCheckResponse } from "../src/transport/envoy/index.js";
import { loadAuthorizationPackage } from "../src/transport/envoy/proto.js";
import { grpcFrame } from "./h2load-data.js";

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

export type FloorMode = "transport" | "standard" | "http2";

/** proto-loader's own Check method definition: its deserialiser decodes and calls toObject. */
function standardCheck(): grpc.MethodDefinition<unknown, unknown> {
  const definition = loadAuthorizationPackage()["envoy.service.auth.v3.Authorization"] as ServiceDefinition | undefined;
  const check = definition?.Check;
  if (check === undefined) throw new Error("proto-loader found no Authorization/Check");
  return check as grpc.MethodDefinition<unknown, unknown>;
}

export async function startFloorServer(port: number, host = "127.0.0.1", mode: FloorMode = "transport"): Promise<FloorServer> {
  if (mode === "http2") return startHttp2Floor(port, host);
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

/** The response headers grpc-js sends for a unary answer, and its trailers for an OK. */
const HTTP2_RESPONSE_HEADERS = {
  [h2.HTTP2_HEADER_STATUS]: 200,
  [h2.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc+proto",
  "grpc-accept-encoding": "identity,deflate,gzip",
  "grpc-encoding": "identity",
};
const HTTP2_OK_TRAILERS = { "grpc-status": "0", "grpc-message": "OK" };
const HTTP2_INTERNAL_TRAILERS = { "grpc-status": "13", "grpc-message": "bad request" };

/**
 * "http2": the standard floor's work on node:http2 without grpc-js. The request's one gRPC frame
 * (flag byte, 4-byte length, message) is decoded by proto-loader's deserialiser; the answer is its
 * serialiser's bytes in one frame, then OK trailers. A frame that does not parse is answered
 * grpc-status 13, as grpc-js would.
 */
async function startHttp2Floor(port: number, host: string): Promise<FloorServer> {
  const check = standardCheck();
  let seen = 0;
  const server = createHttp2Server();
  server.on("stream", (stream) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => { chunks.push(chunk); });
    stream.on("end", () => {
      // undefined: the request did not parse (answered INTERNAL, with no message).
      let frame: Buffer | undefined;
      try {
        const bytes = chunks.length === 1 ? chunks[0] ?? Buffer.alloc(0) : Buffer.concat(chunks);
        const length = bytes.readUInt32BE(1);
        if (bytes[0] !== 0 || bytes.length !== 5 + length) throw new Error("not one uncompressed gRPC frame");
        const request = check.requestDeserialize(bytes.subarray(5)) as { attributes?: unknown };
        if (request.attributes !== undefined) seen++;
        frame = grpcFrame(check.responseSerialize({ status: { code: seen >= 0 ? 0 : 2 } }));
      } catch {
        frame = undefined;
      }
      stream.respond(HTTP2_RESPONSE_HEADERS, { waitForTrailers: true });
      stream.once("wantTrailers", () => { stream.sendTrailers(frame === undefined ? HTTP2_INTERNAL_TRAILERS : HTTP2_OK_TRAILERS); });
      stream.end(frame ?? Buffer.alloc(0));
    });
  });
  const bound = await new Promise<number>((resolvePort, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolvePort(typeof address === "object" && address !== null ? address.port : port);
    });
  });
  return {
    port: bound,
    close: () => new Promise((done) => {
      server.close(() => { done(); });
    }),
  };
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
  const floor = await startFloorServer(Number(process.argv[2] ?? 9191), "127.0.0.1", process.argv[3] === "standard" || process.argv[3] === "http2" ? process.argv[3] : "transport");
  console.log(`floor server listening on 127.0.0.1:${floor.port}`);
  const stop = (): void => {
    void floor.close().then(() => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
