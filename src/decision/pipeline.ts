// The decision pipeline (design §2): AccessRequest → caller identity → signals → policy →
// Decision, plus the effects a decision starts (approval requests, revocations). Everything here
// is synchronous and touches memory only; I/O leaves through Effects and the async logger.

import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { ApprovalBook } from "../approvals/book.js";
import { approvalScope, grantNameFor } from "../approvals/book.js";
import { HEADER_RELEASE_DIGEST } from "../config/defaults.js";
import type { Caller, IdentityProblem } from "../identity/caller.js";
import type { CompiledPolicy, PolicyInput, PolicyResult, RequestView, SignalsView, SourceView } from "../policy/types.js";
import type { SignalStore } from "../signals/store.js";
import type { Metrics } from "../telemetry/metrics.js";
import type { DecisionLog } from "../telemetry/decision-log.js";
import type { DestinationConfig } from "../config/index.js";
import { createDestinationResolver } from "./destination.js";
import type { Effects } from "./effects.js";
import { pathProblem } from "./path.js";
import { OUTCOME_SEVERITY, type AccessRequest, type Decision, type Outcome } from "../model/index.js";

export interface DeciderDeps {
  /** The active policy (hot reload swaps what this returns). */
  policy: () => CompiledPolicy;
  resolveCaller: (input: { principal: string; certificate: string; headers: Record<string, string> }) => Caller;
  store: SignalStore;
  approvals: ApprovalBook;
  effects: Effects;
  metrics?: Metrics;
  /** Decision log: one line per Check (createDecisionLog). */
  decisionLog?: DecisionLog;
  now?: () => number;
  newId?: () => string;
  /** Where the destination comes from (config.destination); default: the sidecar's own workload. */
  destination?: DestinationConfig;
}

export type Decide = (request: AccessRequest) => Decision;

/** The rule a decision names when identity problems denied it (identity.onProblem: deny). */
export const IDENTITY_RULE = "vigil/identity";

const EMPTY_RECORD: Record<string, string> = Object.freeze({});

/**
 * Builds the policy's view of the request: host without port, path without query, gRPC and MCP
 * names. `destination` is what createDestinationResolver answered ("" when it found none): the
 * host is shown to policies, never used to pick the destination.
 */
export function requestView(req: AccessRequest, destination: string): RequestView {
  const q = req.path.indexOf("?");
  const pathOnly = q === -1 ? req.path : req.path.slice(0, q);
  const rawHost = req.host !== "" ? req.host : (req.headers[":authority"] ?? "");
  const host = stripPort(rawHost).toLowerCase();
  let grpcService = "";
  let grpcMethod = "";
  const contentType = req.headers["content-type"] ?? "";
  if (contentType.startsWith("application/grpc")) {
    const slash = pathOnly.lastIndexOf("/");
    if (slash > 0) {
      grpcService = pathOnly.slice(1, slash);
      grpcMethod = pathOnly.slice(slash + 1);
    }
  }
  let mcpMethod = "";
  let mcpTool = "";
  // JSON allows whitespace before the object, and so do MCP servers: skipping it here keeps a
  // tools/call from hiding from the policy behind a leading space or newline.
  if (req.body !== "" && req.body.charCodeAt(jsonStart(req.body)) === 123 /* { */) {
    const rpc = parseJsonRpc(req.body);
    mcpMethod = rpc.method;
    mcpTool = rpc.tool;
  }
  return {
    method: req.method,
    path: req.path,
    path_only: pathOnly,
    host,
    scheme: req.scheme,
    headers: req.headers,
    grpc_service: grpcService,
    grpc_method: grpcMethod,
    mcp_method: mcpMethod,
    mcp_tool: mcpTool,
    source_ip: req.source.address,
    destination,
  };
}

/**
 * Why a JSON-RPC batch body is refused, or undefined for any other body. A batch (`[{…}, {…}]`)
 * carries several calls in one request while the policy sees one action: a rule that denies one
 * MCP tool would not see it inside a batch. MCP dropped batching (2025-06-18), so a batch holding
 * any JSON-RPC call is denied rather than judged as a whole; only its first character is looked at
 * for every other body.
 */
export function jsonRpcBatchProblem(body: string): string | undefined {
  if (body === "" || body.charCodeAt(jsonStart(body)) !== 91 /* [ */) return undefined;
  let items: unknown;
  try {
    items = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!Array.isArray(items)) return undefined;
  const calls = items.some((item) => typeof item === "object" && item !== null && typeof (item as { method?: unknown }).method === "string");
  return calls ? "JSON-RPC batch requests are refused: each call must be sent, and judged, on its own" : undefined;
}

/** Index of the first character after JSON whitespace (space, tab, LF, CR). */
function jsonStart(body: string): number {
  let i = 0;
  for (;;) {
    const c = body.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 10 && c !== 13) return i;
    i++;
  }
}

function stripPort(host: string): string {
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.lastIndexOf(":");
  return colon === -1 ? host : host.slice(0, colon);
}

/** JSON-RPC method and, for tools/call, the MCP tool name. Unparseable bodies yield "". */
function parseJsonRpc(body: string): { method: string; tool: string } {
  try {
    const msg: unknown = JSON.parse(body);
    if (typeof msg !== "object" || msg === null) return { method: "", tool: "" };
    const { method, params } = msg as { method?: unknown; params?: unknown };
    const m = typeof method === "string" ? method : "";
    let tool = "";
    if (m === "tools/call" && typeof params === "object" && params !== null) {
      const name = (params as { name?: unknown }).name;
      if (typeof name === "string") tool = name;
    }
    return { method: m, tool };
  } catch {
    return { method: "", tool: "" };
  }
}

const NO_STRINGS: readonly string[] = Object.freeze([]);

function sourceView(caller: Caller): SourceView {
  const credentials = caller.credentials;
  const first = credentials[0];
  return {
    spiffe_id: caller.spiffeId,
    trust_domain: caller.trustDomain,
    path: caller.path,
    identity_source: caller.source,
    credential_fingerprint: first?.fingerprint ?? "",
    credential_scheme: first?.scheme ?? "",
    // The common cases (none, one) without a map() closure.
    credential_fingerprints: first === undefined ? NO_STRINGS as string[]
      : credentials.length === 1 ? [first.fingerprint] : credentials.map((c) => c.fingerprint),
    problems: caller.problems.length === 0 ? NO_STRINGS as string[] : caller.problems.map((p) => p.code),
  };
}

/**
 * How bad a credential state is, for "the worst state wins" (signals.credential). Terminal states
 * first; "unknown" (no signal: a decoy, a key nobody registered) is worse than "active", so a
 * policy that requires an active credential is not satisfied by one good key beside an unknown one.
 *   compromised > leaked > revoked > expired > unknown > active > none
 */
export function credentialStateRank(state: string): number {
  switch (state) {
    case "none": return 0;
    case "active": return 1;
    case "expired": return 3;
    case "revoked": return 4;
    case "leaked": return 5;
    case "compromised": return 6;
    default: return 2; // "unknown", and any state this build does not know
  }
}

/** Credential states that single a credential out as the one to revoke. */
const SUSPECT_STATES: ReadonlySet<string> = new Set(["compromised", "leaked", "revoked", "expired"]);

/** The signals step's result: the policy's view, and which credentials stand out as bad. */
export interface SignalsRead {
  view: SignalsView;
  /**
   * Fingerprints of the presented credentials that are compromised, leaked, revoked, expired or
   * past their rotate-by: the ones a `revoke: [credential]` targets. Empty when none stands out.
   */
  suspects: string[];
}

/** Reads the signals a decision needs (O(1) map lookups per credential) and flattens them for policies. */
export function readSignals(
  store: SignalStore, effects: Pick<Effects, "pendingRevoked">, caller: Caller, headers: Record<string, string>, now: number,
): SignalsRead {
  const id = caller.spiffeId;
  const risk = id !== "" ? store.get(id, "risk", "", now) : undefined;
  const posture = id !== "" ? store.get(id, "posture", "", now) : undefined;
  const behavior = id !== "" ? store.get(id, "behavior", "", now) : undefined;
  const revokedId = id !== "" && (store.get(id, "revocation", "", now)?.data.revoked === true || effects.pendingRevoked(id));
  // Every presented credential counts: the worst state wins, any overdue or revoked one counts.
  let worst = "none";
  let owner = "";
  let overdue = false;
  let revokedCred = false;
  let suspects = NO_STRINGS as string[];
  const states: string[] = [];
  for (const c of caller.credentials) {
    const fp = c.fingerprint;
    const credential = store.get(fp, "credential", "", now);
    const state = credential?.data.state ?? "unknown";
    states.push(state);
    if (credentialStateRank(state) > credentialStateRank(worst)) {
      worst = state;
      owner = credential?.data.owner ?? "";
    }
    const rotateBy = credential?.data.rotateBy;
    const late = rotateBy !== undefined && rotateBy <= now && (credential?.data.rotatedAt ?? 0) < rotateBy;
    const revoked = store.get(fp, "revocation", "", now)?.data.revoked === true || effects.pendingRevoked(fp);
    overdue ||= late;
    revokedCred ||= revoked;
    if (late || revoked || SUSPECT_STATES.has(state)) {
      if (suspects.length === 0) suspects = [];
      suspects.push(fp);
    }
  }
  const digest = headers[HEADER_RELEASE_DIGEST] ?? "";
  const attestation = digest !== "" ? store.get(digest, "attestation", "", now) : undefined;
  const view: SignalsView = {
    fresh: store.freshness(now).fresh,
    risk: risk?.data.level ?? "none",
    risk_reason: risk?.data.reason ?? "",
    risk_age_seconds: risk === undefined ? -1 : Math.max(0, Math.floor((now - risk.observedAt) / 1000)),
    posture: posture?.data.status ?? "unknown",
    posture_attributes: posture?.data.attributes ?? EMPTY_RECORD,
    credential: worst,
    credential_states: states,
    credential_overdue: overdue,
    credential_owner: owner,
    revoked: revokedId || revokedCred,
    anomalies: behavior?.data.anomalies ?? [],
    attested: attestation !== undefined,
    attestation_signer: attestation?.data.signer ?? "",
  };
  return { view, suspects };
}

/** The policy's view of the signals alone (see {@link readSignals}). */
export function signalsView(
  store: SignalStore, effects: Pick<Effects, "pendingRevoked">, caller: Caller, headers: Record<string, string>, now: number,
): SignalsView {
  return readSignals(store, effects, caller, headers, now).view;
}

/** What the request does, as an approval scope names it. */
function resourceOf(view: RequestView): string {
  if (view.mcp_tool !== "") return `mcp:${view.mcp_tool}`;
  if (view.grpc_service !== "") return `grpc:${view.grpc_service}/${view.grpc_method}`;
  return `${view.method} ${view.path_only}`;
}

export function createDecider(deps: DeciderDeps): Decide {
  const now = deps.now ?? Date.now;
  const newId = deps.newId ?? randomUUID;
  const { store, effects, approvals, metrics, decisionLog } = deps;
  const resolveDestination = createDestinationResolver(deps.destination);

  return function decide(req: AccessRequest): Decision {
    const started = performance.now();
    const id = newId();
    const at = now();
    let decision: Decision;
    let view: RequestView | undefined;
    let problems: readonly IdentityProblem[] = [];
    if (req.malformed.length > 0) {
      decision = baseDecision(id, "deny", "", `malformed request: ${req.malformed.join("; ")}`);
      metrics?.checkErrors.labels("malformed").inc();
    } else {
      const caller = deps.resolveCaller({ principal: req.source.principal, certificate: req.source.certificate, headers: req.headers });
      const destination = resolveDestination(req);
      view = requestView(req, destination.name ?? "");
      const signals = readSignals(store, effects, caller, req.headers, at);
      const input: PolicyInput = {
        request: view,
        source: sourceView(caller),
        context: req.contextExtensions,
        signals: signals.view,
        now: at,
      };
      let result = refuseIdentity(deps.policy().evaluate(input), caller);
      // No destination, a path not in normal form, or a JSON-RPC batch: a deny that takes part in most-restrictive-
      // wins like any rule's (guards still see the request; a revoke stays a revoke).
      const refusal = destination.problem ?? pathProblem(view.path_only) ?? jsonRpcBatchProblem(req.body);
      if (refusal !== undefined && (OUTCOME_SEVERITY[result.outcome] < OUTCOME_SEVERITY.deny || result.rule === "")) {
        result = { outcome: "deny", rule: "", reason: refusal, revoke: [], privileged: result.privileged };
      }
      // A revocation could not be queued (backlog full): its subject may be any identified caller.
      if (effects.overflowed && OUTCOME_SEVERITY[result.outcome] < OUTCOME_SEVERITY.deny
        && (caller.spiffeId !== "" || caller.credentials.length > 0)) {
        result = { outcome: "deny", rule: "", reason: "revocation backlog full", revoke: [], privileged: result.privileged };
      }
      decision = finish(id, result, caller, view, input, signals.suspects, at);
      problems = caller.problems;
    }
    decision.durationNs = Math.round((performance.now() - started) * 1e6);
    metrics?.decisions.inc(decision.outcome);
    metrics?.decisionDuration.observe(decision.durationNs / 1e9);
    decisionLog?.({
      decision_id: decision.id,
      caller: decision.caller,
      credential: decision.credentialFingerprint,
      method: req.method,
      host: view?.host ?? req.host,
      destination: view?.destination ?? "",
      path: view?.path_only ?? "",
      tool: view?.mcp_tool ?? "",
      context: req.contextExtensions,
      outcome: decision.outcome,
      rule: decision.rule,
      reason: decision.reason,
      identity_problems: problems.length === 0 ? NO_STRINGS : problems.map((p) => p.code),
      latency_us: Math.round(decision.durationNs / 1000),
    });
    return decision;
  };

  function finish(
    id: string, result: PolicyResult, caller: Caller, view: RequestView, input: PolicyInput, suspects: readonly string[], at: number,
  ): Decision {
    const decision = baseDecision(id, result.outcome, result.rule, result.reason);
    decision.caller = caller.spiffeId;
    decision.trustDomain = caller.trustDomain;
    // Usually one; several are comma-joined (a fingerprint holds no comma).
    const fingerprints = input.source.credential_fingerprints;
    decision.credentialFingerprint = fingerprints.length === 1 ? fingerprints[0] ?? "" : fingerprints.join(",");
    decision.headersToRemove = caller.headersToRemove;
    if (result.outcome === "delay") decision.retryAfterSeconds = result.retryAfterSeconds ?? 60;
    if (result.outcome === "step_up") stepUp(decision, result, caller, view, input, at);
    const targets = result.outcome === "revoke" && result.revoke.length === 0
      ? [caller.credentials.length > 0 ? "credential" as const : "identity" as const]
      : result.revoke;
    for (const target of targets) {
      // A credential revocation targets the presented credentials that stand out as bad (a leaked
      // key behind a decoy, not the decoy); when none does (the rule fired on risk, say), every
      // presented credential, since the caller showed them all.
      const subjects = target === "identity"
        ? (decision.caller === "" ? [] : [decision.caller])
        : suspects.length > 0 ? suspects : input.source.credential_fingerprints;
      for (const subject of subjects) {
        effects.revoke({ subject, target, reason: result.reason, decisionId: id, caller: decision.caller, rule: result.rule, at });
      }
    }
    return decision;
  }

  function stepUp(decision: Decision, result: PolicyResult, caller: Caller, view: RequestView, input: PolicyInput, at: number): void {
    if (caller.spiffeId === "") return; // nobody to grant anything to: stays step_up without approval
    const resource = resourceOf(view);
    const scope = approvalScope(caller.spiffeId, result.rule, view.destination, resource);
    if (store.useGrant(caller.spiffeId, grantNameFor(scope), at)) {
      decision.outcome = "allow";
      decision.reason = "allowed by an approved just-in-time grant";
      return;
    }
    const params = result.stepUp ?? { approvers: [], grantTtlSeconds: 900, grantUses: 1 };
    const approval = approvals.open({
      caller: caller.spiffeId,
      credentialOwner: input.signals.credential_owner,
      rule: result.rule,
      destination: view.destination,
      resource,
      approvers: params.approvers,
      grantTtlSeconds: params.grantTtlSeconds,
      grantUses: params.grantUses,
    });
    if (approval !== undefined) decision.approvalId = approval.id;
  }
}

/**
 * Identity problems deny by default (Caller.refused), whatever the policy says, so removing a
 * guard rule cannot let an invalid principal or an ambiguous credential through. A rule's deny or
 * revoke stands (with its effects: a leaked key behind a decoy is still revoked); allow, delay,
 * step_up and "no rule matched" become a denial naming the problems.
 */
function refuseIdentity(result: PolicyResult, caller: Caller): PolicyResult {
  if (!caller.refused) return result;
  if (result.outcome === "revoke" || (result.outcome === "deny" && result.rule !== "")) return result;
  return {
    outcome: "deny",
    rule: IDENTITY_RULE,
    reason: `identity refused: ${caller.problems.map((p) => p.message).join("; ")}`,
    revoke: result.revoke,
    privileged: result.privileged,
  };
}

function baseDecision(id: string, outcome: Outcome, rule: string, reason: string): Decision {
  return {
    id, outcome, rule, reason, caller: "", trustDomain: "", credentialFingerprint: "", headersToRemove: [], durationNs: 0,
  };
}
