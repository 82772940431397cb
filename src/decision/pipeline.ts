// The decision pipeline (design §2): one Check as a sequence of phases, each a function of its
// own with its own table tests (test/decision/):
//
//   (decode, in transport) → identify → describe the request → read signals → evaluate the policy
//   → refusals → effects (step-up, grants, revocations) → (encode, in transport) → record
//
// Everything here is synchronous and touches memory only; I/O leaves through Effects and the
// async decision log. One exception: in cluster mode a caller holding a just-in-time grant waits
// for the bus to decide its use (Judgement.settled), so a one-use grant is one use mesh-wide.
// `judge` runs the phases up to the answer; `record` counts and logs it, and is called once the
// answer went on the wire (or, in process, right after judging: createDecider).

import { performance } from "node:perf_hooks";
import type { ApprovalBook } from "../approvals/book.js";
import type { BehaviorMonitor } from "../behavior/index.js";
import type { DestinationConfig } from "../config/index.js";
import type { Caller, CallerResolver } from "../identity/index.js";
import { OUTCOME_SEVERITY, type AccessRequest, type Decision, type Outcome, type McpView, type PolicyInput, type RequestView, type SignalsView } from "../model/index.js";
import { NO_ENTITIES, type EntityBook } from "../policy/entities.js";
import type { CompiledPolicy, PolicyResult } from "../policy/types.js";
import type { SignalStore } from "../signals/store.js";
import { createUuidV4 } from "../util/uuid.js";
import type { DecisionLog } from "../telemetry/decision-log.js";
import type { Metrics } from "../telemetry/metrics.js";
import { applyEffects } from "./apply-effects.js";
import { createDestinationResolver, type DestinationResult } from "./destination.js";
import type { Effects } from "./effects.js";
import { checkEntities, evaluationEntities, UNREAD_ENTITIES } from "./entities.js";
import { identify } from "./identify.js";
import { DEFAULT_JSONRPC_LIMITS, isMcpRoute, readJsonRpc, type JsonRpcLimits } from "./jsonrpc.js";
import { pathProblem } from "./path.js";
import { recordDecision } from "./record.js";
import { applyRefusals } from "./refusals.js";
import { NO_MCP, pathOf, requestView } from "./request-view.js";
import { readSignals } from "./signals.js";

/** The rule an allow names when the sidecar-wide dry run let a refusal through. */
export const DRY_RUN_RULE = "vigil/dry-run";

export interface DeciderDeps {
  /** The active policy (hot reload swaps what this returns). */
  policy: () => CompiledPolicy;
  /**
   * Sidecar-wide dry run (config dryRun, --dry-run), for a first rollout: every judged request is
   * allowed, with no step-up opened and nothing revoked; the decision says what would have happened.
   */
  dryRun?: boolean;
  resolveCaller: CallerResolver;
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
  /** The active entities file (--entities; hot reload swaps what this returns); default none. */
  entities?: () => EntityBook;
  /** MCP routes and JSON-RPC bounds (config.mcp); default: no MCP paths, batches of 32, 256 KiB. */
  jsonRpc?: JsonRpcLimits;
  /** Behaviour baselines: checked while judging (O(1)), fed in the record phase. */
  behavior?: BehaviorMonitor;
}

/**
 * One Check judged: the decision and what the phases saw on the way, for the record phase and
 * for `vigil check`'s "why". Everything but `request` and `decision` is absent when the request
 * was malformed (no phase past decoding ran).
 */
export interface Judgement {
  request: AccessRequest;
  decision: Decision;
  caller?: Caller;
  view?: RequestView;
  destination?: DestinationResult;
  /** The signals as the policy saw them, before this decision's own effects. */
  signals?: SignalsView;
  /** The policy that judged (its version and rule count). */
  policy?: Pick<CompiledPolicy, "version" | "ruleCount">;
  /** What the policy was asked (for tools that explain a decision: vigil test's coverage). */
  input?: PolicyInput;
  /** When the phases judged (epoch ms). */
  at?: number;
  /** The behaviour monitor's ticket for this request's check (BehaviorMonitor.observeChecked). */
  behaviorTicket?: number;
  /** Whether the record phase feeds this request to the behaviour baselines. */
  observe?: boolean;
  /**
   * Present while the decision still waits on the bus (a grant use being decided by
   * compare-and-set, bounded by store.grantTimeoutMs): encode only once it resolves. Never rejects.
   */
  settled?: Promise<void>;
}

export interface Pipeline {
  /** Runs the phases up to the answer; counts and logs nothing. */
  readonly judge: (request: AccessRequest) => Judgement;
  /** Counts and logs a judged Check (call it once, after the answer was encoded). */
  readonly record: (judgement: Judgement) => void;
}

export type Decide = (request: AccessRequest) => Decision;

export function createPipeline(deps: DeciderDeps): Pipeline {
  const now = deps.now ?? Date.now;
  const newId = deps.newId ?? createUuidV4();
  const { store, effects, approvals } = deps;
  const effectsDeps = { store, approvals, effects };
  const sinks = { metrics: deps.metrics, decisionLog: deps.decisionLog };
  const resolveDestination = createDestinationResolver(deps.destination);
  const entities = deps.entities ?? ((): EntityBook => NO_ENTITIES);
  const rpcLimits = deps.jsonRpc ?? DEFAULT_JSONRPC_LIMITS;
  const behavior = deps.behavior?.enabled === true ? deps.behavior : undefined;

  function judge(request: AccessRequest): Judgement {
    const started = performance.now();
    const id = newId();
    let judgement: Judgement;
    if (request.malformed.length > 0) {
      judgement = { request, decision: newDecision(id, "deny", "", `malformed request: ${request.malformed.join("; ")}`) };
    } else {
      const at = now();
      const { caller, source } = identify(deps.resolveCaller, request);
      const evaluation = request.evaluation;
      // An AuthZEN evaluation is judged under the PDP's configured destination, never the PEP's pick.
      const destination = evaluation === undefined ? resolveDestination(request) : { name: evaluation.destination };
      const pathOnly = pathOf(request.path);
      // Checked once, over the decoder's flat string (see pathProblem): a refusal for the refusals
      // phase, and a path found normal spares the policy its own (weaker) check.
      // The same pass starts behaviour's action key (seedPath): the path is read once, not twice.
      const pathLanes = behavior !== undefined && evaluation === undefined
        ? behavior.seedPath(destination.name ?? "", request.method, request.path) : undefined;
      const pathRefusal = pathProblem(request.path, pathOnly.length, pathLanes);
      // The body is read once: one MCP call, a batch judged call by call, or a refusal reason.
      const rpc = evaluation === undefined
        ? readJsonRpc(request.body, isMcpRoute(request.contextExtensions, pathOnly, rpcLimits), rpcLimits)
        : undefined;
      const signals = readSignals(store, effects, caller, request.headers, at);
      const policy = deps.policy();
      const inputOf = (call: McpView | undefined): PolicyInput => {
        const view = requestView(request, destination.name ?? "", call, pathOnly);
        const { subject, action, resource } = policy.readsEntities === false ? UNREAD_ENTITIES
          : evaluation === undefined ? checkEntities(caller.spiffeId, view, entities()) : evaluationEntities(evaluation, entities());
        return {
          request: view, source, context: request.contextExtensions, signals: signals.view, subject, action, resource, now: at,
          pathNormal: pathRefusal === undefined,
        };
      };
      // Usually one call (no JSON-RPC body, or one call): no arrays on the way.
      const inputs: PolicyInput | PolicyInput[] = rpc?.kind === "batch" ? rpc.calls.map(inputOf)
        : inputOf(rpc === undefined ? undefined : rpc.kind === "refused" ? NO_MCP : rpc.call);
      let { result: evaluated, input } = evaluateAll(policy, inputs);
      let view = input.request;
      let behaviorTicket = 0;
      let observe = false;
      // An AuthZEN evaluation's subject is asserted by a PEP, not seen calling: it teaches no baseline.
      if (behavior !== undefined && evaluation === undefined && !behavior.ruleExcluded(evaluated.rule)) {
        // Behaviour (src/behavior): an action or source network this caller never used shows
        // at once. Rare, so the policy is asked again only then; an opted-out rule's requests
        // are neither flagged nor learned.
        observe = true;
        const live = behavior.checkRequest(caller.spiffeId, view, at, caller.hints);
        behaviorTicket = behavior.ticket;
        if (live.length > 0) {
          signals.view.anomalies = withLive(signals.view.anomalies, live);
          ({ result: evaluated, input } = evaluateAll(policy, inputs));
          view = input.request;
        }
      }
      const result = applyRefusals(evaluated, {
        caller, destinationProblem: destination.problem, pathProblem: pathRefusal, rpcProblem: rpc?.kind === "refused" ? rpc.problem : undefined,
        backlogFull: effects.overflowed,
      });
      const decision = decisionOf(id, result, caller);
      decision.policyVersion = policy.version;
      // The explanation of a refusal: every rule that matched (a second walk, for refusals only).
      if (result.outcome !== "allow" && policy.explain !== undefined) decision.matched = policy.explain(input);
      // Shadow rules: what the answer would have been had they been enforced (only when it differs).
      if (policy.hasShadow === true && policy.wouldBe !== undefined) {
        const would = policy.wouldBe(input, evaluated);
        if (would !== undefined) decision.shadow = { outcome: would.outcome, rule: would.rule };
      }
      if (deps.dryRun === true && decision.outcome !== "allow") {
        // Dry run: the answer is allow and no effect starts (no approval, no revocation); the
        // record says what would have happened.
        decision.wouldBe = { outcome: decision.outcome, rule: decision.rule, reason: decision.reason };
        decision.outcome = "allow";
        decision.rule = DRY_RUN_RULE;
        decision.reason = `dry run: would have been ${decision.wouldBe.outcome}`;
        delete decision.retryAfterSeconds;
        judgement = { request, decision, caller, view, destination, signals: signals.view, policy, input, at, behaviorTicket, observe };
        judgement.decision.durationNs = Math.round((performance.now() - started) * 1e6);
        return judgement;
      }
      const settling = applyEffects(effectsDeps, decision, { result, caller, view, signals, at, revocations: evaluation === undefined });
      judgement = { request, decision, caller, view, destination, signals: signals.view, policy, input, at, behaviorTicket, observe };
      if (settling !== undefined) {
        judgement.settled = settling.then(() => {
          decision.durationNs = Math.round((performance.now() - started) * 1e6);
        });
        return judgement;
      }
    }
    judgement.decision.durationNs = Math.round((performance.now() - started) * 1e6);
    return judgement;
  }

  return {
    judge,
    record: (judgement) => {
      recordDecision(sinks, judgement);
      const { caller, view, at } = judgement;
      if (behavior !== undefined && judgement.observe === true && caller !== undefined && view !== undefined && at !== undefined) {
        behavior.observeChecked(caller.spiffeId, view, at, judgement.decision.rule, judgement.behaviorTicket ?? -1);
      }
    },
  };
}

/**
 * Judges and records at once: for in-process callers that put nothing on a wire (benches, tests,
 * `vigil check`). Their stores are embedded, which decide grant uses at once; a decision still
 * waiting on the bus (cluster mode) is a failure here, never an answer given early.
 */
export function createDecider(deps: DeciderDeps): Decide {
  const pipeline = createPipeline(deps);
  return (request) => {
    const judgement = pipeline.judge(request);
    if (judgement.settled !== undefined) throw new Error("createDecider cannot wait for the bus: use createPipeline and await Judgement.settled");
    pipeline.record(judgement);
    return judgement.decision;
  };
}

/**
 * Evaluates every input (one per JSON-RPC call of a batch; usually one) and keeps the most
 * restrictive result, the first of equals, with its input: a batch is allowed only if every call is.
 */
function evaluateAll(policy: CompiledPolicy, inputs: PolicyInput | readonly PolicyInput[]): { result: PolicyResult; input: PolicyInput } {
  if (!Array.isArray(inputs)) return { result: policy.evaluate(inputs as PolicyInput), input: inputs as PolicyInput };
  let input = inputs[0] as PolicyInput;
  let best = policy.evaluate(input);
  for (let i = 1; i < inputs.length; i++) {
    const candidate = inputs[i] as PolicyInput;
    const result = policy.evaluate(candidate);
    if (OUTCOME_SEVERITY[result.outcome] > OUTCOME_SEVERITY[best.outcome]) {
      best = result;
      input = candidate;
    }
  }
  return { result: best, input };
}

/** The anomalies the store holds for the caller and those this request shows itself, once each. */
function withLive(held: readonly string[], live: readonly string[]): string[] {
  const out = [...held];
  for (const anomaly of live) if (!out.includes(anomaly)) out.push(anomaly);
  return out;
}

/** The decision a policy result makes for this caller, before its effects. */
function decisionOf(id: string, result: PolicyResult, caller: Caller): Decision {
  const decision = newDecision(id, result.outcome, result.rule, result.reason);
  decision.caller = caller.spiffeId;
  decision.trustDomain = caller.trustDomain;
  // Usually one; several are comma-joined (a fingerprint holds no comma).
  const credentials = caller.credentials;
  decision.credentialFingerprint = credentials.length === 1 ? credentials[0]?.fingerprint ?? "" : credentials.map((c) => c.fingerprint).join(",");
  decision.headersToRemove = caller.headersToRemove;
  if (result.controls !== undefined && result.controls.length > 0) decision.controls = result.controls;
  if (result.outcome === "delay") decision.retryAfterSeconds = result.retryAfterSeconds ?? 60;
  return decision;
}

function newDecision(id: string, outcome: Outcome, rule: string, reason: string): Decision {
  return {
    id, outcome, rule, reason, caller: "", trustDomain: "", credentialFingerprint: "", headersToRemove: [], durationNs: 0,
  };
}
