// The SSF push receiver (RFC 8935) as a transport-independent handler: one HTTP request in, one
// answer out. The HTTP server only copies method, headers and body in and the answer back out;
// every status code and error body of the push endpoint is decided here.

import { createHash, timingSafeEqual } from "node:crypto";
import type { FetchImplementation } from "jose";
import type { Logger } from "pino";
import type { SsfConfig } from "../../config/schema.js";
import { VigilError } from "../../errors/index.js";
import type { Metrics } from "../../telemetry/metrics.js";
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

const FORBIDDEN_ALGORITHM = /^(none|HS\d+)$/i;

function header(request: SsfRequest, name: string): string | undefined {
  const direct = request.headers[name];
  if (direct !== undefined) return direct;
  for (const [key, value] of Object.entries(request.headers)) {
    if (key.toLowerCase() === name) return value;
  }
  return undefined;
}

function json(status: number, body: Record<string, string>, headers: Record<string, string> = {}): SsfResponse {
  return { status, headers: { "content-type": "application/json", "cache-control": "no-store", ...headers }, body: JSON.stringify(body) };
}

function setError(status: number, err: SetErrorCode, description: string, headers?: Record<string, string>): SsfResponse {
  return json(status, { err, description }, headers);
}

const digest = (value: string): Buffer => createHash("sha256").update(value, "utf8").digest();

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
  const tokenDigests = config.pushTokens.map(digest);
  const replay = new ReplayGuard(config.replayWindowMs);
  let closed = false;

  const count = (result: SsfResult, event: string): void => {
    metrics?.ssfEvents.inc({ result, event });
  };

  /** The RFC 8935 authorization_header check; undefined when the caller may go on. */
  function authorize(request: SsfRequest): SsfResponse | undefined {
    if (tokenDigests.length === 0) return undefined;
    const match = /^Bearer +([^\s]+) *$/i.exec(header(request, "authorization") ?? "");
    const presented = match?.[1];
    if (presented === undefined) {
      return setError(401, "authentication_failed", "a Bearer token is required", { "www-authenticate": `Bearer realm="${REALM}"` });
    }
    const presentedDigest = digest(presented);
    let matched = false;
    for (const expected of tokenDigests) {
      // Compare every configured token, equal-length digests, no early exit.
      matched = timingSafeEqual(presentedDigest, expected) || matched;
    }
    if (matched) return undefined;
    return setError(401, "authentication_failed", "the Bearer token is not valid", {
      "www-authenticate": `Bearer realm="${REALM}", error="invalid_token"`,
    });
  }

  /** Maps one verified SET, refuses it if replayed, and stores its signal (if any). */
  async function apply(set: VerifiedSet, event: string, nowMs: number): Promise<SsfResponse> {
    const outcome = mapSet(set, nowMs);
    if (!replay.reserve(set.iss, set.jti, nowMs)) {
      count("rejected", event);
      logger.warn({ event, jti: set.jti }, "refused a replayed SET");
      return setError(400, "invalid_request", "replayed jti");
    }
    if (outcome.action !== "write") {
      replay.commit(set.iss, set.jti, nowMs);
      count(outcome.action === "acknowledge" ? "acknowledged" : "ignored", event);
      const streamStopping = set.eventUri === SSF_EVENTS.streamUpdated && set.payload.status !== "enabled";
      const line = { event, jti: set.jti, ...(outcome.action === "acknowledge" ? { note: outcome.note } : { why: outcome.why }) };
      if (streamStopping) logger.warn(line, "transmitter reports the SSF stream is not enabled");
      else logger.info(line, outcome.action === "acknowledge" ? "acknowledged an SSF stream event" : "acknowledged a SET that maps to no signal");
      return { status: 202, headers: {}, body: "" };
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
      return { status: 202, headers: {}, body: "" };
    } catch (err) {
      replay.release(set.iss, set.jti);
      const error = VigilError.from(err);
      if (error.code === "conflict") {
        // The store holds a more severe, sticky state (a revocation, a leaked key) that this event
        // would soften. Acknowledge so the transmitter stops retrying; the state stays as it is.
        replay.commit(set.iss, set.jti, now());
        count("ignored", event);
        logger.warn({ event, jti: set.jti, subject: signal.subject, err: error }, "a SET would soften a sticky state; acknowledged and ignored");
        return { status: 202, headers: {}, body: "" };
      }
      if (error.code === "invalid_input") {
        count("rejected", event);
        logger.warn({ event, jti: set.jti, err: error }, "the store refused the signal of a SET");
        return setError(400, "invalid_request", "the event cannot be stored as a signal");
      }
      count("failed", event);
      logger.error({ event, jti: set.jti, err: error }, "could not store the signal of a SET; the transmitter will retry");
      return json(503, { description: "signal store unavailable; retry later" }, { "retry-after": RETRY_AFTER_SECONDS });
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
    let set: VerifiedSet;
    try {
      set = await verifySet(request.body.toString("utf8").trim(), {
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
        return json(503, { description: "transmitter keys unavailable; retry later" }, { "retry-after": RETRY_AFTER_SECONDS });
      }
      throw err;
    }
    const event = eventShortName(set.eventUri);
    try {
      return await apply(set, event, nowMs);
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
      if (closed) return json(503, { description: "SSF receiver is shut down" }, { "retry-after": RETRY_AFTER_SECONDS });
      if (keys === undefined) return json(404, { description: "SSF receiver is not configured" });
      try {
        return await receive(request, keys);
      } catch (err) {
        count("failed", "none");
        logger.error({ err }, "SSF receiver failed");
        return json(500, { description: "internal error" });
      }
    },
    close() {
      closed = true;
      replay.clear();
    },
  };
}
