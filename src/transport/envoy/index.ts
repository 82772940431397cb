// Public surface of the Envoy transport: the ext_authz gRPC server, and the decoder/encoder it
// uses (exported for tests, benchmarks and `vigil check`). Nothing else knows protobuf.

export { startAuthzServer, AUTHORIZATION_SERVICE, DEFAULT_MAX_REQUEST_BYTES } from "./server.js";
export type { AuthzServer, AuthzServerOptions } from "./server.js";
export { createCheckRequestDecoder, decodeCheckRequest, DEFAULT_MAX_HEADER_BYTES } from "./decode.js";
export type { CheckRequestDecoder, CheckRequestDecoderOptions } from "./decode.js";
export {
  encodeCheckResponse, encodeFailClosed, encodeTransportRefusal, OUTCOME_WIRE, GrpcCode, FAIL_CLOSED_REASON,
  TRANSPORT_REFUSAL_REASON, STATIC_FAIL_CLOSED,
} from "./encode.js";
export type { TransportRefusal } from "./encode.js";
export { createCheckClient, type CheckClient } from "./client.js";
export { checkRequestFromJson, encodeCheckRequestJson } from "./request-json.js";
export { LOADER_OPTIONS, PROTO_DIR, EXTERNAL_AUTH_PROTO, loadAuthorizationPackage } from "./proto.js";
export type { CheckRequest } from "./gen/envoy/service/auth/v3/CheckRequest.js";
export type { CheckResponse__Output as CheckResponseMessage } from "./gen/envoy/service/auth/v3/CheckResponse.js";
