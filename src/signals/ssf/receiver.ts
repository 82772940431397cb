// The SSF push receiver (RFC 8935) as a transport-independent handler: one HTTP request in, one
// answer out. The HTTP server only copies method, headers and body in and the answer back out;
// every status code and error body of the push endpoint is decided here. Every error answer has
// RFC 8935's shape, {"err", "description"}; 5xx answers carry Retry-After and leave the jti free
// so the transmitter's retry is taken.

import { createHash } from "node:crypto";
import type { FetchImplementation } from "jose";
import type { Logger } from "pino";
import type { SsfConfig } from "../../config/schema.js";
import { VigilError } from "../../errors/index.js";
import type { Metrics } from "../../telemetry/metrics.js";
import { bearerToken, holdSecrets, matchSecret } from "../../util/bearer.js";
import { signalSchema } from "../model.js";
import type { SignalStore } from "../store.js";
import { SET_MEDIA_TYPE, SSF_EVENTS, eventShortName } from "./events.js";
import { createTransmitterKeys, type TransmitterKeys } from "./keys.js";
import { mapSet } from "./mapping.js";
import { ReplayGuard } from "./replay.js";
import { KeySourceUnavailable, SetError, type SetErrorCode } from "./set-error.js";
import { verifySet, type VerifiedSet } from "./verify.js";

/** Largest body accepted; a SET is a few KiB. The HTTP server should stop reading past it too. */
export const SSF_MAX_BODY_BYTES = 64 * 1024;
/** Seconds a transmitter is asked to wait before retrying after a 503. */
const RETRY_AFTER_SECONDS = "5";
const REALM = "vigil-ssf";

export interface SsfRequest {
  method: string;
  /** Header names in any case (Node gives lower case); repeated headers already joined. */
  headers: Record<string, string | undefined>;
  body: Buffer;
}

export interface SsfResponse {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string>;
  /** "" or a JSON document (see content-type). */
  body: string;
}

export interface SsfReceiverOptions {
  config: SsfConfig;
  store: Pick<SignalStore, "put">;
  logger: Logger;
  metrics?: Pick<Metrics, "ssfEvents">;
  /** Clock (epoch ms); defaults to Date.now. */
  now?: () => number;
  /** fetch used for ssf.jwksUrl (jose's customFetch); defaults to the global fetch. */
  fetchJwks?: FetchImplementation;
}

export interface SsfReceiver {
  /** False when ssf.issuer is empty: every request is answered 404. */
  readonly enabled: boolean;
  /** Never rejects: every failure becomes an answer. */
  handle(request: SsfRequest): Promise<SsfResponse>;
  /** Forgets replay state; later requests are answered 503. */
  close(): void;
}

/** Metric `result` label values. */
type SsfResult = "written" | "duplicate" | "stale" | "ignored" | "acknowledged" | "rejected" | "unauthorized" | "failed";

/** err for answers that are not about the SET itself (5xx, not configured): the registry has no better code. */
const GENERAL_ERR: SetErrorCode = "invalid_request";

const FORBIDDEN_ALGORITHM = /^(none|HS\d+)$/i;

function header(request: SsfRequest, name: string): string | undefined {
  const direct = request.headers[name];
  if (direct !== undefined) return direct;
  for (const [key, value] of Object.entries(request.headers)) {
    if (key.toLowerCase() === name) return value;
  }
  return undefined;
}

function setError(status: number, err: SetErrorCode, description: string, headers: Record<string, string> = {}): SsfResponse {
  return {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...headers },
    body: JSON.stringify({ err, description }),
  };
}

/** A failure on our side: the transmitter should retry later (RFC 8935 shape, Retry-After). */
function retryLater(status: 500 | 503, description: string): SsfResponse {
  return setError(status, GENERAL_ERR, description, { "retry-after": RETRY_AFTER_SECONDS });
}

const ACCEPTED: SsfResponse = { status: 202, headers: {}, body: "" };


function checkSettings(config: SsfConfig): void {
  if (config.audience.length === 0) throw new VigilError("invalid_input", "ssf.audience must name at least one audience");
  if (config.algorithms.length === 0) throw new VigilError("invalid_input", "ssf.algorithms must allow at least one algorithm");
  const forbidden = config.algorithms.filter((alg) => FORBIDDEN_ALGORITHM.test(alg));
  if (forbidden.length > 0) {
    // Unsigned SETs prove nothing, and an HMAC "key" from a JWK Set would be a published secret.
    throw new VigilError("invalid_input", `ssf.algorithms must not allow ${forbidden.join(", ")}`);
  }
  if (config.pushTokens.some((token) => token === "")) throw new VigilError("invalid_input", "ssf.pushTokens must not hold an empty token");
}

/**
 * Creates the push receiver. Throws VigilError("invalid_input") for unusable settings (no key
 * source, an unreadable JWK Set file, alg none allowed …) so a bad configuration stops start-up.
 */
export function createSsfReceiver(options: SsfReceiverOptions): SsfReceiver {
  const { config, store, metrics } = options;
  const now = options.now ?? Date.now;
  // The caller may already hand over its "ssf" child; binding the key twice would repeat it per line.
  const logger = options.logger.bindings().component === "ssf" ? options.logger : options.logger.child({ component: "ssf" });
  const enabled = config.issuer !== "";
  let keys: TransmitterKeys | undefined;
  if (enabled) {
    checkSettings(config);
    keys = createTransmitterKeys({
      jwksFile: config.jwksFile, jwksUrl: config.jwksUrl, now, logger, fetchJwks: options.fetchJwks,
    });
  }
  const pushTokens = holdSecrets(config.pushTokens.map((token) => [token, true] as const));
  const replay = new ReplayGuard(config.replayWindowMs);
  let closed = false;

  const count = (result: SsfResult, event: string): void => {
    metrics?.ssfEvents.inc({ result, event });
  };

  /** The RFC 8935 authorization_header check; undefined when the caller may go on. */
  function authorize(request: SsfRequest): SsfResponse | undefined {
    if (pushTokens.length === 0) return undefined;
    const presented = bearerToken(header(request, "authorization"));
    if (presented === undefined) {
      return setError(401, "authentication_failed", "a Bearer token is required", { "www-authenticate": `Bearer realm="${REALM}"` });
    }
    if (matchSecret(presented, pushTokens) === true) return undefined;
    return setError(401, "authentication_failed", "the Bearer token is not valid", {
      "www-authenticate": `Bearer realm="${REALM}", error="invalid_token"`,
    });
  }

  /**
   * Maps one verified SET, answers a re-delivery or a replay, and stores its signal (if any).
   * `digest` identifies the SET's exact bytes: the same jti with the same bytes is a re-delivery
   * (202, nothing written again), with other bytes a replay (400).
   */
  async function apply(set: VerifiedSet, digest: string, event: string, nowMs: number): Promise<SsfResponse> {
    const outcome = mapSet(set, nowMs);
    const claim = replay.reserve(set.iss, set.jti, digest, nowMs);
    if (claim === "repeat") {
      count("duplicate", event);
      logger.info({ event, jti: set.jti }, "acknowledged a re-delivered SET; nothing written again");
      return ACCEPTED;
    }
    if (claim === "busy") {
      // The first copy may still fail; acknowledging this one could lose the event.
      count("duplicate", event);
      return retryLater(503, "the same SET is being processed; retry later");
    }
    if (claim === "replay") {
      count("rejected", event);
      logger.warn({ event, jti: set.jti }, "refused a replayed jti carrying a different SET");
      return setError(400, "invalid_request", "replayed jti: this jti came before with a different SET");
    }
    if (outcome.action !== "write") {
      replay.commit(set.iss, set.jti, nowMs);
      count(outcome.action === "acknowledge" ? "acknowledged" : "ignored", event);
      const streamStopping = set.eventUri === SSF_EVENTS.streamUpdated && set.payload.status !== "enabled";
      const line = { event, jti: set.jti, ...(outcome.action === "acknowledge" ? { note: outcome.note } : { why: outcome.why }) };
      if (streamStopping) logger.warn(line, "transmitter reports the SSF stream is not enabled");
      else logger.info(line, outcome.action === "acknowledge" ? "acknowledged an SSF stream event" : "acknowledged a SET that maps to no signal");
      return ACCEPTED;
    }
    const parsed = signalSchema.safeParse(outcome.signal);
    if (!parsed.success) {
      replay.release(set.iss, set.jti);
      count("rejected", event);
      const path = parsed.error.issues[0]?.path.join(".") ?? "";
      return setError(400, "invalid_request", `the event cannot be stored as a signal (${path})`);
    }
    const signal = parsed.data;
    try {
      const result = await store.put(signal);
      replay.commit(set.iss, set.jti, now());
      count(result.status, event);
      logger.info({ event, jti: set.jti, kind: signal.kind, subject: signal.subject, id: signal.id, result: result.status }, "stored a signal from a SET");
      return ACCEPTED;
    } catch (err) {
      const error = VigilError.from(err);
      if (error.code === "conflict") {
        // The store holds a more severe, sticky state (a revocation, a leaked key) that this event
        // would soften. Acknowledge so the transmitter stops retrying; the state stays as it is.
        replay.commit(set.iss, set.jti, now());
        count("ignored", event);
        logger.warn({ event, jti: set.jti, subject: signal.subject, err: error }, "a SET would soften a sticky state; acknowledged and ignored");
        return ACCEPTED;
      }
      // Not handled: the jti stays free, so a retry (or a corrected SET) is taken.
      replay.release(set.iss, set.jti);
      if (error.code === "invalid_input") {
        count("rejected", event);
        // The message may quote the refused subject; it is neither logged nor echoed.
        logger.warn({ event, jti: set.jti, kind: signal.kind }, "the store refused the signal of a SET");
        return setError(400, "invalid_request", "the event cannot be stored as a signal");
      }
      count("failed", event);
      logger.error({ event, jti: set.jti, err: error }, "could not store the signal of a SET; the transmitter will retry");
      return retryLater(503, error.code === "unavailable"
        ? "the signal store cannot take writes right now; retry later"
        : "signal store unavailable; retry later");
    }
  }

  async function receive(request: SsfRequest, activeKeys: TransmitterKeys): Promise<SsfResponse> {
    if (request.method.toUpperCase() !== "POST") {
      count("rejected", "none");
      return setError(405, "invalid_request", "only POST is accepted", { allow: "POST" });
    }
    const denied = authorize(request);
    if (denied !== undefined) {
      count("unauthorized", "none");
      logger.warn("refused an SSF push without a valid Bearer token");
      return denied;
    }
    const mediaType = (header(request, "content-type") ?? "").split(";")[0]?.trim().toLowerCase();
    if (mediaType !== SET_MEDIA_TYPE) {
      count("rejected", "none");
      return setError(415, "invalid_request", `Content-Type must be ${SET_MEDIA_TYPE}`);
    }
    if (request.body.length > SSF_MAX_BODY_BYTES) {
      count("rejected", "none");
      return setError(413, "invalid_request", `a SET may be at most ${SSF_MAX_BODY_BYTES} bytes`);
    }
    const nowMs = now();
    const compact = request.body.toString("utf8").trim();
    let set: VerifiedSet;
    try {
      set = await verifySet(compact, {
        keys: activeKeys,
        algorithms: config.algorithms,
        issuer: config.issuer,
        audience: config.audience,
        replayWindowMs: config.replayWindowMs,
        nowMs,
      });
    } catch (err) {
      if (err instanceof SetError) {
        count("rejected", "none");
        logger.warn({ err: err.code, description: err.message }, "refused a SET");
        return setError(400, err.code, err.message);
      }
      if (err instanceof KeySourceUnavailable) {
        count("failed", "none");
        logger.error({ err }, "cannot verify SETs: the transmitter JWKS is unavailable");
        return retryLater(503, "transmitter keys unavailable; retry later");
      }
      throw err;
    }
    const event = eventShortName(set.eventUri);
    const setDigest = createHash("sha256").update(compact, "utf8").digest("base64url");
    try {
      return await apply(set, setDigest, event, nowMs);
    } catch (err) {
      if (!(err instanceof SetError)) throw err;
      count("rejected", event);
      logger.warn({ event, jti: set.jti, err: err.code, description: err.message }, "refused a SET");
      return setError(400, err.code, err.message);
    }
  }

  return {
    enabled,
    async handle(request) {
      if (closed) return retryLater(503, "SSF receiver is shut down");
      if (keys === undefined) return setError(404, GENERAL_ERR, "SSF receiver is not configured");
      try {
        return await receive(request, keys);
      } catch (err) {
        count("failed", "none");
        logger.error({ err }, "SSF receiver failed");
        return retryLater(500, "internal error");
      }
    },
    close() {
      closed = true;
      replay.clear();
    },
  };
}
