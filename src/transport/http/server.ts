// The ops and admin HTTP port (default 127.0.0.1:9192): /metrics, /healthz, /readyz, the SSF push
// receiver, the signals admin API and approvals. Every /v1 endpoint needs an admin bearer token
// (401 without); writes need the token's scope (403 without) and go through strict per-kind
// request schemas (admin-requests.ts). A refused body or subject is never logged or echoed.
// VigilError codes map to HTTP here only.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { ApprovalBook, ApprovalRequest } from "../../approvals/book.js";
import type { BehaviorMonitor } from "../../behavior/index.js";
import {
  PATH_APPROVALS, PATH_BEHAVIOR, PATH_HEALTHZ, PATH_JWKS, PATH_METRICS, PATH_READYZ, PATH_SIGNALS, PATH_SSF_CONFIGURATION, PATH_SSF_EVENTS,
  type AdminToken,
} from "../../config/index.js";
import { VigilError, type ErrorCode } from "../../errors/index.js";
import { SIGNAL_KINDS, type SignalKind } from "../../signals/model.js";
import type { SignalStore } from "../../signals/store.js";
import { SSF_MAX_BODY_BYTES } from "../../signals/ssf/index.js";
import type { Metrics } from "../../telemetry/metrics.js";
import { createAdminActions, type AdminActions } from "./admin-actions.js";
import {
  MAX_SIGNALS_PER_REQUEST, parseBehaviorAcceptRequest, parseDecisionRequest, parseReinstateRequest, parseSignalRequest,
} from "./admin-requests.js";
import { AdminAuth, type AdminPrincipal } from "./auth.js";

export interface Readiness {
  ready: boolean;
  checks: Record<string, { ok: boolean; detail: string }>;
}

export interface SetReceiver {
  handle(req: { method: string; headers: Record<string, string | undefined>; body: Buffer }): Promise<{
    status: number; headers: Record<string, string>; body: string;
  }>;
}

/** Vigil's CAEP transmitter metadata (notify/transmitter.ts): public, unauthenticated. */
export interface TransmitterMetadata {
  readonly issuer: string;
  jwks(): unknown;
  configuration(): unknown;
}

/** A route another transport serves on this port (the AuthZEN PDP): matched by exact path and method. */
export interface HttpRoute {
  method: string;
  path: string;
  /** Answers the request; a thrown VigilError is answered like the admin API's (401 with WWW-Authenticate). */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

export interface OpsServerOptions {
  host: string;
  port: number;
  adminTokens: readonly AdminToken[];
  /** How far a client-given observedAt may be from this server's clock (default 5 minutes). */
  maxClockSkewMs?: number;
  registry: Registry;
  metrics: Metrics;
  store: SignalStore;
  approvals: ApprovalBook;
  /** Behaviour baselines (GET /v1/behavior, POST /v1/behavior/accept); 404 without. */
  behavior?: BehaviorMonitor;
  readiness: () => Readiness;
  /** Undefined when no SSF issuer is configured (the endpoint then answers 404). */
  ssf?: SetReceiver;
  /** Undefined when no transmitter issuer is configured (the well-known paths then answer 404). */
  transmitter?: TransmitterMetadata;
  logger: Logger;
  now?: () => number;
  /** Called before each scrape so gauges (freshness, sizes) are computed at scrape time. */
  beforeScrape?: () => void;
  /** Further routes (transport/authzen); the built-in ones take precedence. */
  routes?: readonly HttpRoute[];
  /** Routes served under a path prefix by another surface (the console under /console). */
  mount?: MountedRoutes;
  /** The admin actions, when another surface shares them (default: made here from the options). */
  actions?: AdminActions;
}

/** A surface served under `prefix` on this port; it authenticates its own requests. */
export interface MountedRoutes {
  prefix: string;
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void>;
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

const MAX_ADMIN_BODY = 1024 * 1024;
/** Past its limit a body is read and dropped up to this many bytes, so the client gets its answer; beyond, the connection is cut. */
const DISCARD_LIMIT = 8 * 1024 * 1024;

/** The one place VigilError codes become HTTP statuses. */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case "invalid_input": return 400;
    case "unauthenticated": return 401;
    case "forbidden": return 403;
    case "not_found": return 404;
    case "conflict": return 409;
    case "unavailable": return 503;
    case "internal": return 500;
  }
}

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const auth = new AdminAuth(options.adminTokens);
  const log = options.logger.child({ component: "http" });
  const now = options.now ?? Date.now;
  const actions = options.actions ?? createAdminActions({
    store: options.store, approvals: options.approvals, metrics: options.metrics, logger: options.logger, now,
    maxClockSkewMs: options.maxClockSkewMs ?? 300_000,
  });

  const server: Server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      const error = VigilError.from(err);
      if (error.code === "internal") log.error({ err }, "admin request failed");
      else if (error.code === "forbidden") {
        // Audited without the body: what was refused to whom, never what it carried.
        log.warn({ method: req.method, path: pathOnly(req), code: error.code, message: error.message }, "admin request refused");
      }
      sendError(res, error);
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://vigil.invalid");
    const path = url.pathname;
    const method = req.method ?? "GET";

    if (path === PATH_METRICS && method === "GET") {
      options.beforeScrape?.();
      const text = await options.registry.metrics();
      send(res, 200, text, options.registry.contentType);
      return;
    }
    if (path === PATH_HEALTHZ && method === "GET") {
      sendJson(res, 200, { status: "ok" });
      return;
    }
    if (path === PATH_READYZ && method === "GET") {
      const readiness = options.readiness();
      sendJson(res, readiness.ready ? 200 : 503, { status: readiness.ready ? "ready" : "not_ready", checks: readiness.checks });
      return;
    }
    if (options.transmitter !== undefined && method === "GET") {
      // At the root and, for an issuer with a path, under it too (SSF §7.1: the well-known
      // segment goes before the issuer's path; jwks_uri is the issuer + /.well-known/jwks.json).
      const issuerPath = new URL(options.transmitter.issuer).pathname.replace(/\/$/, "");
      if (path === PATH_JWKS || path === `${issuerPath}${PATH_JWKS}`) {
        sendJson(res, 200, options.transmitter.jwks());
        return;
      }
      if (path === PATH_SSF_CONFIGURATION || path === `${PATH_SSF_CONFIGURATION}${issuerPath}`) {
        sendJson(res, 200, options.transmitter.configuration());
        return;
      }
    }
    if (path === PATH_SSF_EVENTS) {
      if (options.ssf === undefined) throw new VigilError("not_found", "the SSF receiver is not configured (--ssf-issuer)");
      // Read one byte past the limit (the rest is dropped) so the receiver answers 413 in RFC 8935 form.
      const body = await readBody(req, SSF_MAX_BODY_BYTES + 1, { truncate: true });
      const answer = await options.ssf.handle({ method, headers: flatHeaders(req), body });
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body);
      return;
    }
    if (path === PATH_SIGNALS || path.startsWith(`${PATH_SIGNALS}/`)) {
      const principal = authenticate(req);
      await signals(req, res, url, principal);
      return;
    }
    if (path === PATH_APPROVALS || path.startsWith(`${PATH_APPROVALS}/`)) {
      const principal = authenticate(req);
      await approvalsRoute(req, res, url, principal);
      return;
    }
    if (path === PATH_BEHAVIOR || path.startsWith(`${PATH_BEHAVIOR}/`)) {
      const principal = authenticate(req);
      await behaviorRoute(req, res, url, principal);
      return;
    }
    const extra = options.routes?.find((r) => r.path === path && r.method === method);
    if (extra !== undefined) {
      await extra.handle(req, res);
      return;
    }
    const mount = options.mount;
    if (mount !== undefined && (path === mount.prefix || path.startsWith(`${mount.prefix}/`))) {
      await mount.handle(req, res, url);
      return;
    }
    throw new VigilError("not_found", `no route for ${method} ${path}`);
  }

  async function behaviorRoute(req: IncomingMessage, res: ServerResponse, url: URL, principal: AdminPrincipal): Promise<void> {
    const method = req.method ?? "GET";
    const behavior = options.behavior;
    if (behavior === undefined) throw new VigilError("not_found", "behaviour baselines are not kept by this instance");
    const rest = url.pathname.slice(PATH_BEHAVIOR.length).replace(/^\//, "");
    if (rest === "" && method === "GET") {
      const caller = url.searchParams.get("caller");
      if (caller === null) {
        sendJson(res, 200, { ...behavior.summary(), callerList: behavior.callers() });
        return;
      }
      const report = behavior.show(caller);
      if (report === undefined) throw new VigilError("not_found", "no baseline is held for this caller");
      sendJson(res, 200, report);
      return;
    }
    if (rest === "accept" && method === "POST") {
      actions.authorize(principal, "behavior:write");
      const request = parseBehaviorAcceptRequest(await readJson(req));
      const result = behavior.accept(request);
      // Audited: who widened whose baseline, and with what.
      log.warn({ caller: result.caller, by: principal.name, actions: result.actions, networks: result.networks }, "behaviour accepted into the baseline");
      sendJson(res, 200, result);
      return;
    }
    throw new VigilError("not_found", `no route for ${method} ${url.pathname}`);
  }

  function authenticate(req: IncomingMessage): AdminPrincipal {
    const principal = auth.authenticate(req.headers.authorization);
    if (principal === undefined) {
      options.metrics.adminRequests.labels("unauthenticated").inc();
      log.warn({ method: req.method, path: pathOnly(req) }, "admin request without a valid bearer token");
      throw new VigilError("unauthenticated", auth.configured
        ? "a valid admin bearer token is required"
        : "the admin API is disabled: no admin tokens configured (--admin-tokens-file or VIGIL_ADMIN_TOKENS)");
    }
    options.metrics.adminRequests.labels("authenticated").inc();
    return principal;
  }

  async function signals(req: IncomingMessage, res: ServerResponse, url: URL, principal: AdminPrincipal): Promise<void> {
    const method = req.method ?? "GET";
    const rest = url.pathname.slice(PATH_SIGNALS.length).replace(/^\//, "");
    if (rest === "" && method === "POST") {
      actions.authorize(principal, "signals:write");
      const input = await readJson(req);
      const items: unknown[] = Array.isArray(input) ? input : [input];
      if (items.length === 0 || items.length > MAX_SIGNALS_PER_REQUEST) {
        throw new VigilError("invalid_input", `a POST holds 1 to ${MAX_SIGNALS_PER_REQUEST} signals`);
      }
      // Every item is checked before any is written: garbage at [7] leaves [0..6] unwritten too.
      const requests = items.map((item, i) => parseSignalRequest(item, Array.isArray(input) ? `[${i}]` : ""));
      const results = [];
      for (const [i, request] of requests.entries()) {
        results.push(await actions.putSignal(request, principal, Array.isArray(input) ? `[${i}]` : ""));
      }
      sendJson(res, results.some((r) => r.status === "written") ? 201 : 200, Array.isArray(input) ? results : results[0]);
      return;
    }
    if (rest === "" && method === "GET") {
      const subject = url.searchParams.get("subject");
      if (subject === null || subject === "") throw new VigilError("invalid_input", "query parameter subject is required");
      sendJson(res, 200, { subject, signals: options.store.list(subject) });
      return;
    }
    if (rest === "reinstate" && method === "POST") {
      actions.authorize(principal, "signals:reinstate");
      const result = await actions.reinstate(parseReinstateRequest(await readJson(req)), principal);
      sendJson(res, 200, result);
      return;
    }
    if (SIGNAL_KINDS.includes(rest as SignalKind) && method === "GET") {
      const subject = url.searchParams.get("subject");
      if (subject === null || subject === "") throw new VigilError("invalid_input", "query parameter subject is required");
      const signal = options.store.get(subject, rest as SignalKind, url.searchParams.get("name") ?? "");
      if (signal === undefined) throw new VigilError("not_found", `no ${rest} signal for this subject`);
      sendJson(res, 200, signal);
      return;
    }
    throw new VigilError("not_found", `no route for ${method} ${url.pathname}`);
  }

  async function approvalsRoute(req: IncomingMessage, res: ServerResponse, url: URL, principal: AdminPrincipal): Promise<void> {
    const method = req.method ?? "GET";
    const parts = url.pathname.slice(PATH_APPROVALS.length).split("/").filter((p) => p !== "");
    if (parts.length === 0 && method === "GET") {
      const status = url.searchParams.get("status");
      const valid = ["pending", "approved", "denied", "expired"];
      if (status !== null && !valid.includes(status)) throw new VigilError("invalid_input", `status must be one of ${valid.join(", ")}`);
      sendJson(res, 200, { approvals: options.approvals.list((status ?? undefined) as ApprovalRequest["status"] | undefined) });
      return;
    }
    const [id, action] = parts;
    if (id !== undefined && action === undefined && method === "GET") {
      const approval = options.approvals.get(id);
      if (approval === undefined) throw new VigilError("not_found", `no approval request ${id}`);
      sendJson(res, 200, approval);
      return;
    }
    if (id !== undefined && (action === "approve" || action === "deny") && method === "POST") {
      actions.authorize(principal, "approvals:decide");
      const { comment } = await readDecisionBody(req);
      if (action === "approve") sendJson(res, 200, await actions.approve(id, principal, comment));
      else sendJson(res, 200, { approval: await actions.deny(id, principal, comment) });
      return;
    }
    throw new VigilError("not_found", `no route for ${method} ${url.pathname}`);
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ host: options.host, port }, "ops/admin HTTP listening");
  const readOnly = auth.readOnlyNames;
  if (readOnly.length > 0) log.warn({ holders: readOnly }, "admin tokens without scopes are read-only");
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => { resolve(); });
      server.closeAllConnections();
    }),
  };
}

function flatHeaders(req: IncomingMessage): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(req.headers)) out[k] = Array.isArray(v) ? v.join(", ") : v;
  return out;
}

function pathOnly(req: IncomingMessage): string {
  return (req.url ?? "/").split("?")[0] ?? "/";
}

/**
 * Reads a request body up to `limit` bytes. Past it the rest is read and dropped (up to
 * DISCARD_LIMIT, then the connection is cut) so the client still gets an answer; with `truncate`
 * the first `limit` bytes are returned, otherwise VigilError("invalid_input").
 */
export function readBody(req: IncomingMessage, limit: number, options: { truncate?: boolean } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (kept < limit) {
        const part = chunk.subarray(0, limit - kept);
        chunks.push(part);
        kept += part.length;
      }
      if (size > limit + DISCARD_LIMIT) {
        req.off("data", onData);
        req.destroy();
        reject(new VigilError("invalid_input", `request body exceeds ${limit} bytes`));
      }
    };
    req.on("data", onData);
    req.once("error", reject);
    req.once("close", () => { reject(new VigilError("invalid_input", "request body cut short")); });
    req.once("end", () => {
      if (size > limit && options.truncate !== true) reject(new VigilError("invalid_input", `request body exceeds ${limit} bytes`));
      else resolve(Buffer.concat(chunks));
    });
  });
}

/** An approve or deny body: none at all, or JSON {"comment": "…"}. */
async function readDecisionBody(req: IncomingMessage): Promise<{ comment: string }> {
  const hasBody = (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0")
    || req.headers["transfer-encoding"] !== undefined;
  if (!hasBody) return { comment: "" };
  return parseDecisionRequest(await readJson(req));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = req.headers["content-type"] ?? "";
  if (!type.startsWith("application/json")) throw new VigilError("invalid_input", "content-type must be application/json");
  const body = await readBody(req, MAX_ADMIN_BODY);
  try {
    return JSON.parse(body.toString("utf8"));
  } catch (cause) {
    // Deep nesting ends here too (RangeError); the message never quotes the body.
    throw new VigilError("invalid_input", "request body is not valid JSON", { cause });
  }
}

function send(res: ServerResponse, status: number, body: string, contentType: string): void {
  res.writeHead(status, { "content-type": contentType, "cache-control": "no-store" });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, `${JSON.stringify(value)}\n`, "application/json");
}

function sendError(res: ServerResponse, error: VigilError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const status = httpStatusOf(error.code);
  if (status === 401) res.setHeader("www-authenticate", "Bearer realm=\"vigil\"");
  sendJson(res, status, { error: { code: error.code, message: error.code === "internal" ? "internal error" : error.message } });
}
