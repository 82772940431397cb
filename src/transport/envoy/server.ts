// The gRPC server Envoy calls: envoy.service.auth.v3.Authorization/Check plus grpc.health.v1.
// It swaps proto-loader's (de)serialisers for Vigil's own decoder and encoder, and guarantees that
// every Check gets an answer Envoy reads as a decision, never a failed RPC that
// failure_mode_allow could turn into an allow.

import { randomUUID } from "node:crypto";
import { chmodSync, existsSync, lstatSync, unlinkSync } from "node:fs";
import { createConnection } from "node:net";
import { dirname } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import type { AccessRequest, Decision } from "../../model/index.js";
import { configSchema } from "../../config/schema.js";
import { VigilError } from "../../errors/index.js";
import { answerEveryCheck, refusalBytes, type CheckRefusalOptions } from "./call-refusals.js";
import { createCheckRequestDecoder, decodeCheckRequest } from "./decode.js";
import { encodeCheckResponse, encodeFailClosed, STATIC_FAIL_CLOSED, type TransportRefusal } from "./encode.js";
import type { ProtoGrpcType } from "./gen/external_auth.js";
import { loadAuthorizationPackage } from "./proto.js";

/** Fully qualified service name, also the health-check service name Envoy and probes may ask for. */
export const AUTHORIZATION_SERVICE = "envoy.service.auth.v3.Authorization";

const VIGIL_HEADER_PREFIX = "x-vigil-";

/** The default of config `grpc.maxRequestBytes` (1 MiB), read from the one schema. */
export const DEFAULT_MAX_REQUEST_BYTES: number = configSchema.shape.grpc.parse(undefined).maxRequestBytes;

export interface AuthzServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /**
   * Path of a Unix domain socket to serve on instead of host:port (config grpc.socket; "" or
   * absent = TCP). Only processes that can reach the file can call Check: in a pod, a volume only
   * Envoy and Vigil mount keeps the app container from forging requests.
   */
  socket?: string;
  /** The decision pipeline; synchronous, memory only. A throw becomes a fail-closed deny. */
  decide: (req: AccessRequest) => Decision;
  /** Header bytes beyond this make the request malformed (config grpc.maxHeaderBytes). */
  maxHeaderBytes: number;
  /**
   * Largest CheckRequest accepted (config grpc.maxRequestBytes, default 1 MiB). A larger one gets
   * a 413 denial from its length prefix on, without being buffered.
   */
  maxRequestBytes?: number;
  /** Told about every failure that was answered with a fail-closed deny. */
  onError?: (err: unknown) => void;
  /**
   * Told about every Check answered without a decision (oversized, late, refused by grpc-js),
   * with the decision id its denial carries: for a counter and a log line.
   */
  onRefused?: (refusal: TransportRefusal, decisionId: string) => void;
  /** How long close() waits for in-flight calls before cutting connections (default 5000). */
  shutdownGraceMs?: number;
}

export interface AuthzServer {
  /** The bound port (useful when options.port was 0); 0 when serving on a Unix socket. */
  port: number;
  /** Where it listens, as a gRPC target: "unix:/path" or "host:port". */
  address: string;
  /** Flips health for "" and the Authorization service: SERVING once signals are synced. */
  setServing(serving: boolean): void;
  /** Stops accepting calls, lets in-flight ones finish (up to the grace period), then closes. */
  close(): Promise<void>;
}

/** What the handler hands to responseSerialize: a decision, or an answer already encoded. */
type CheckAnswer = Decision | Buffer;

export async function startAuthzServer(options: AuthzServerOptions): Promise<AuthzServer> {
  const { decide, maxHeaderBytes } = options;
  const maxRequestBytes = options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const reportError = (err: unknown): void => {
    try {
      options.onError?.(err);
    } catch {
      // A failing error reporter must not turn a fail-closed answer into a failed RPC.
    }
  };

  const decodeRequest = createCheckRequestDecoder({ maxHeaderBytes });
  const loaded = grpc.loadPackageDefinition(loadAuthorizationPackage()) as unknown as ProtoGrpcType;
  const generated = loaded.envoy.service.auth.v3.Authorization.service.Check;
  const refusals: CheckRefusalOptions = {
    checkPath: generated.path,
    maxRequestBytes,
    onRefused: (refusal, decisionId) => {
      try {
        options.onRefused?.(refusal, decisionId);
      } catch {
        // Same: reporting must not cost the denial.
      }
    },
  };

  const check: grpc.MethodDefinition<AccessRequest, CheckAnswer> = {
    path: generated.path,
    originalName: generated.originalName,
    requestStream: false,
    responseStream: false,
    // Client-side halves: this definition only ever serves.
    requestSerialize: () => {
      throw new VigilError("internal", "the server-side Check definition cannot send requests");
    },
    responseDeserialize: () => {
      throw new VigilError("internal", "the server-side Check definition cannot read responses");
    },
    requestDeserialize: (bytes: Buffer): AccessRequest => {
      try {
        return decodeRequest(bytes);
      } catch (err) {
        // The decoder is built not to throw; if it ever does, decide still sees a request that
        // must fail closed rather than grpc-js answering INTERNAL (an RPC error).
        reportError(err);
        const request = decodeCheckRequest(Buffer.alloc(0), maxHeaderBytes);
        request.malformed = ["CheckRequest could not be decoded"];
        return request;
      }
    },
    // Never throws: grpc-js would turn a throw into a status that call-refusals drops (a message
    // is already on its way by then), leaving the call unanswered.
    responseSerialize: (answer: CheckAnswer): Buffer => {
      if (Buffer.isBuffer(answer)) return answer;
      try {
        return encodeCheckResponse(answer);
      } catch (err) {
        reportError(err);
        try {
          return encodeFailClosed(randomUUID());
        } catch {
          return STATIC_FAIL_CLOSED;
        }
      }
    },
  };

  const handleCheck: grpc.handleUnaryCall<AccessRequest, CheckAnswer> = (call, callback) => {
    // Already answered (the deadline timer fired while the message was on its way) or gone.
    if (call.cancelled) return;
    if (isPastDeadline(call.getDeadline())) {
      // Envoy, whose deadline started before ours, has given up; deciding now would only queue
      // side effects (approvals, revocations) for a request nobody is waiting for. The answer is
      // still a denial, never DEADLINE_EXCEEDED: whatever reads it must not see an RPC error.
      callback(null, refusalBytes("late", refusals));
      return;
    }
    let answer: CheckAnswer;
    try {
      const decision = decide(call.request);
      answer = decision.outcome === "allow" ? stripClientVigilHeaders(decision, call.request) : decision;
    } catch (err) {
      reportError(err);
      answer = encodeFailClosed(randomUUID());
    }
    callback(null, answer);
  };

  const server = new grpc.Server({
    // grpc-js refuses a larger message from its length prefix, before buffering it; the
    // interceptor turns that refusal (and every other RPC error grpc-js would send for a Check)
    // into a denial CheckResponse.
    "grpc.max_receive_message_length": maxRequestBytes,
    interceptors: [answerEveryCheck(refusals)],
  });
  server.addService({ Check: check }, { Check: handleCheck });

  const health = new HealthImplementation({ "": "NOT_SERVING", [AUTHORIZATION_SERVICE]: "NOT_SERVING" });
  health.addToServer(server);

  const socket = options.socket ?? "";
  let port = 0;
  let address: string;
  if (socket !== "") {
    address = `unix:${socket}`;
    try {
      await removeStaleSocket(socket);
      await bindTarget(server, address);
      // Connecting to a socket needs write permission on it: owner and group (the shared fsGroup
      // of Envoy and Vigil) only. Until this chmod the umask applies, which never grants more.
      chmodSync(socket, SOCKET_MODE);
    } catch (err) {
      server.forceShutdown();
      const code = err instanceof VigilError ? err.code : "unavailable";
      throw new VigilError(code, `cannot listen for gRPC on ${address}: ${VigilError.from(err).message}`, { cause: err });
    }
  } else {
    address = hostPort(options.host, options.port);
    try {
      port = await bindTarget(server, address);
    } catch (err) {
      server.forceShutdown();
      throw new VigilError("unavailable", `cannot listen for gRPC on ${options.host}:${options.port}: ${VigilError.from(err).message}`, { cause: err });
    }
    address = hostPort(options.host, port);
  }

  const setServing = (serving: boolean): void => {
    const status = serving ? "SERVING" : "NOT_SERVING";
    health.setStatus("", status);
    health.setStatus(AUTHORIZATION_SERVICE, status);
  };

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      setServing(false);
      const timer = setTimeout(() => {
        server.forceShutdown();
      }, options.shutdownGraceMs ?? 5000);
      server.tryShutdown(() => {
        clearTimeout(timer);
        // The socket file goes with the listener (libuv unlinks it); one left by a crash is
        // replaced at the next start.
        resolve();
      });
    });
    return closing;
  };

  return { port, address, setServing, close };
}

/** owner and group may connect; nobody else (connecting needs write permission). */
const SOCKET_MODE = 0o660;

/**
 * A socket left by a previous run would make the bind fail (EADDRINUSE), so it goes; anything
 * else at the path is refused, never deleted: a mistyped --grpc-socket must not cost a file. A
 * socket something still answers on is refused too: a second Vigil must not take the first one's
 * Envoy.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let stat;
  try {
    stat = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    // grpc-js would only say "No address added"; the usual cause is a volume not mounted.
    if (!existsSync(dirname(path))) throw new VigilError("invalid_input", `directory ${dirname(path)} does not exist (is the socket's volume mounted?)`);
    return;
  }
  if (!stat.isSocket()) {
    throw new VigilError("invalid_input", `${path} exists and is not a socket; refusing to replace it (remove it or choose another grpc.socket)`);
  }
  if (await socketAnswers(path)) {
    throw new VigilError("unavailable", `another process is serving on ${path}; refusing to replace its socket`);
  }
  unlinkSync(path);
}

/** True when a process accepts connections on the socket; false when refused (stale). */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const probe = createConnection({ path });
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", (err: NodeJS.ErrnoException) => {
      probe.destroy();
      if (err.code === "ECONNREFUSED") resolve(false);
      else reject(err);
    });
  });
}

function hostPort(host: string, port: number): string {
  // An IPv6 literal needs brackets in a gRPC target.
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}

function bindTarget(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) => {
      if (err !== null) reject(err);
      else resolve(bound);
    });
  });
}

function isPastDeadline(deadline: grpc.Deadline): boolean {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return at <= Date.now();
}

/**
 * Any x-vigil-* header the client sent must not reach the upstream looking like Vigil wrote it.
 * The decision is expected to list them already; this is the transport's own guarantee, and costs
 * nothing when none are present. The encoder drops names it sets this time from the list.
 */
function stripClientVigilHeaders(decision: Decision, request: AccessRequest): Decision {
  let extra: string[] | undefined;
  for (const name in request.headers) {
    if (name.startsWith(VIGIL_HEADER_PREFIX) && !decision.headersToRemove.includes(name)) {
      (extra ??= []).push(name);
    }
  }
  return extra === undefined ? decision : { ...decision, headersToRemove: [...decision.headersToRemove, ...extra] };
}
