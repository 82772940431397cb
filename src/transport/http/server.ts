// The ops and admin HTTP port (default 127.0.0.1:9192): /metrics, /healthz, /readyz, the SSF push
// receiver, the signals admin API and approvals. Every /v1 endpoint needs an admin bearer token;
// an unauthenticated write gets 401 and never writes. VigilError codes map to HTTP here only.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { ApprovalBook, ApprovalRequest } from "../../approvals/book.js";
import {
  PATH_APPROVALS, PATH_HEALTHZ, PATH_METRICS, PATH_READYZ, PATH_SIGNALS, PATH_SSF_EVENTS,
} from "../../config/defaults.js";
import { VigilError, type ErrorCode } from "../../errors/index.js";
import { SIGNAL_KINDS, type SignalKind } from "../../signals/model.js";
import type { PutResult, SignalStore } from "../../signals/store.js";
import { SSF_MAX_BODY_BYTES } from "../../signals/ssf/index.js";
import type { Metrics } from "../../telemetry/metrics.js";
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

export interface OpsServerOptions {
  host: string;
  port: number;
  adminTokens: readonly string[];
  registry: Registry;
  metrics: Metrics;
  store: SignalStore;
  approvals: ApprovalBook;
  readiness: () => Readiness;
  /** Undefined when no SSF issuer is configured (the endpoint then answers 404). */
  ssf?: SetReceiver;
  logger: Logger;
  now?: () => number;
  /** Called before each scrape so gauges (freshness, sizes) are computed at scrape time. */
  beforeScrape?: () => void;
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

const MAX_ADMIN_BODY = 1024 * 1024;

/** The one place VigilError codes become HTTP statuses. */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case "invalid_input": return 400;
    case "unauthenticated": return 401;
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

  const server: Server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      const error = VigilError.from(err);
      if (error.code === "internal") log.error({ err }, "admin request failed");
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
    if (path === PATH_SSF_EVENTS) {
      if (options.ssf === undefined) throw new VigilError("not_found", "the SSF receiver is not configured (--ssf-issuer)");
      const body = await readBody(req, SSF_MAX_BODY_BYTES);
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
    throw new VigilError("not_found", `no route for ${method} ${path}`);
  }

  function authenticate(req: IncomingMessage): AdminPrincipal {
    const principal = auth.authenticate(req.headers.authorization);
    if (principal === undefined) {
      options.metrics.adminRequests.labels("unauthenticated").inc();
      log.warn({ method: req.method, path: req.url?.split("?")[0] }, "admin request without a valid bearer token");
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
      const input = await readJson(req);
      const items = Array.isArray(input) ? input : [input];
      const results = [];
      for (const item of items) results.push(await putSignal(item, principal));
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
      const body = await readJson(req);
      const { subject, reason } = (typeof body === "object" && body !== null ? body : {}) as { subject?: unknown; reason?: unknown };
      if (typeof subject !== "string" || subject === "") throw new VigilError("invalid_input", "subject (string) is required");
      if (typeof reason !== "string" || reason.trim() === "") throw new VigilError("invalid_input", "reason (string) is required: reinstatements are audited");
      const result = await options.store.reinstate(subject, principal.name, reason);
      log.warn({ subject, by: principal.name, reason }, "revocation lifted by reinstate");
      sendJson(res, 200, result);
      return;
    }
    if (SIGNAL_KINDS.includes(rest as SignalKind) && method === "GET") {
      const subject = url.searchParams.get("subject");
      if (subject === null || subject === "") throw new VigilError("invalid_input", "query parameter subject is required");
      const signal = options.store.get(subject, rest as SignalKind, url.searchParams.get("name") ?? "");
      if (signal === undefined) throw new VigilError("not_found", `no ${rest} signal for ${subject}`);
      sendJson(res, 200, signal);
      return;
    }
    throw new VigilError("not_found", `no route for ${method} ${url.pathname}`);
  }

  async function putSignal(item: unknown, principal: AdminPrincipal): Promise<PutResult> {
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      throw new VigilError("invalid_input", "a signal must be a JSON object");
    }
    const filled: Record<string, unknown> = {
      id: randomUUID(), source: `admin:${principal.name}`, observedAt: now(), ...item,
    };
    try {
      const result = await options.store.put(filled as Parameters<SignalStore["put"]>[0]);
      options.metrics.signalsWritten.labels(result.signal.kind, "admin").inc();
      log.info({ kind: result.signal.kind, subject: result.signal.subject, status: result.status, by: principal.name }, "signal put");
      return result;
    } catch (err) {
      const error = VigilError.from(err);
      options.metrics.signalsRejected.labels(error.code).inc();
      throw error;
    }
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
      if (action === "approve") {
        const { approval, grant } = await options.approvals.approve(id, principal.name);
        options.metrics.approvalsResolved.labels("approved").inc();
        log.warn({ approval_id: id, by: principal.name, caller: approval.caller, rule: approval.rule }, "step-up approved");
        sendJson(res, 200, { approval, grant });
      } else {
        const approval = options.approvals.deny(id, principal.name);
        options.metrics.approvalsResolved.labels("denied").inc();
        log.info({ approval_id: id, by: principal.name }, "step-up denied");
        sendJson(res, 200, { approval });
      }
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

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new VigilError("invalid_input", `request body exceeds ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = req.headers["content-type"] ?? "";
  if (!type.startsWith("application/json")) throw new VigilError("invalid_input", "content-type must be application/json");
  const body = await readBody(req, MAX_ADMIN_BODY);
  try {
    return JSON.parse(body.toString("utf8"));
  } catch (cause) {
    throw new VigilError("invalid_input", "request body is not valid JSON", { cause });
  }
}

function send(res: ServerResponse, status: number, body: string, contentType: string): void {
  res.writeHead(status, { "content-type": contentType, "cache-control": "no-store" });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
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
