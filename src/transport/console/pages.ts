// The console's pages, rendered on the server from the same objects the admin API returns. Every
// value a caller, transmitter or operator chose goes through html`` (escaped); the pages carry no
// inline script or style (the Content-Security-Policy forbids both), only data attributes that
// static/console.js and htmx read.

import type { ApprovalRequest } from "../../approvals/book.js";
import type { AdminScope } from "../../config/index.js";
import type { RuleSummary } from "../../policy/types.js";
import type { Signal } from "../../signals/model.js";
import type { DecisionLine } from "../../telemetry/decision-log.js";
import { html, urlPart, type Html } from "./html.js";

export interface Viewer {
  name: string;
  scopes: readonly AdminScope[];
  csrf: string;
}

export type Tab = "approvals" | "decisions" | "identity" | "policy";

/** A message shown above a page's content: what just happened, or why an action was refused. */
export interface Notice { kind: "ok" | "error"; text: string }

const TABS: readonly [Tab, string][] = [["approvals", "Approvals"], ["decisions", "Live decisions"], ["identity", "Identities"], ["policy", "Policy"]];

export function layout(title: string, body: Html, options: { viewer?: Viewer; tab?: Tab; notice?: Notice | undefined } = {}): Html {
  const { viewer, tab, notice } = options;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="htmx-config" content='{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true,"historyCacheSize":0}'>
<title>${title} · Vigil</title>
<link rel="stylesheet" href="/console/static/console.css">
<script src="/console/static/htmx.min.js" defer></script>
<script src="/console/static/sse.js" defer></script>
<script src="/console/static/console.js" defer></script>
</head>
<body>
<header class="top">
  <a class="brand" href="/console/approvals">Vigil</a>
  ${viewer === undefined ? "" : html`<nav>${TABS.map(([id, label]) => html`<a href="/console/${id}"${id === tab ? html` aria-current="page"` : ""}>${label}</a>`)}</nav>
  <form class="who" method="post" action="/console/sign-out">
    <span title="${viewer.scopes.length === 0 ? "read-only" : viewer.scopes.join(", ")}">${viewer.name}</span>
    <input type="hidden" name="_csrf" value="${viewer.csrf}">
    <button type="submit">Sign out</button>
  </form>`}
</header>
<main>
${notice === undefined ? "" : html`<p class="notice ${notice.kind}" role="${notice.kind === "error" ? "alert" : "status"}">${notice.text}</p>`}
${body}
</main>
</body>
</html>
`;
}

export function signInPage(options: { next: string; notice?: Notice | undefined }): Html {
  return layout("Sign in", html`<section class="sign-in">
<h1>Sign in</h1>
<p>Paste your admin token. Its scopes decide what this console lets you do; its holder name is who you are in audit lines and approvals.</p>
<form method="post" action="/console/sign-in">
  <input type="hidden" name="next" value="${options.next}">
  <label>Admin token <input type="password" name="token" autocomplete="off" required autofocus></label>
  <button type="submit">Sign in</button>
</form>
</section>`, { notice: options.notice });
}

export function errorPage(status: number, text: string, viewer?: Viewer): Html {
  return layout(String(status), html`<h1>${status === 404 ? "Not found" : status === 403 ? "Not allowed" : "Something went wrong"}</h1><p>${text}</p>`, { viewer });
}

// ---- approvals ----

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${String(s)}s`;
  if (s < 3600) return `${String(Math.floor(s / 60))}m`;
  if (s < 86_400) return `${String(Math.floor(s / 3600))}h ${String(Math.floor((s % 3600) / 60))}m`;
  return `${String(Math.floor(s / 86_400))}d`;
}

function time(ms: number): Html {
  const iso = new Date(ms).toISOString();
  return html`<time datetime="${iso}">${iso.replace("T", " ").slice(0, 19)} UTC</time>`;
}

function signalsList(signals: Record<string, string> | undefined): Html {
  const entries = Object.entries(signals ?? {});
  if (entries.length === 0) return html`<span class="muted">none in force</span>`;
  return html`<dl class="signals">${entries.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
}

function canDecide(viewer: Viewer): boolean {
  return viewer.scopes.includes("approvals:decide");
}

/** The pending table (also the fragment htmx polls, so new requests appear without reloading). */
export function pendingTable(pending: readonly ApprovalRequest[], now: number): Html {
  if (pending.length === 0) return html`<p class="empty" data-testid="no-pending">No approval is waiting.</p>`;
  return html`<table class="approvals" data-testid="pending">
<thead><tr><th>Caller</th><th>Action</th><th>Destination</th><th>Rule</th><th>Reason</th><th>Signals</th><th>Age</th><th>Expires in</th></tr></thead>
<tbody>${pending.map((a) => html`<tr data-approval="${a.id}">
  <td><a href="/console/approvals/${urlPart(a.id)}">${a.caller}</a></td>
  <td><code>${a.action ?? a.resource}</code></td>
  <td>${a.destination}</td>
  <td>${a.rule}</td>
  <td>${a.reason ?? ""}</td>
  <td>${signalsList(a.signals)}</td>
  <td>${duration(now - a.requestedAt)}</td>
  <td>${duration(a.expiresAt - now)}</td>
</tr>`)}</tbody>
</table>`;
}

function decidedTable(decided: readonly ApprovalRequest[]): Html {
  if (decided.length === 0) return html`<p class="empty">Nothing decided yet.</p>`;
  return html`<table class="approvals" data-testid="decided">
<thead><tr><th>Caller</th><th>Action</th><th>Rule</th><th>Status</th><th>By</th><th>When</th><th>Comment</th></tr></thead>
<tbody>${decided.map((a) => html`<tr data-approval="${a.id}">
  <td><a href="/console/approvals/${urlPart(a.id)}">${a.caller}</a></td>
  <td><code>${a.action ?? a.resource}</code></td>
  <td>${a.rule}</td>
  <td><span class="status ${a.status}">${a.status}</span></td>
  <td>${a.decidedBy}</td>
  <td>${a.decidedAt === 0 ? "" : time(a.decidedAt)}</td>
  <td>${a.comment}</td>
</tr>`)}</tbody>
</table>`;
}

export function approvalsPage(viewer: Viewer, all: readonly ApprovalRequest[], now: number, notice?: Notice): Html {
  const pending = all.filter((a) => a.status === "pending");
  const decided = all.filter((a) => a.status !== "pending").sort((a, b) => b.decidedAt - a.decidedAt).slice(0, 50);
  return layout("Approvals", html`<h1>Pending approvals</h1>
<div id="pending" hx-get="/console/approvals/pending" hx-trigger="every 2s" hx-swap="innerHTML">${pendingTable(pending, now)}</div>
<h2>Recently decided</h2>
${decidedTable(decided)}`, { viewer, tab: "approvals", notice });
}

export function approvalPage(viewer: Viewer, a: ApprovalRequest, now: number, notice?: Notice): Html {
  const decide = a.status === "pending" && canDecide(viewer);
  return layout(`Approval ${a.id}`, html`<h1>Approval <code>${a.id}</code> <span class="status ${a.status}">${a.status}</span></h1>
<dl class="facts" data-testid="approval">
  <dt>Caller</dt><dd>${a.caller}</dd>
  <dt>Action</dt><dd><code>${a.action ?? ""}</code></dd>
  <dt>Destination</dt><dd>${a.destination}</dd>
  <dt>Resource</dt><dd><code>${a.resource}</code></dd>
  <dt>Rule</dt><dd>${a.rule}</dd>
  <dt>Reason</dt><dd>${a.reason ?? ""}</dd>
  <dt>Signals when asked</dt><dd>${signalsList(a.signals)}</dd>
  <dt>Credential owner</dt><dd>${a.credentialOwner === "" ? html`<span class="muted">unknown</span>` : a.credentialOwner}</dd>
  <dt>Approvers</dt><dd>${a.approvers.length === 0 ? "any approver" : a.approvers.join(", ")}</dd>
  <dt>Grant</dt><dd>${a.grantUses} use${a.grantUses === 1 ? "" : "s"} within ${duration(a.grantTtlSeconds * 1000)}</dd>
  <dt>Asked</dt><dd>${time(a.requestedAt)} (${duration(now - a.requestedAt)} ago)</dd>
  ${a.status === "pending"
    ? html`<dt>Expires</dt><dd>${time(a.expiresAt)} (in ${duration(a.expiresAt - now)})</dd>`
    : html`<dt>Decided</dt><dd>${a.decidedBy === "" ? "expired" : html`by ${a.decidedBy}, ${time(a.decidedAt)}`}</dd><dt>Comment</dt><dd>${a.comment}</dd>`}
</dl>
${decide ? html`<form class="decide" method="post" action="/console/approvals/${urlPart(a.id)}/decide">
  <input type="hidden" name="_csrf" value="${viewer.csrf}">
  <label>Comment (kept with the decision) <textarea name="comment" maxlength="1024" rows="2"></textarea></label>
  <button type="submit" name="decision" value="approve" class="approve">Approve</button>
  <button type="submit" name="decision" value="deny" class="deny">Deny</button>
</form>` : a.status === "pending" ? html`<p class="muted">Your token lacks the scope approvals:decide: you can read this request, not decide it.</p>` : ""}
<p><a href="/console/approvals">← all approvals</a></p>`, { viewer, tab: "approvals", notice });
}

// ---- decisions ----

export interface DecisionFilter { outcome: string; caller: string; destination: string; rule: string }

export function matchesFilter(line: DecisionLine, filter: DecisionFilter): boolean {
  return (filter.outcome === "" || line.outcome === filter.outcome)
    && (filter.caller === "" || line.caller.includes(filter.caller))
    && (filter.destination === "" || line.destination.includes(filter.destination))
    && (filter.rule === "" || line.rule.includes(filter.rule));
}

function fieldValue(value: unknown): string {
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** One decision line, expandable to every field it carries (fingerprints only: the line holds no secret). */
export function decisionItem(line: DecisionLine): Html {
  const action = line.tool !== "" ? `tools/call ${line.tool}` : `${line.method} ${line.path}`;
  return html`<li class="decision ${line.outcome}" data-testid="decision"><details>
<summary><span class="outcome">${line.outcome}</span> <span class="caller">${line.caller === "" ? "(no identity)" : line.caller}</span> → <span class="dest">${line.destination}</span> <code>${action}</code> <span class="rule">${line.rule}</span></summary>
<dl class="facts">${Object.entries(line).map(([k, v]) => html`<dt>${k}</dt><dd>${fieldValue(v)}</dd>`)}</dl>
</details></li>`;
}

export function decisionsPage(viewer: Viewer, recent: readonly DecisionLine[], filter: DecisionFilter): Html {
  const query = new URLSearchParams(Object.entries(filter).filter(([, v]) => v !== "")).toString();
  const shown = recent.filter((l) => matchesFilter(l, filter)).reverse();
  return layout("Live decisions", html`<h1>Live decisions <span class="muted">(this replica)</span></h1>
<form class="filters" method="get" action="/console/decisions">
  <label>Outcome <select name="outcome">${["", "allow", "deny", "step_up", "delay", "revoke"].map((o) => html`<option value="${o}"${o === filter.outcome ? html` selected` : ""}>${o === "" ? "any" : o}</option>`)}</select></label>
  <label>Caller <input name="caller" value="${filter.caller}"></label>
  <label>Destination <input name="destination" value="${filter.destination}"></label>
  <label>Rule <input name="rule" value="${filter.rule}"></label>
  <button type="submit">Filter</button>
</form>
<div hx-ext="sse" sse-connect="/console/decisions/stream${query === "" ? "" : `?${query}`}">
<ul id="feed" class="feed" sse-swap="decision" hx-swap="afterbegin" data-keep="200">${shown.map(decisionItem)}</ul>
</div>`, { viewer, tab: "decisions" });
}

// ---- identities ----

export function identityPage(viewer: Viewer, query: string, signals: readonly Signal[] | undefined, now: number, notice?: Notice): Html {
  const writes = viewer.scopes.includes("signals:write");
  const reinstates = viewer.scopes.includes("signals:reinstate");
  const revoked = signals?.some((s) => s.kind === "revocation" && s.data.revoked) ?? false;
  return layout("Identities", html`<h1>An identity's state</h1>
<form class="search" method="get" action="/console/identity">
  <label>SPIFFE ID or credential fingerprint <input name="q" value="${query}" placeholder="spiffe://example.org/ns/ci/sa/deployer or sha256:…" size="60"></label>
  <button type="submit">Look up</button>
</form>
${signals === undefined ? "" : html`<h2><code>${query}</code>${revoked ? html` <span class="status denied">revoked</span>` : ""}</h2>
${signals.length === 0 ? html`<p class="empty">No signal is held for this subject.</p>` : html`<table class="signals" data-testid="signals">
<thead><tr><th>Kind</th><th>Name</th><th>Value</th><th>Source</th><th>Age</th><th>Expires</th></tr></thead>
<tbody>${signals.map((s) => html`<tr><td>${s.kind}</td><td>${s.name}</td><td><code>${JSON.stringify(s.data)}</code></td><td>${s.source}</td><td>${duration(now - s.observedAt)}</td><td>${s.expiresAt === undefined ? "never" : `in ${duration(s.expiresAt - now)}`}</td></tr>`)}</tbody>
</table>`}
${writes && !revoked ? html`<form class="revoke" method="post" action="/console/identity/revoke">
  <input type="hidden" name="_csrf" value="${viewer.csrf}"><input type="hidden" name="subject" value="${query}">
  <label>Reason (audited) <input name="reason" required maxlength="1024" size="50"></label>
  <button type="submit" class="deny">Revoke</button>
</form>` : ""}
${reinstates && revoked ? html`<form class="reinstate" method="post" action="/console/identity/reinstate">
  <input type="hidden" name="_csrf" value="${viewer.csrf}"><input type="hidden" name="subject" value="${query}">
  <label>Reason (audited) <input name="reason" required maxlength="1024" size="50"></label>
  <button type="submit" class="approve">Reinstate</button>
</form>` : ""}`}`, { viewer, tab: "identity", notice });
}

// ---- policy ----

/** Would-be outcomes of shadow rules seen by this replica: rule id → outcome → count. */
export type ShadowTally = ReadonlyMap<string, ReadonlyMap<string, number>>;

function wouldBe(tally: ReadonlyMap<string, number> | undefined): Html {
  if (tally === undefined || tally.size === 0) return html`<span class="muted">not triggered yet</span>`;
  return html`${[...tally].map(([outcome, n]) => html`<span class="status ${outcome}">${outcome} ×${n}</span> `)}`;
}

export function policyPage(viewer: Viewer, version: string, rules: readonly RuleSummary[], shadow: ShadowTally): Html {
  const shadows = rules.filter((r) => r.shadow);
  return layout("Policy", html`<h1>Policy <code>${version}</code> <span class="muted">${rules.length} rules${shadows.length > 0 ? `, ${String(shadows.length)} in shadow` : ""}</span></h1>
${shadows.length === 0 ? "" : html`<h2>Shadow rules (evaluated, logged, never enforced)</h2>
<table class="rules" data-testid="shadow-rules">
<thead><tr><th>Rule</th><th>Would be</th><th>Would have decided (this replica, since start)</th></tr></thead>
<tbody>${shadows.map((r) => html`<tr><td>${r.id}</td><td><span class="status ${r.outcome}">${r.outcome}</span></td><td>${wouldBe(shadow.get(r.id))}</td></tr>`)}</tbody>
</table>
<h2>All rules</h2>`}
<table class="rules" data-testid="rules">
<thead><tr><th>Rule</th><th>Outcome</th><th>Destinations</th><th>Matches</th><th>Condition</th><th>Approvers</th><th>Controls</th><th>Description</th></tr></thead>
<tbody>${rules.map((r) => html`<tr><td>${r.id}${r.shadow ? html` <span class="status shadow">shadow</span>` : ""}</td><td><span class="status ${r.outcome}">${r.outcome}</span>${r.privileged ? html` <span class="muted">privileged</span>` : ""}</td><td>${r.destinations.join(", ")}</td><td><code>${r.matches}</code></td><td>${r.conditional ? "when …" : ""}</td><td>${r.approvers.join(", ")}</td><td>${r.controls.join(", ")}</td><td>${r.description}</td></tr>`)}</tbody>
</table>`, { viewer, tab: "policy" });
}
