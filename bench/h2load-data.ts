// Writes the request body h2load sends to Check: one gRPC length-prefixed message (flag byte 0,
// 4-byte big-endian length) holding an Envoy-shaped CheckRequest of about 700 bytes, encoded with
// Envoy's official protos (the request hot-path.md was measured with).
// Run: `tsx bench/h2load-data.ts [out]` (default bench/fixtures/check-request.grpc), then e.g.
//   h2load -n 200000 -c 2 -m 64 -d bench/fixtures/check-request.grpc \
//     -H 'content-type: application/grpc' -H 'te: trailers' \
//     http://127.0.0.1:9191/envoy.service.auth.v3.Authorization/Check

import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { benchmarkCheckRequestBytes } from "../test/support/envoy-client.js";

export const DEFAULT_H2LOAD_DATA = fileURLToPath(new URL("./fixtures/check-request.grpc", import.meta.url));

/** The gRPC frame: 0 (not compressed), length as uint32 big-endian, then the message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt8(0, 0);
  prefix.writeUInt32BE(message.byteLength, 1);
  return Buffer.concat([prefix, message]);
}

/** Writes the data file and returns its size in bytes. */
export function writeH2loadData(path: string = DEFAULT_H2LOAD_DATA): number {
  const frame = grpcFrame(benchmarkCheckRequestBytes());
  writeFileSync(path, frame);
  return frame.length;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const path = process.argv[2] ?? DEFAULT_H2LOAD_DATA;
  const size = writeH2loadData(path);
  console.log(`wrote ${path}: ${size} bytes (5-byte gRPC prefix + ${size - 5}-byte CheckRequest)`);
}
