// Plays Envoy against a Vigil gRPC server: builds CheckRequests shaped the way Envoy's ext_authz
// filter fills them (extauthz-protocol.md §3), encodes them with Envoy's *official* .proto files
// (shipped in @grpc/grpc-js-xds), calls Check, and decodes the answer with the official files too,
// so a test proves what a real Envoy would read, not what Vigil's own definitions think.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import protobuf from "protobufjs";
import { LOADER_OPTIONS } from "../../src/transport/envoy/index.js";
import type { CheckRequest, CheckResponseMessage } from "../../src/transport/envoy/index.js";

export type { CheckRequest };
/** A CheckResponse as Envoy's definitions decode it (proto-loader object form, defaults omitted). */
export type DecodedCheckResponse = CheckResponseMessage;

/** gRPC path of the Check method. */
export const CHECK_PATH = "/envoy.service.auth.v3.Authorization/Check";

/** Folders holding Envoy's official API files and their imports. */
export function envoyApiIncludeDirs(): string[] {
  const require = createRequire(import.meta.url);
  const deps = join(dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");
  const protobufjsRoot = dirname(require.resolve("protobufjs/package.json"));
  return [
    join(deps, "envoy-api"),
    join(deps, "googleapis"),
    join(deps, "xds"),
    join(deps, "protoc-gen-validate"),
    // google/protobuf/descriptor.proto (imported by validate.proto) is not among protobufjs's
    // built-in common types; the package ships it as a file.
    protobufjsRoot,
  ];
}

let officialRoot: protobuf.Root | undefined;

/** Envoy's official definitions, loaded once per process (keepCase, like Vigil's loader). */
export function envoyOfficialRoot(): protobuf.Root {
  if (officialRoot !== undefined) return officialRoot;
  const dirs = envoyApiIncludeDirs();
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    for (const dir of dirs) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(
    ["envoy/service/auth/v3/external_auth.proto", "envoy/service/auth/v3/attribute_context.proto"],
    { keepCase: true },
  );
  root.resolveAll();
  officialRoot = root;
  return root;
}

/** The official message type for a fully qualified name, e.g. envoy.service.auth.v3.CheckRequest. */
export function envoyType(name: string): protobuf.Type {
  return envoyOfficialRoot().lookupType(name);
}

/** The conversion proto-loader applies (LOADER_OPTIONS), so decoded objects match gen/ types. */
export const TO_OBJECT_OPTIONS: protobuf.IConversionOptions = {
  longs: LOADER_OPTIONS.longs,
  enums: LOADER_OPTIONS.enums,
  defaults: LOADER_OPTIONS.defaults,
  oneofs: LOADER_OPTIONS.oneofs,
};

/** Encodes a CheckRequest object with Envoy's official definitions. */
export function encodeWithEnvoyProtos(request: CheckRequest): Buffer {
  const type = envoyType("envoy.service.auth.v3.CheckRequest");
  const message = type.fromObject(request);
  // Verified after fromObject, which turns decimal strings into int64 values first.
  const problem = type.verify(message);
  if (problem !== null) throw new Error(`not an Envoy CheckRequest: ${problem}`);
  const bytes = type.encode(message).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes CheckResponse bytes with Envoy's official definitions. */
export function decodeWithEnvoyProtos(bytes: Uint8Array): DecodedCheckResponse {
  const type = envoyType("envoy.service.auth.v3.CheckResponse");
  // toObject is typed loosely ({[k: string]: any}); the shape is what LOADER_OPTIONS produce.
  return type.toObject(type.decode(bytes), TO_OBJECT_OPTIONS);
}

/** What a test says about a request; everything else gets a realistic Envoy-like default. */
export interface EnvoyLikeRequest {
  /** SPIFFE ID of the calling workload (mTLS peer). "" = plain-text connection, no principal. */
  sourcePrincipal?: string;
  /** The sidecar's own SPIFFE ID. */
  destinationPrincipal?: string;
  /** PEM of the peer leaf certificate; sent URL-encoded as with include_peer_certificate. */
  sourceCertificatePem?: string;
  sourceAddress?: string;
  sourcePort?: number;
  destinationAddress?: string;
  destinationPort?: number;
  /** x-envoy-downstream-service-cluster, when the caller's Envoy set it. */
  sourceService?: string;
  method?: string;
  /** Request target including the query string. */
  path?: string;
  /** :authority. */
  host?: string;
  scheme?: string;
  protocol?: "HTTP/1.0" | "HTTP/1.1" | "HTTP/2" | "HTTP/3";
  /** Envoy's stream id (request.http.id). */
  streamId?: string;
  /** x-request-id. */
  requestId?: string;
  /** Full authorization header value, e.g. "Bearer abc". */
  authorization?: string;
  /** x-api-key value. */
  apiKey?: string;
  /** x-forwarded-client-cert value, as the HCM wrote it. */
  xfcc?: string;
  /** More headers (names are lower-cased; they override the defaults; null drops a default). */
  headers?: Record<string, string | null>;
  /** Per-route context_extensions, e.g. { action: "deploy", env: "prod" }. */
  contextExtensions?: Record<string, string>;
  /**
   * The workload whose sidecar this is, sent as context_extensions.destination the way the shipped
   * Envoy files' virtual host sets it (merged under the route's own extensions). Default: the host
   * without port, lower-case, i.e. "the test talks to that service's sidecar". null: no extension,
   * as from an Envoy route that sets none.
   */
  destination?: string | null;
  /** Request body (with_request_body), e.g. an MCP JSON-RPC call. */
  body?: string;
  /** Send the body as raw_body bytes (with_request_body.pack_as_bytes). */
  packBodyAsBytes?: boolean;
  /** Send headers as header_map with raw_value bytes (encode_raw_headers). */
  encodeRawHeaders?: boolean;
  /** tls_session.sni (include_tls_session). */
  sni?: string;
  /** request.time; default now. */
  time?: Date;
}

export const DEFAULT_SOURCE_PRINCIPAL = "spiffe://example.org/ns/ci/sa/release-pipeline";
export const DEFAULT_DESTINATION_PRINCIPAL = "spiffe://example.org/ns/prod/sa/payments-api";

/** Builds a CheckRequest object the way Envoy's HTTP ext_authz filter fills it. */
export function buildCheckRequest(opts: EnvoyLikeRequest = {}): CheckRequest {
  const method = opts.method ?? (opts.body === undefined ? "GET" : "POST");
  const path = opts.path ?? "/v1/payments?limit=10";
  const host = opts.host ?? "payments.prod.svc.cluster.local";
  const scheme = opts.scheme ?? "https";
  // Null prototype, so a test can send a header literally named "__proto__".
  const headers: Record<string, string> = Object.assign(Object.create(null) as Record<string, string>, {
    ":authority": host,
    ":method": method,
    ":path": path,
    ":scheme": scheme,
    "user-agent": "release-bot/2.3.1",
    "accept": "application/json",
    "x-forwarded-proto": scheme,
    "x-request-id": opts.requestId ?? "4c1f7d2e-8a53-4b0e-9f7a-2d6c3e1b5a90",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  });
  if (opts.authorization !== undefined) headers.authorization = opts.authorization;
  if (opts.apiKey !== undefined) headers["x-api-key"] = opts.apiKey;
  if (opts.xfcc !== undefined) headers["x-forwarded-client-cert"] = opts.xfcc;
  if (opts.body !== undefined) {
    headers["content-type"] = "application/json";
    headers["content-length"] = String(Buffer.byteLength(opts.body));
    // Envoy adds this whenever it includes the body.
    headers["x-envoy-auth-partial-body"] = "false";
  }
  for (const [name, value] of Object.entries(opts.headers ?? {})) {
    if (value === null) Reflect.deleteProperty(headers, name.toLowerCase());
    else headers[name.toLowerCase()] = value;
  }

  const sourcePrincipal = opts.sourcePrincipal ?? DEFAULT_SOURCE_PRINCIPAL;
  const time = opts.time ?? new Date();
  const http: NonNullable<NonNullable<NonNullable<CheckRequest["attributes"]>["request"]>["http"]> = {
    id: opts.streamId ?? "8437160528471365923",
    method,
    path,
    host,
    scheme,
    protocol: opts.protocol ?? "HTTP/2",
    size: opts.body === undefined ? "0" : String(Buffer.byteLength(opts.body)),
  };
  if (opts.encodeRawHeaders === true) {
    http.header_map = {
      headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })),
    };
  } else {
    http.headers = headers;
  }
  if (opts.body !== undefined) {
    if (opts.packBodyAsBytes === true) http.raw_body = Buffer.from(opts.body);
    else http.body = opts.body;
  }

  const attributes: NonNullable<CheckRequest["attributes"]> = {
    source: {
      address: { socket_address: { address: opts.sourceAddress ?? "10.0.1.17", port_value: opts.sourcePort ?? 48212 } },
      ...(sourcePrincipal === "" ? {} : { principal: sourcePrincipal }),
      ...(opts.sourceService === undefined ? {} : { service: opts.sourceService }),
      ...(opts.sourceCertificatePem === undefined ? {} : { certificate: encodeURIComponent(opts.sourceCertificatePem) }),
    },
    destination: {
      address: { socket_address: { address: opts.destinationAddress ?? "10.0.2.9", port_value: opts.destinationPort ?? 8443 } },
      principal: opts.destinationPrincipal ?? DEFAULT_DESTINATION_PRINCIPAL,
    },
    request: {
      time: { seconds: String(Math.floor(time.getTime() / 1000)), nanos: (time.getTime() % 1000) * 1_000_000 },
      http,
    },
  };
  const destination = opts.destination === undefined ? hostName(host) : opts.destination;
  const contextExtensions = { ...(destination === null ? {} : { destination }), ...opts.contextExtensions };
  if (Object.keys(contextExtensions).length > 0) attributes.context_extensions = contextExtensions;
  if (opts.sni !== undefined) attributes.tls_session = { sni: opts.sni };
  return { attributes };
}

/** A host header without its port, lower-case (the default destination of a test request). */
function hostName(host: string): string {
  const colon = host.lastIndexOf(":");
  return (colon === -1 || host.startsWith("[") ? host : host.slice(0, colon)).toLowerCase();
}

/** The encoded bytes of an Envoy-shaped CheckRequest (e.g. for the h2load data file). */
export function buildCheckRequestBytes(opts: EnvoyLikeRequest = {}): Buffer {
  return encodeWithEnvoyProtos(buildCheckRequest(opts));
}

/**
 * The request the hot-path figures were measured with (hot-path.md): mTLS principals for source and
 * destination, 14 headers including authorization, two context_extensions; about 690 bytes.
 */
export function benchmarkCheckRequestBytes(): Buffer {
  return buildCheckRequestBytes({
    method: "POST",
    path: "/v1/deployments",
    host: "deploy-api.prod.svc",
    authorization: "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJyIn0.c2ln",
    headers: {
      "content-type": "application/json",
      "content-length": "182",
      "accept-encoding": "gzip",
      "x-forwarded-for": "10.0.1.17",
      "traceparent": null,
      "x-b3-sampled": "1",
    },
    contextExtensions: { action: "deploy", env: "prod" },
    // The bytes are a committed fixture (bench/): no destination extension, as when measured.
    destination: null,
    time: new Date(Date.UTC(2026, 0, 15, 12, 0, 0)),
  });
}

/** A JSON-RPC `tools/call` body as an MCP client sends it (for `body`). */
export function mcpToolCallBody(tool: string, args: Record<string, unknown> = {}, id = 1): string {
  return JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name: tool, arguments: args } });
}

export type HealthStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

export interface EnvoyClient {
  /** Builds an Envoy-shaped request, calls Check, returns the answer as Envoy would decode it. */
  check(request?: EnvoyLikeRequest, options?: CallOptions): Promise<DecodedCheckResponse>;
  /** Sends a CheckRequest message built by hand (encoded with Envoy's definitions). */
  checkMessage(message: CheckRequest, options?: CallOptions): Promise<DecodedCheckResponse>;
  /** Sends exactly these CheckRequest bytes (garbage included). */
  checkRaw(bytes: Buffer, options?: CallOptions): Promise<DecodedCheckResponse>;
  /** Same as checkRaw, but returns the undecoded response bytes. */
  checkRawBytes(bytes: Buffer, options?: CallOptions): Promise<Buffer>;
  /** grpc.health.v1.Health/Check for a service name ("" = whole server). */
  health(service?: string): Promise<HealthStatus>;
  close(): void;
}

export interface CallOptions {
  /** Like Envoy's ext_authz timeout (default 200 ms there); here default 5 s. */
  deadlineMs?: number;
}

interface HealthClient extends grpc.Client {
  check(
    request: { service: string },
    options: grpc.CallOptions,
    callback: (err: grpc.ServiceError | null, response?: { status: HealthStatus }) => void,
  ): grpc.ClientUnaryCall;
}

/** A client for a Vigil gRPC address such as "127.0.0.1:9191". */
export function createEnvoyClient(address: string): EnvoyClient {
  const credentials = grpc.credentials.createInsecure();
  const client = new grpc.Client(address, credentials);
  const HealthClientCtor = grpc.makeGenericClientConstructor(healthService, "Health");
  const healthClient = new HealthClientCtor(address, credentials) as unknown as HealthClient;

  const callOptions = (options: CallOptions | undefined): grpc.CallOptions => ({
    deadline: Date.now() + (options?.deadlineMs ?? 5000),
  });

  const checkRawBytes = (bytes: Buffer, options?: CallOptions): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      client.makeUnaryRequest<Buffer, Buffer>(
        CHECK_PATH,
        (value) => value,
        (value) => value,
        bytes,
        new grpc.Metadata(),
        callOptions(options),
        (err, value) => {
          if (err !== null) reject(err);
          else if (value === undefined) reject(new Error("Check answered without a message"));
          else resolve(value);
        },
      );
    });

  const checkRaw = async (bytes: Buffer, options?: CallOptions): Promise<DecodedCheckResponse> =>
    decodeWithEnvoyProtos(await checkRawBytes(bytes, options));

  return {
    check: (request, options) => checkRaw(buildCheckRequestBytes(request), options),
    checkMessage: (message, options) => checkRaw(encodeWithEnvoyProtos(message), options),
    checkRaw,
    checkRawBytes,
    health: (service = "") =>
      new Promise((resolve, reject) => {
        healthClient.check({ service }, { deadline: Date.now() + 5000 }, (err, response) => {
          if (err !== null) reject(err);
          else resolve(response?.status ?? "UNKNOWN");
        });
      }),
    close: () => {
      client.close();
      healthClient.close();
    },
  };
}

/** Header value from a decoded HeaderValueOption list, or undefined. */
export function headerValue(
  headers: readonly { header?: { key?: string; value?: string } }[] | undefined,
  name: string,
): string | undefined {
  return headers?.find((h) => h.header?.key === name)?.header?.value;
}
