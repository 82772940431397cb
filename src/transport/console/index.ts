// The web console (issue #14): approvals, live decisions, an identity's signals and the policy,
// served under /console/ on the ops HTTP port when console.enabled is set. Server-rendered pages
// (pages.ts), htmx for the parts that update themselves (polling the pending list, which any
// replica reads from the shared approval book; server-sent events for this replica's decisions).
//
// Security: sign-in exchanges an admin token for a signed session cookie (session.ts; HttpOnly,
// SameSite=Strict, Secure behind TLS); every POST carries the session's CSRF token and must come
// from this origin; failed sign-ins are rate-limited per client address; every page carries a
// Content-Security-Policy without inline script or style; every value is escaped (html.ts). What
// a holder may do is what its token's scopes allow, through the same admin actions as the API.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { ApprovalBook } from "../../approvals/book.js";
import { PATH_CONSOLE } from "../../config/index.js";
import { VigilError } from "../../errors/index.js";
import type { CompiledPolicy } from "../../policy/types.js";
import { subjectProblem } from "../../signals/model.js";
import type { SignalStore } from "../../signals/store.js";
import type { DecisionFeed } from "../../telemetry/decision-feed.js";
import type { DecisionLine } from "../../telemetry/decision-log.js";
import type { AdminActions } from "../http/admin-actions.js";
import { parseReinstateRequest, parseSignalRequest } from "../http/admin-requests.js";
import type { AdminAuth, AdminPrincipal } from "../http/auth.js";
import { httpStatusOf, readBody } from "../http/server.js";
import type { Html } from "./html.js";
import {
  approvalPage, approvalsPage, decisionItem, decisionsPage, errorPage, identityPage, matchesFilter, pendingTable, policyPage,
  signInPage, type DecisionFilter, type Notice, type Viewer,
} from "./pages.js";
import { createSessionCodec, parseCookies, type Session } from "./session.js";

export { randomSessionKey } from "./session.js";

export const CONSOLE_PREFIX = PATH_CONSOLE;
const COOKIE = "vigil_console";

export interface ConsoleOptions {
  auth: AdminAuth;
  actions: AdminActions;
  approvals: ApprovalBook;
  store: SignalStore;
  policy: () => CompiledPolicy;
  feed: DecisionFeed;
  sessionKey: Buffer;
  idleTimeoutMs: number;
  maxSessionMs: number;
  /** "auto": Secure when the request came over TLS (x-forwarded-proto https); true/false force it. */
  secureCookie: boolean | "auto";
  maxFailedSignInsPerMinute: number;
  logger: Logger;
  now: () => number;
}

export interface Console {
  /** Serves a request under /console; the ops server calls it for that prefix only. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void>;
  close(): void;
}

const CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'",
  "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'",
].join("; ");

const SECURITY_HEADERS = {
  "content-security-policy": CSP,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  // same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on a form POST.
  "referrer-policy": "same-origin",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

const MAX_FORM_BYTES = 16 * 1024;
const STATIC: Record<string, { type: string; load: () => Buffer }> = {
  "console.css": { type: "text/css; charset=utf-8", load: () => readOwn("console.css") },
  "console.js": { type: "text/javascript; charset=utf-8", load: () => readOwn("console.js") },
  "htmx.min.js": { type: "text/javascript; charset=utf-8", load: () => readVendor("htmx.min.js", "htmx.org/dist/htmx.min.js") },
  "sse.js": { type: "text/javascript; charset=utf-8", load: () => readVendor("sse.js", "htmx-ext-sse/dist/sse.min.js") },
};

function readOwn(name: string): Buffer {
  return readFileSync(new URL(`./static/${name}`, import.meta.url));
}

/** A vendored library: copied beside the console at `npm run build` (scripts/build-console.mjs); from node_modules when running from source. */
function readVendor(name: string, fromPackage: string): Buffer {
  try {
    return readFileSync(new URL(`./static/vendor/${name}`, import.meta.url));
  } catch {
    return readFileSync(createRequire(import.meta.url).resolve(fromPackage));
  }
}

/** Where a sign-in may send the browser next: a console path of this origin, nothing else. */
function safeNext(next: string | null | undefined): string {
  if (next === null || next === undefined || !/^\/console(\/[A-Za-z0-9_./?=&%-]*)?$/.test(next) || next.includes("//")) return "/console/approvals";
  return next;
}

export function createConsole(options: ConsoleOptions): Console {
  const log = options.logger.child({ component: "console" });
  const { now, auth, actions } = options;
  const sessions = createSessionCodec({ key: options.sessionKey, idleTimeoutMs: options.idleTimeoutMs, maxSessionMs: options.maxSessionMs, now });
  const failures = new Map<string, number[]>();
  const streams = new Set<ServerResponse>();
  const assets = new Map<string, Buffer>();
  // Would-be outcomes of shadow rules, tallied from the decision lines this replica writes. The
  // rule ids come from the policy (a closed set); the map is capped all the same.
  const shadowTally = new Map<string, Map<string, number>>();
  const stopTally = options.feed.subscribe((line) => {
    if (line.shadow_rule === "" || line.shadow_outcome === "") return;
    let byOutcome = shadowTally.get(line.shadow_rule);
    if (byOutcome === undefined) {
      if (shadowTally.size >= 10_000) return;
      byOutcome = new Map();
      shadowTally.set(line.shadow_rule, byOutcome);
    }
    byOutcome.set(line.shadow_outcome, (byOutcome.get(line.shadow_outcome) ?? 0) + 1);
  });

  function send(res: ServerResponse, status: number, page: Html | string, extra: Record<string, string> = {}): void {
    res.writeHead(status, { ...SECURITY_HEADERS, "content-type": "text/html; charset=utf-8", "cache-control": "no-store", ...extra });
    res.end(page.toString());
  }

  function redirect(res: ServerResponse, to: string, extra: Record<string, string | string[]> = {}): void {
    res.writeHead(303, { ...SECURITY_HEADERS, location: to, "cache-control": "no-store", ...extra });
    res.end();
  }

  function secure(req: IncomingMessage): boolean {
    if (options.secureCookie !== "auto") return options.secureCookie;
    return (req.socket as { encrypted?: boolean }).encrypted === true || req.headers["x-forwarded-proto"] === "https";
  }

  function cookie(req: IncomingMessage, value: string, maxAgeSeconds: number): string {
    return `${COOKIE}=${value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=${String(maxAgeSeconds)}${secure(req) ? "; Secure" : ""}`;
  }

  /** The signed-in holder, or undefined (no cookie, expired, signed out, or its token removed). */
  function signedIn(req: IncomingMessage): { session: Session; principal: AdminPrincipal } | undefined {
    const session = sessions.read(parseCookies(req.headers.cookie).get(COOKIE));
    if (session === undefined) return undefined;
    const principal = auth.byKey(session.tokenKey);
    return principal === undefined ? undefined : { session, principal };
  }

  /**
   * A POST must come from a page of this origin, besides carrying the CSRF token: a browser says
   * so in Sec-Fetch-Site, or (older ones) in Origin. A client that sends neither is no browser a
   * forged page could drive; it still needs the session and its CSRF token.
   */
  function sameOrigin(req: IncomingMessage): boolean {
    const site = req.headers["sec-fetch-site"];
    if (site !== undefined) return site === "same-origin";
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    const host = req.headers.host ?? "";
    return origin === `http://${host}` || origin === `https://${host}`;
  }

  function clientOf(req: IncomingMessage): string {
    return req.socket.remoteAddress ?? "unknown";
  }

  function tooManyFailures(client: string): boolean {
    const at = now();
    const recent = (failures.get(client) ?? []).filter((t) => t > at - 60_000);
    if (recent.length === 0) failures.delete(client);
    else failures.set(client, recent);
    return recent.length >= options.maxFailedSignInsPerMinute;
  }

  function recordFailure(client: string): void {
    if (failures.size >= 10_000 && !failures.has(client)) {
      const oldest = failures.keys().next();
      if (oldest.done !== true) failures.delete(oldest.value);
    }
    const list = failures.get(client) ?? [];
    list.push(now());
    failures.set(client, list);
  }

  async function form(req: IncomingMessage): Promise<URLSearchParams> {
    const type = req.headers["content-type"] ?? "";
    if (!type.startsWith("application/x-www-form-urlencoded")) throw new VigilError("invalid_input", "expected a form (application/x-www-form-urlencoded)");
    return new URLSearchParams((await readBody(req, MAX_FORM_BYTES)).toString("utf8"));
  }

  async function handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const method = req.method ?? "GET";
    if (path.startsWith(`${CONSOLE_PREFIX}/static/`) && method === "GET") {
      serveStatic(res, path.slice(`${CONSOLE_PREFIX}/static/`.length));
      return;
    }
    if (path === `${CONSOLE_PREFIX}/sign-in`) {
      if (method === "GET") {
        send(res, 200, signInPage({ next: safeNext(url.searchParams.get("next")) }));
        return;
      }
      if (method === "POST") {
        await signIn(req, res);
        return;
      }
    }
    const who = signedIn(req);
    if (who === undefined) {
      if (method === "GET" && path !== `${CONSOLE_PREFIX}/decisions/stream` && path !== `${CONSOLE_PREFIX}/approvals/pending`) {
        redirect(res, `${CONSOLE_PREFIX}/sign-in?next=${encodeURIComponent(safeNext(path + url.search))}`);
      } else {
        send(res, 401, errorPage(401, "Your session has ended: sign in again."), { "set-cookie": cookie(req, "", 0) });
      }
      return;
    }
    const viewer: Viewer = { name: who.principal.name, scopes: who.principal.scopes, csrf: sessions.csrfToken(who.session) };
    // Idle expiry slides with use: each request (the polling ones excepted) renews the cookie.
    const renewed: Record<string, string> = path === `${CONSOLE_PREFIX}/approvals/pending` ? {} : { "set-cookie": cookie(req, sessions.touch(who.session), Math.ceil(options.maxSessionMs / 1000)) };

    if (method === "POST") {
      const body = await form(req);
      if (!sameOrigin(req) || !sessions.checkCsrf(who.session, body.get("_csrf") ?? undefined)) {
        log.warn({ path, holder: who.principal.name }, "console form refused: missing or wrong CSRF token, or another origin");
        send(res, 403, errorPage(403, "This form could not be verified (it came from another page or an old session). Reload the page and try again.", viewer));
        return;
      }
      await post(req, res, path, body, who, viewer);
      return;
    }
    if (method !== "GET") {
      send(res, 405, errorPage(405, "Method not allowed.", viewer), { allow: "GET, POST" });
      return;
    }
    get(req, res, url, viewer, renewed);
  }

  async function signIn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const client = clientOf(req);
    const body = await form(req);
    const next = safeNext(body.get("next"));
    if (!sameOrigin(req)) {
      send(res, 403, signInPage({ next, notice: { kind: "error", text: "Sign-in refused: the form came from another site." } }));
      return;
    }
    if (tooManyFailures(client)) {
      log.warn({ client }, "console sign-in refused: too many failures");
      send(res, 429, signInPage({ next, notice: { kind: "error", text: "Too many failed sign-ins from this address: wait a minute." } }), { "retry-after": "60" });
      return;
    }
    const token = body.get("token") ?? "";
    const key = token.length > 4096 ? undefined : auth.keyOf(token.trim());
    const principal = key === undefined ? undefined : auth.byKey(key);
    if (key === undefined || principal === undefined) {
      recordFailure(client);
      log.warn({ client }, "console sign-in with an unknown token");
      send(res, 401, signInPage({ next, notice: { kind: "error", text: "That token is not valid here." } }));
      return;
    }
    const { cookie: value } = sessions.issue(key);
    log.info({ holder: principal.name, client }, "console sign-in");
    redirect(res, next, { "set-cookie": cookie(req, value, Math.ceil(options.maxSessionMs / 1000)) });
  }

  function get(req: IncomingMessage, res: ServerResponse, url: URL, viewer: Viewer, renewed: Record<string, string>): void {
    const path = url.pathname;
    const at = now();
    if (path === CONSOLE_PREFIX || path === `${CONSOLE_PREFIX}/`) {
      redirect(res, `${CONSOLE_PREFIX}/approvals`);
      return;
    }
    if (path === `${CONSOLE_PREFIX}/approvals`) {
      send(res, 200, approvalsPage(viewer, options.approvals.list(), at, noticeOf(url)), renewed);
      return;
    }
    if (path === `${CONSOLE_PREFIX}/approvals/pending`) {
      send(res, 200, pendingTable((options.approvals.list()).filter((a) => a.status === "pending"), at));
      return;
    }
    const approval = /^\/console\/approvals\/(apr_[A-Za-z0-9-]{1,64})$/.exec(path);
    if (approval?.[1] !== undefined) {
      const found = options.approvals.get(approval[1]);
      if (found === undefined) {
        send(res, 404, errorPage(404, "No such approval request (it may have been forgotten after a day).", viewer), renewed);
        return;
      }
      send(res, 200, approvalPage(viewer, found, at, noticeOf(url)), renewed);
      return;
    }
    if (path === `${CONSOLE_PREFIX}/decisions`) {
      send(res, 200, decisionsPage(viewer, options.feed.recent(), filterOf(url)), renewed);
      return;
    }
    if (path === `${CONSOLE_PREFIX}/decisions/stream`) {
      stream(req, res, filterOf(url));
      return;
    }
    if (path === `${CONSOLE_PREFIX}/identity`) {
      const q = (url.searchParams.get("q") ?? "").trim();
      if (q === "") {
        send(res, 200, identityPage(viewer, "", undefined, at, noticeOf(url)), renewed);
        return;
      }
      if (subjectProblem("revocation", q) !== undefined) {
        // Never echo what was typed: it may be a raw key pasted where a fingerprint belongs.
        send(res, 400, identityPage(viewer, "", undefined, at, {
          kind: "error", text: "Look up a SPIFFE ID (spiffe://…) or a credential fingerprint (sha256:<64 hex>, see `vigil fingerprint`). What you typed is neither, and it is not shown back in case it was a secret.",
        }), renewed);
        return;
      }
      send(res, 200, identityPage(viewer, q, options.store.list(q), at, noticeOf(url)), renewed);
      return;
    }
    if (path === `${CONSOLE_PREFIX}/policy`) {
      const policy = options.policy();
      send(res, 200, policyPage(viewer, policy.version, policy.rules, shadowTally), renewed);
      return;
    }
    send(res, 404, errorPage(404, "No such page.", viewer), renewed);
  }

  async function post(req: IncomingMessage, res: ServerResponse, path: string, body: URLSearchParams, who: { session: Session; principal: AdminPrincipal }, viewer: Viewer): Promise<void> {
    if (path === `${CONSOLE_PREFIX}/sign-out`) {
      sessions.revoke(who.session);
      log.info({ holder: who.principal.name }, "console sign-out");
      redirect(res, `${CONSOLE_PREFIX}/sign-in`, { "set-cookie": cookie(req, "", 0) });
      return;
    }
    const decide = /^\/console\/approvals\/(apr_[A-Za-z0-9-]{1,64})\/decide$/.exec(path);
    if (decide?.[1] !== undefined) {
      const id = decide[1];
      const decision = body.get("decision");
      const comment = (body.get("comment") ?? "").trim();
      try {
        if (comment.length > 1024) throw new VigilError("invalid_input", "a comment holds at most 1024 characters");
        if (decision === "approve") await actions.approve(id, who.principal, comment);
        else if (decision === "deny") await actions.deny(id, who.principal, comment);
        else throw new VigilError("invalid_input", "choose Approve or Deny");
      } catch (err) {
        const error = VigilError.from(err);
        const found = options.approvals.get(id);
        if (found === undefined) {
          send(res, 404, errorPage(404, "No such approval request.", viewer));
          return;
        }
        send(res, httpStatusOf(error.code), approvalPage(viewer, found, now(), { kind: "error", text: refusalInWords(error, who.principal.name) }));
        return;
      }
      redirect(res, `${CONSOLE_PREFIX}/approvals/${id}?done=${decision === "approve" ? "approved" : "denied"}`);
      return;
    }
    if (path === `${CONSOLE_PREFIX}/identity/revoke` || path === `${CONSOLE_PREFIX}/identity/reinstate`) {
      const subject = (body.get("subject") ?? "").trim();
      const reason = body.get("reason") ?? "";
      const revoke = path.endsWith("/revoke");
      try {
        if (revoke) await actions.putSignal(parseSignalRequest({ kind: "revocation", subject, data: { revoked: true, reason } }), who.principal);
        else await actions.reinstate(parseReinstateRequest({ subject, reason }), who.principal);
      } catch (err) {
        const error = VigilError.from(err);
        const shown = subjectProblem("revocation", subject) === undefined ? subject : "";
        send(res, httpStatusOf(error.code), identityPage(viewer, shown, shown === "" ? undefined : options.store.list(shown), now(), { kind: "error", text: error.message }));
        return;
      }
      redirect(res, `${CONSOLE_PREFIX}/identity?q=${encodeURIComponent(subject)}&done=${revoke ? "revoked" : "reinstated"}`);
      return;
    }
    send(res, 404, errorPage(404, "No such action.", viewer));
  }

  function stream(req: IncomingMessage, res: ServerResponse, filter: DecisionFilter): void {
    res.writeHead(200, { ...SECURITY_HEADERS, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no" });
    res.write(": live decisions\n\n");
    let dropped = 0;
    const onLine = (line: DecisionLine): void => {
      if (!matchesFilter(line, filter)) return;
      // A slow viewer loses lines (counted, said in the stream), never slows the Check path.
      if (res.writableLength > 256 * 1024) {
        dropped += 1;
        return;
      }
      if (dropped > 0) {
        res.write(`: ${String(dropped)} decisions dropped for a slow connection\n\n`);
        dropped = 0;
      }
      res.write(sseEvent("decision", decisionItem(line).toString()));
    };
    let unsubscribe: () => void;
    try {
      unsubscribe = options.feed.subscribe(onLine);
    } catch {
      res.end("event: error\ndata: too many live viewers\n\n");
      return;
    }
    streams.add(res);
    const heartbeat = setInterval(() => { res.write(": keep-alive\n\n"); }, 15_000);
    heartbeat.unref();
    req.once("close", () => {
      clearInterval(heartbeat);
      unsubscribe();
      streams.delete(res);
    });
  }

  function serveStatic(res: ServerResponse, name: string): void {
    const asset = STATIC[name];
    if (asset === undefined || !Object.hasOwn(STATIC, name)) {
      res.writeHead(404, { ...SECURITY_HEADERS, "content-type": "text/plain" });
      res.end("not found");
      return;
    }
    let body = assets.get(name);
    if (body === undefined) {
      body = asset.load();
      assets.set(name, body);
    }
    res.writeHead(200, { ...SECURITY_HEADERS, "content-type": asset.type, "cache-control": "public, max-age=300" });
    res.end(body);
  }



  return {
    handle,
    close: () => {
      stopTally();
      for (const res of streams) res.end();
      streams.clear();
    },
  };
}

function filterOf(url: URL): DecisionFilter {
  const get = (name: string): string => (url.searchParams.get(name) ?? "").slice(0, 256);
  return { outcome: get("outcome"), caller: get("caller"), destination: get("destination"), rule: get("rule") };
}

const DONE: Record<string, string> = {
  approved: "Approved: the grant is written; the caller's next matching request goes through.",
  denied: "Denied.",
  revoked: "Revoked: the next request with this identity or credential is denied on every sidecar.",
  reinstated: "Reinstated: the revocation is lifted (audited).",
};

function noticeOf(url: URL): Notice | undefined {
  const done = url.searchParams.get("done");
  return done !== null && Object.hasOwn(DONE, done) ? { kind: "ok", text: DONE[done] ?? "" } : undefined;
}

/** Why an approval was refused, in words for the person who tried. */
function refusalInWords(error: VigilError, holder: string): string {
  if (error.code === "forbidden" && /themselves|own identity/.test(error.message)) {
    return `You (${holder}) cannot decide this request: it was made by you or by an identity you own. Another approver must decide it.`;
  }
  if (error.code === "forbidden" && /not an approver/.test(error.message)) {
    return `You (${holder}) are not among the approvers this rule names. Ask one of them to decide it.`;
  }
  if (error.code === "forbidden") return `Your token does not allow this: ${error.message}.`;
  if (error.code === "conflict") return `This request was already decided or has expired: ${error.message}.`;
  if (error.code === "internal") return "The decision could not be recorded; nothing was decided. Try again.";
  return error.message;
}

/** One server-sent event; every line of the data gets its own data: field. */
function sseEvent(event: string, data: string): string {
  return `event: ${event}\n${data.split("\n").map((line) => `data: ${line}`).join("\n")}\n\n`;
}
