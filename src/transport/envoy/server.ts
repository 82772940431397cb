// The gRPC server Envoy calls: envoy.service.auth.v3.Authorization/Check plus grpc.health.v1.
// It swaps proto-loader's (de)serialisers for Vigil's own decoder and encoder, and guarantees that
// every Check gets an answer Envoy reads as a decision, never a failed RPC that
// failure_mode_allow could turn into an allow.
//
// One Check: decode (requestDeserialize) → judge (the decision pipeline) → encode → record. The
// record phase runs after encoding, so the decision line and the counters carry the answer that
// went on the wire: when encoding fails, the fail-closed deny and its id, never the decision that
// could not be sent.

import { randomUUID } from "node:crypto";
import { chmodSync, existsSync, lstatSync, unlinkSync } from "node:fs";
import { createConnection } from "node:net";
import { dirname } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { coversHeaders, type Judgement } from "../../decision/index.js";
import type { AccessRequest, Decision, HeaderSelection } from "../../model/index.js";
import { configSchema } from "../../config/schema.js";
import { VigilError } from "../../errors/index.js";
import { answerEveryCheck, refusalBytes, type CheckRefusalOptions } from "./call-refusals.js";
import { createCheckRequestDecoder, decodeCheckRequest } from "./decode.js";
import { encodeCheckResponse, encodeFailClosed, FAIL_CLOSED_REASON, STATIC_FAIL_CLOSED, type TransportRefusal } from "./encode.js";
import type { ProtoGrpcType } from "./gen/external_auth.js";
import { loadAuthorizationPackage } from "./proto.js";

/** Fully qualified service name, also the health-check service name Envoy and probes may ask for. */
export const AUTHORIZATION_SERVICE = "envoy.service.auth.v3.Authorization";

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
  /**
   * The decision pipeline up to the answer (Pipeline.judge); synchronous, memory only, except a
   * Judgement whose `settled` waits on the bus (a grant use in cluster mode): it is encoded once
   * that settles. A throw, or a rejected `settled`, becomes a fail-closed deny.
   */
  judge: (req: AccessRequest) => Judgement;
  /**
   * Counts and logs a judged Check (Pipeline.record), called once its answer is encoded, with the
   * decision that went on the wire. A throw becomes a fail-closed deny: no answer leaves unrecorded.
   */
  record?: (judgement: Judgement) => void;
  /**
   * Encodes a decision for the request's headers (default encodeCheckResponse). A seam for tests:
   * a throw here is answered, and recorded, as a fail-closed deny.
   */
  encode?: (decision: Decision, requestHeaders: Readonly<Record<string, string>>) => Buffer;
  /** Header bytes beyond this make the request malformed (config grpc.maxHeaderBytes). */
  maxHeaderBytes: number;
  /**
   * The request headers judging reads (decision createHeaderSelector); the decoder leaves the
   * other values as bytes. The same object until the policy changes; a request decoded for an
   * older selection that misses a header the current one names is decoded again, whole, before it
   * is judged. Default: every header.
   */
  headers?: () => HeaderSelection;
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

/** What the handler hands to responseSerialize: the answer, already encoded. */
type CheckAnswer = Buffer;

/** What requestDeserialize hands the handler: the request, its bytes and the headers it kept. */
interface DecodedCheck {
  readonly request: AccessRequest;
  readonly bytes: Buffer;
  /** undefined: every header was decoded. */
  readonly headers: HeaderSelection | undefined;
}

export async function startAuthzServer(options: AuthzServerOptions): Promise<AuthzServer> {
  const { judge, maxHeaderBytes } = options;
  const encode = options.encode ?? encodeCheckResponse;
  const record = options.record;
  const maxRequestBytes = options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const reportError = (err: unknown): void => {
    try {
      options.onError?.(err);
    } catch {
      // A failing error reporter must not turn a fail-closed answer into a failed RPC.
    }
  };

  const selectHeaders = options.headers;
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

  const check: grpc.MethodDefinition<DecodedCheck, CheckAnswer> = {
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
    requestDeserialize: (bytes: Buffer): DecodedCheck => {
      try {
        const headers = selectHeaders?.();
        return { request: decodeRequest(bytes, headers), bytes, headers };
      } catch (err) {
        // The decoder is built not to throw; if it ever does, decide still sees a request that
        // must fail closed rather than grpc-js answering INTERNAL (an RPC error).
        reportError(err);
        const request = decodeCheckRequest(Buffer.alloc(0), maxHeaderBytes);
        request.malformed = ["CheckRequest could not be decoded"];
        return { request, bytes, headers: undefined };
      }
    },
    // The handler encodes (so the record phase knows what went on the wire); this only hands the
    // bytes over and so cannot throw, which grpc-js would turn into a status that call-refusals
    // drops (a message is already on its way by then), leaving the call unanswered.
    responseSerialize: (answer: CheckAnswer): Buffer => answer,
  };

  /**
   * judge → encode → record, for one decoded request; never throws. A judgement still waiting on
   * the bus (a grant use in cluster mode) is encoded once it settled: a promise of the answer.
   */
  const answerCheck = (request: AccessRequest): Buffer | Promise<Buffer> => {
    let judgement: Judgement;
    try {
      judgement = judge(request);
    } catch (err) {
      // No decision to record; onError counts and logs the failure.
      reportError(err);
      return failClosed().bytes;
    }
    const settled = judgement.settled;
    if (settled !== undefined) return settled.then(() => encodeAndRecord(request, judgement), (err: unknown) => {
      reportError(err);
      return failClosed().bytes;
    });
    return encodeAndRecord(request, judgement);
  };

  const encodeAndRecord = (request: AccessRequest, judged: Judgement): Buffer => {
    let judgement = judged;
    let answer: Buffer;
    try {
      answer = encode(judgement.decision, request.headers);
    } catch (err) {
      reportError(err);
      const refusal = failClosed();
      answer = refusal.bytes;
      judgement = { ...judgement, decision: failClosedDecision(judgement.decision, refusal.id) };
    }
    if (record !== undefined) {
      try {
        record(judgement);
      } catch (err) {
        // An answer that could not be counted and logged does not go out as given.
        reportError(err);
        answer = failClosed().bytes;
      }
    }
    return answer;
  };

  /**
   * The request as the current policy must see it: a policy loaded between decoding and judging
   * may read a header the decoder skipped, so such a request is decoded again with every header.
   */
  const requestFor = (decoded: DecodedCheck): AccessRequest => {
    const kept = decoded.headers;
    if (kept === undefined || selectHeaders === undefined || coversHeaders(kept, selectHeaders())) return decoded.request;
    return decodeCheckRequest(decoded.bytes, maxHeaderBytes);
  };

  const handleCheck: grpc.handleUnaryCall<DecodedCheck, CheckAnswer> = (call, callback) => {
    // Already answered (the deadline timer fired while the message was on its way) or gone.
    if (call.cancelled) return;
    if (isPastDeadline(call.getDeadline())) {
      // Envoy, whose deadline started before ours, has given up; deciding now would only queue
      // side effects (approvals, revocations) for a request nobody is waiting for. The answer is
      // still a denial, never DEADLINE_EXCEEDED: whatever reads it must not see an RPC error.
      callback(null, refusalBytes("late", refusals));
      return;
    }
    let answer: Buffer | Promise<Buffer>;
    try {
      answer = answerCheck(requestFor(call.request));
    } catch (err) {
      reportError(err);
      answer = failClosed().bytes;
    }
    if (Buffer.isBuffer(answer)) callback(null, answer);
    else void answer.then((bytes) => { callback(null, bytes); });
  };

  const server = new grpc.Server({
    // grpc-js refuses a larger message from its length prefix, before buffering it; the
    // interceptor turns that refusal (and every other RPC error grpc-js would send for a Check)
    // into a denial CheckResponse.
    "grpc.max_receive_message_length": maxRequestBytes,
    // Vigil serves no channelz service, and with channelz on grpc-js keeps per-call trackers: four
    // closures and two Date.now() per Check, about 1.7k instructions (callgrind, issue #9).
    "grpc.enable_channelz": 0,
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

/** A fail-closed denial with a fresh decision id, or the static one (no id) if even that fails. */
function failClosed(): { id: string; bytes: Buffer } {
  const id = randomUUID();
  try {
    return { id, bytes: encodeFailClosed(id) };
  } catch {
    return { id: "", bytes: STATIC_FAIL_CLOSED };
  }
}

/** The decision a fail-closed answer stands for: who asked stays, the answer is the denial sent. */
function failClosedDecision(judged: Decision, id: string): Decision {
  return {
    id, outcome: "deny", rule: "", reason: FAIL_CLOSED_REASON,
    caller: judged.caller, trustDomain: judged.trustDomain, credentialFingerprint: judged.credentialFingerprint,
    headersToRemove: [], durationNs: judged.durationNs,
  };
}
