import * as grpc from "@grpc/grpc-js";
import { createCheckRequestDecoder, encodeCheckResponse } from "../src/transport/envoy/index.js";
const mode = process.argv[2];
const decode = createCheckRequestDecoder({ maxHeaderBytes: 65536 });
const d = { id: "00000000-0000-0000-0000-000000000000", outcome: "allow" as const, rule: "x/y", reason: "ok", caller: "spiffe://example.org/ns/ci/sa/deployer", trustDomain: "example.org", credentialFingerprint: "", headersToRemove: [], durationNs: 0 };
const fixed = encodeCheckResponse(d);
const server = new grpc.Server();
server.addService({ Check: { path: "/envoy.service.auth.v3.Authorization/Check", requestStream: false, responseStream: false,
  requestSerialize: (v: Buffer) => v, requestDeserialize: (b: Buffer) => (mode === "raw" ? b : decode(b)),
  responseSerialize: (v: unknown) => (mode === "encode" ? encodeCheckResponse({ ...d }) : fixed), responseDeserialize: (b: Buffer) => b } } as never,
  { Check: (_c: unknown, cb: (e: null, v: unknown) => void) => { cb(null, fixed); } } as never);
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (_e, port) => { process.stderr.write(`ready ${port}\n`); });
process.on("SIGINT", () => process.exit(0));
