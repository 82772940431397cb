// Validated documents to a CompiledPolicy. Everything that can be done once is done here: globs
// become matchers, CEL is parsed and type-checked, change windows are prepared, and rules are
// indexed by destination and HTTP method so a decision only walks the few rules that can apply.
//
// Evaluation collects the matching rules and the most restrictive outcome wins
// (revoke > deny > step_up > delay > allow). At the same outcome, a result that also starts
// revocations beats one that does not, a rule's own result beats a deny caused by a failing
// condition, and otherwise the rule loaded first (files by name, documents, rules in order)
// decides. Rules are walked by the most restrictive result they can give, so once a rule has
// matched, rules that cannot beat it are skipped. Nothing matched → deny. evaluate() never throws.

import { createHash } from "node:crypto";
import { OUTCOME_SEVERITY } from "../model/index.js";
import type { HeaderSelection, Outcome } from "../model/index.js";
import { ConditionCompiler, celActivation } from "./cel.js";
import type { CelActivation, Condition } from "./cel.js";
import { ChangeWindow } from "./change-window.js";
import { CidrSet } from "./cidr.js";
import type { PolicyIssue } from "./diagnostics.js";
import { lineOf, policyError } from "./diagnostics.js";
import type { PolicyDocument } from "./documents.js";
import { compileGlobs, hasWildcard, isNormalPath } from "./glob.js";
import type { StringMatcher } from "./glob.js";
import type { PolicyManifest, PolicyRuleSpec, RevocationTarget } from "./schema.js";
import { SourceMemo } from "./source-memo.js";
import type { CompiledPolicy, PolicyInput, PolicyResult, RuleSummary, StepUpParams } from "./types.js";

export interface CompileOptions {
  /**
   * Called when a rule's `when:` condition fails to evaluate (the rule then denies). Runs on the
   * decision path, synchronously; keep it cheap (log, count). Exceptions it throws are ignored.
   */
  onConditionError?: (rule: string, error: unknown) => void;
}

export const NOTHING_MATCHED_REASON = "no rule allows this request";
export const CONDITION_ERROR_REASON = "a policy condition could not be evaluated";
export const EVALUATION_ERROR_REASON = "policy evaluation failed";

const DEFAULT_REASONS: Readonly<Record<Outcome, string>> = {
  allow: "allowed by policy",
  deny: "denied by policy",
  step_up: "this action needs a fresh approval",
  delay: "not allowed right now; retry later",
  revoke: "access revoked",
};

/** What one decision computes at most once, and only when a rule needs it. */
class Evaluation {
  readonly input: PolicyInput;
  /** True when the destination is not in the exact index, so glob destinations must be tested. */
  readonly unindexed: boolean;
  /** Rank of the result the last CompiledRule.decide returned. */
  rank = 0;
  /** Explaining (a second walk): condition errors were reported by evaluate already. */
  quiet = false;
  private celContext: CelActivation | undefined = undefined;
  private normalPath: boolean | undefined = undefined;

  constructor(input: PolicyInput, unindexed: boolean) {
    this.input = input;
    this.unindexed = unindexed;
  }

  activation(): CelActivation {
    return this.celContext ??= celActivation(this.input);
  }

  pathIsNormal(): boolean {
    return this.normalPath ??= this.input.pathNormal === true || isNormalPath(this.input.request.path_only);
  }
}

type ErrorReporter = (rule: string, error: unknown) => void;

/** The `revoke` of a result that revokes nothing (most): shared, frozen, never written to. */
const NO_REVOCATIONS = Object.freeze([]) as unknown as RevocationTarget[];

/**
 * Total order of results, most restrictive highest: the outcome first, then whether revocations
 * are started, then whether it is the rule's own result rather than a failed condition.
 */
function rankOf(outcome: Outcome, revokes: boolean, conditionFailed: boolean): number {
  return OUTCOME_SEVERITY[outcome] * 4 + (revokes ? 2 : 0) + (conditionFailed ? 0 : 1);
}

const CONDITION_FAILED_RANK = rankOf("deny", false, true);

/**
 * Longest destination a glob destination is tried on: a SPIFFE ID has at most 2048 bytes and a
 * DNS name 253 characters, so a longer Host can only be an attack on the matcher's time.
 */
export const MAX_DESTINATION_LENGTH = 2048;

interface RuleParts {
  id: string;
  order: number;
  spec: PolicyRuleSpec;
  privileged: boolean;
  destination: StringMatcher | null;
  condition: Condition | null;
  report: ErrorReporter;
}

class CompiledRule {
  readonly id: string;
  readonly order: number;
  readonly methods: readonly string[] | null;
  readonly appliesToPrivileged: boolean;
  /** Whether a match marks the request as a privileged action. */
  readonly privileged: boolean;
  /** Rank of the rule's own result (see rankOf). */
  readonly rank: number;
  /** The highest rank this rule can produce (outside its window it delays, a failing condition denies). */
  readonly maxRank: number;

  private readonly delayRank: number;
  private readonly destination: StringMatcher | null;
  private readonly sources: StringMatcher | null;
  private readonly paths: StringMatcher | null;
  private readonly grpcService: string | null;
  private readonly grpcMethods: ReadonlySet<string> | null;
  private readonly mcpTools: StringMatcher | null;
  private readonly context: readonly (readonly [string, readonly string[]])[];
  private readonly cidrs: CidrSet | null;
  private readonly condition: Condition | null;
  private readonly window: ChangeWindow | null;
  private readonly outcome: Outcome;
  private readonly reason: string;
  private readonly retryAfterSeconds: number | undefined;
  private readonly stepUp: StepUpParams | undefined;
  private readonly revoke: readonly RevocationTarget[];
  private readonly resultPrivileged: boolean;
  private readonly report: ErrorReporter;
  private readonly controls: readonly string[] | undefined;

  constructor(parts: RuleParts) {
    const spec = parts.spec;
    this.id = parts.id;
    this.order = parts.order;
    this.methods = spec.methods ?? null;
    this.appliesToPrivileged = spec.appliesTo === "privileged";
    this.privileged = parts.privileged;
    const revokes = (spec.revoke ?? []).length > 0;
    this.rank = rankOf(spec.outcome, revokes, false);
    this.delayRank = rankOf("delay", revokes, false);
    const windowRank = spec.changeWindow === undefined ? 0 : this.delayRank;
    const conditionRank = parts.condition === null ? 0 : CONDITION_FAILED_RANK;
    this.maxRank = Math.max(this.rank, windowRank, conditionRank);
    this.destination = parts.destination;
    this.sources = spec.sources === undefined ? null : compileGlobs(spec.sources);
    this.paths = spec.paths === undefined ? null : compileGlobs(spec.paths);
    this.grpcService = spec.grpc?.service ?? null;
    this.grpcMethods = spec.grpc?.methods === undefined ? null : new Set(spec.grpc.methods);
    this.mcpTools = spec.mcpTools === undefined ? null : compileGlobs(spec.mcpTools);
    this.context = Object.entries(spec.context ?? {}).map(([key, value]) => [key, typeof value === "string" ? [value] : value] as const);
    this.cidrs = spec.sourceCidrs === undefined ? null : new CidrSet(spec.sourceCidrs);
    this.condition = parts.condition;
    this.window = spec.changeWindow === undefined ? null : new ChangeWindow(spec.changeWindow);
    this.outcome = spec.outcome;
    this.reason = spec.reason ?? DEFAULT_REASONS[spec.outcome];
    this.retryAfterSeconds = spec.retryAfterSeconds;
    this.stepUp = spec.stepUp;
    this.revoke = spec.revoke ?? [];
    // A rule that only applies to privileged actions decides about a privileged action.
    this.resultPrivileged = this.privileged || this.appliesToPrivileged;
    this.report = parts.report;
    this.controls = spec.controls === undefined ? undefined : Object.freeze(spec.controls.slice());
  }

  /** Whether the rule's `sources` admit this caller (a rule without sources admits every caller). */
  admits(spiffeId: string): boolean {
    return this.sources === null || this.sources(spiffeId);
  }

  /** Whether the rule has a `sources` list to test at all. */
  get hasSources(): boolean {
    return this.sources !== null;
  }

  /**
   * The rule's result when it matches this request, else undefined. `admitted` is admits() for
   * the request's caller, which the rule list remembers per caller (SourceMemo).
   */
  decide(state: Evaluation, admitted: boolean): PolicyResult | undefined {
    const input = state.input;
    const request = input.request;
    if (state.unindexed && this.destination !== null
      && (request.destination.length > MAX_DESTINATION_LENGTH || !this.destination(request.destination))) return undefined;
    if (!admitted) return undefined;
    if (this.paths !== null && !(state.pathIsNormal() && this.paths(request.path_only))) return undefined;
    if (this.grpcService !== null) {
      if (request.grpc_service !== this.grpcService) return undefined;
      if (this.grpcMethods !== null && !this.grpcMethods.has(request.grpc_method)) return undefined;
    }
    if (this.mcpTools !== null && (request.mcp_method !== "tools/call" || !this.mcpTools(request.mcp_tool))) return undefined;
    for (const [key, values] of this.context) {
      const value = input.context[key];
      if (typeof value !== "string" || !values.includes(value)) return undefined;
    }
    if (this.cidrs !== null && !this.cidrs.has(request.source_ip)) return undefined;
    if (this.condition !== null) {
      let matched: boolean;
      try {
        matched = this.condition(state.activation());
      } catch (error) {
        if (!state.quiet) this.report(this.id, error);
        state.rank = CONDITION_FAILED_RANK;
        return { outcome: "deny", rule: this.id, reason: CONDITION_ERROR_REASON, revoke: [], privileged: this.resultPrivileged };
      }
      if (!matched) return undefined;
    }
    if (this.window !== null) {
      const wait = this.window.secondsUntilOpen(input.now);
      if (wait > 0) {
        state.rank = this.delayRank;
        return {
          outcome: "delay",
          rule: this.id,
          reason: `outside the change window (${this.window.description})`,
          retryAfterSeconds: wait,
          revoke: this.revoke.length === 0 ? NO_REVOCATIONS : this.revoke.slice(),
          privileged: this.resultPrivileged,
          ...(this.controls === undefined ? {} : { controls: this.controls }),
        };
      }
    }
    state.rank = this.rank;
    const result: PolicyResult = { outcome: this.outcome, rule: this.id, reason: this.reason, revoke: this.revoke.length === 0 ? NO_REVOCATIONS : this.revoke.slice(), privileged: this.resultPrivileged };
    if (this.controls !== undefined) result.controls = this.controls;
    if (this.retryAfterSeconds !== undefined) result.retryAfterSeconds = this.retryAfterSeconds;
    if (this.stepUp !== undefined) {
      result.stepUp = { approvers: this.stepUp.approvers.slice(), grantTtlSeconds: this.stepUp.grantTtlSeconds, grantUses: this.stepUp.grantUses };
    }
    return result;
  }
}

/** The rules one (destination, method) pair can reach, most restrictive first. */
interface RuleList {
  rules: readonly CompiledRule[];
  /** Rules with appliesTo: privileged, consulted only once a privileged rule matched. */
  privilegedOnly: readonly CompiledRule[];
  privilegedOnlyMaxRank: number;
  /** Which of `rules`, then `privilegedOnly` (offset rules.length), admit a caller. */
  sources: SourceMemo;
}

interface Bucket {
  byMethod: ReadonlyMap<string, RuleList>;
  anyMethod: RuleList;
}

function byRestrictiveness(a: CompiledRule, b: CompiledRule): number {
  return b.maxRank - a.maxRank || a.order - b.order;
}

function ruleList(rules: readonly CompiledRule[]): RuleList {
  const sorted = [...rules].sort(byRestrictiveness);
  const privilegedOnly = sorted.filter((rule) => rule.appliesToPrivileged);
  const general = sorted.filter((rule) => !rule.appliesToPrivileged);
  return {
    rules: general,
    privilegedOnly,
    privilegedOnlyMaxRank: privilegedOnly.reduce((max, rule) => Math.max(max, rule.maxRank), -1),
    sources: new SourceMemo([...general, ...privilegedOnly]),
  };
}

function bucket(rules: readonly CompiledRule[], methods: ReadonlySet<string>): Bucket {
  const anyMethod = rules.filter((rule) => rule.methods === null);
  const byMethod = new Map<string, RuleList>();
  for (const method of methods) {
    const forMethod = rules.filter((rule) => rule.methods === null || rule.methods.includes(method));
    if (forMethod.length !== anyMethod.length) byMethod.set(method, ruleList(forMethod));
  }
  return { byMethod, anyMethod: ruleList(anyMethod) };
}

function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => {
    if (item === null || typeof item !== "object" || Array.isArray(item)) return item;
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(item).sort()) sorted[key] = (item as Record<string, unknown>)[key];
    return sorted;
  });
}

/** Content hash of the documents (their validated content, in order): equal policies, equal version. */
export function policyVersion(documents: readonly PolicyDocument[]): string {
  const hash = createHash("sha256");
  for (const document of documents) hash.update(stableJson(document.manifest)).update("\n");
  return hash.digest("hex").slice(0, 16);
}

function normaliseDestination(pattern: string): string {
  return pattern.startsWith("spiffe://") ? pattern : pattern.toLowerCase();
}

/** What a rule matches, in words, for an operator ("" when it matches every request of its policy). */
function matchesOf(spec: PolicyManifest["spec"]["rules"][number]): string {
  const parts: string[] = [];
  if (spec.methods !== undefined) parts.push(spec.methods.join("|"));
  if (spec.paths !== undefined) parts.push(spec.paths.join(", "));
  if (spec.grpc !== undefined) parts.push(`grpc ${spec.grpc.service}${spec.grpc.methods === undefined ? "" : `/${spec.grpc.methods.join("|")}`}`);
  if (spec.mcpTools !== undefined) parts.push(`mcp tools ${spec.mcpTools.join(", ")}`);
  if (spec.sources !== undefined) parts.push(`from ${spec.sources.join(", ")}`);
  return parts.join(" ");
}

class Policy implements CompiledPolicy {
  readonly ruleCount: number;
  readonly rules: readonly RuleSummary[];
  readonly version: string;
  readonly headers: HeaderSelection;
  readonly readsEntities: boolean;
  readonly #exact: ReadonlyMap<string, Bucket>;
  readonly #fallback: Bucket;
  readonly #report: ErrorReporter;
  readonly #shadow: Policy | undefined;

  constructor(
    rules: readonly RuleSummary[], version: string, headers: HeaderSelection, readsEntities: boolean, exact: ReadonlyMap<string, Bucket>,
    fallback: Bucket, report: ErrorReporter, shadow: Policy | undefined,
  ) {
    this.ruleCount = rules.length;
    this.rules = rules;
    this.version = version;
    this.headers = headers;
    this.readsEntities = readsEntities;
    this.#exact = exact;
    this.#fallback = fallback;
    this.#report = report;
    this.#shadow = shadow;
  }

  get hasShadow(): boolean {
    return this.#shadow !== undefined;
  }

  wouldBe(input: PolicyInput, enforced: PolicyResult): PolicyResult | undefined {
    const shadow = this.#shadow;
    if (shadow === undefined) return undefined;
    const result = shadow.evaluate(input);
    return result.outcome === enforced.outcome && result.rule === enforced.rule ? undefined : result;
  }

  explain(input: PolicyInput): string[] {
    try {
      const request = input.request;
      const indexed = this.#exact.get(request.destination);
      const target = indexed ?? this.#fallback;
      const list = target.byMethod.get(request.method) ?? target.anyMethod;
      const state = new Evaluation(input, indexed === undefined);
      state.quiet = true;
      const matched: { id: string; rank: number; order: number }[] = [];
      const admitted = list.sources.admitted(input.source.spiffe_id);
      const rules = list.rules;
      let privileged = false;
      for (let i = 0; i < rules.length; i++) {
        const rule = rules[i] as CompiledRule;
        if (rule.decide(state, admitted[i] === 1) === undefined) continue;
        if (rule.privileged) privileged = true;
        matched.push({ id: rule.id, rank: state.rank, order: rule.order });
      }
      if (privileged) {
        const only = list.privilegedOnly;
        for (let i = 0; i < only.length; i++) {
          const rule = only[i] as CompiledRule;
          if (rule.decide(state, admitted[rules.length + i] === 1) !== undefined) matched.push({ id: rule.id, rank: state.rank, order: rule.order });
        }
      }
      return matched.sort((a, b) => b.rank - a.rank || a.order - b.order).map((m) => m.id);
    } catch {
      return [];
    }
  }

  evaluate(input: PolicyInput): PolicyResult {
    try {
      const request = input.request;
      const indexed = this.#exact.get(request.destination);
      const target = indexed ?? this.#fallback;
      const list = target.byMethod.get(request.method) ?? target.anyMethod;
      const state = new Evaluation(input, indexed === undefined);
      let best: PolicyResult | undefined;
      let bestRank = -1;
      let bestOrder = Number.POSITIVE_INFINITY;
      let privileged = false;
      const admitted = list.sources.admitted(input.source.spiffe_id);
      const rules = list.rules;
      for (let i = 0; i < rules.length; i++) {
        const rule = rules[i] as CompiledRule;
        // Skip a rule that cannot beat the current result, unless it is still needed to learn
        // whether this is a privileged action for the appliesTo: privileged rules.
        if (!(rule.maxRank > bestRank || (rule.maxRank === bestRank && rule.order < bestOrder))
          && !(rule.privileged && !privileged && list.privilegedOnlyMaxRank >= bestRank)) continue;
        const result = rule.decide(state, admitted[i] === 1);
        if (result === undefined) continue;
        if (rule.privileged) privileged = true;
        if (state.rank > bestRank || (state.rank === bestRank && rule.order < bestOrder)) {
          best = result;
          bestRank = state.rank;
          bestOrder = rule.order;
        }
      }
      if (privileged) {
        const only = list.privilegedOnly;
        for (let i = 0; i < only.length; i++) {
          const rule = only[i] as CompiledRule;
          if (!(rule.maxRank > bestRank || (rule.maxRank === bestRank && rule.order < bestOrder))) continue;
          const result = rule.decide(state, admitted[rules.length + i] === 1);
          if (result === undefined) continue;
          if (state.rank > bestRank || (state.rank === bestRank && rule.order < bestOrder)) {
            best = result;
            bestRank = state.rank;
            bestOrder = rule.order;
          }
        }
      }
      return best ?? { outcome: "deny", rule: "", reason: NOTHING_MATCHED_REASON, revoke: [], privileged: false };
    } catch (error) {
      this.#report("", error);
      return { outcome: "deny", rule: "", reason: EVALUATION_ERROR_REASON, revoke: [], privileged: false };
    }
  }
}

/**
 * Compiles validated documents into one policy. Throws a VigilError (invalid_input) naming
 * file, document and path for every CEL error and for policy names used twice.
 */
export function compilePolicy(documents: readonly PolicyDocument[], options: CompileOptions = {}): CompiledPolicy {
  const issues: PolicyIssue[] = [];
  const hook = options.onConditionError;
  const report: ErrorReporter = (rule, error) => {
    if (hook === undefined) return;
    try {
      hook(rule, error);
    } catch {
      // A failing log hook must not change the decision.
    }
  };
  const conditions = new ConditionCompiler();
  const policyNames = new Map<string, PolicyDocument>();
  const entries: Entry[] = [];
  const summaries: RuleSummary[] = [];
  // The request headers any condition reads (shadow rules too: they are evaluated as well).
  const headerNames = new Set<string>();
  const reads = { allHeaders: false, entities: false };

  for (const document of documents) {
    const manifest: PolicyManifest = document.manifest;
    const { file, document: number } = document.source;
    const policyName = manifest.metadata.name;
    const earlier = policyNames.get(policyName);
    if (earlier !== undefined) {
      const path = ["metadata", "name"];
      const line = lineOf(document.source, path);
      issues.push({
        file,
        document: number,
        path: "metadata.name",
        message: `policy name "${policyName}" is already used by ${earlier.source.file} doc ${earlier.source.document}`,
        ...(line === undefined ? {} : { line }),
      });
      continue;
    }
    policyNames.set(policyName, document);
    const destinations = manifest.spec.destinations.map(normaliseDestination);
    const covers = compileGlobs(destinations);
    // Only glob destinations (not "*") need a check at decision time, and only for destinations
    // missing from the exact index: for indexed ones the check was done here.
    const destination = hasWildcard(destinations) && !destinations.includes("*") ? covers : null;
    manifest.spec.rules.forEach((spec, index) => {
      let condition: Condition | null = null;
      if (spec.when !== undefined) {
        const compiled = conditions.compile(spec.when);
        if (compiled.ok) {
          condition = compiled.condition;
          reads.allHeaders ||= compiled.headers.all;
          reads.entities ||= compiled.entities;
          for (const name of compiled.headers.names) headerNames.add(name);
        } else {
          const path = ["spec", "rules", index, "when"];
          const line = lineOf(document.source, path);
          issues.push({ file, document: number, path: `spec.rules[${index}].when`, message: compiled.error, ...(line === undefined ? {} : { line }) });
        }
      }
      const rule = new CompiledRule({
        id: `${policyName}/${spec.name}`,
        order: entries.length,
        spec,
        privileged: spec.privileged ?? manifest.spec.privileged,
        destination,
        condition,
        report,
      });
      entries.push({ rule, destinations, covers, shadow: spec.shadow ?? manifest.spec.shadow });
      summaries.push(Object.freeze({
        id: `${policyName}/${spec.name}`,
        outcome: spec.outcome,
        description: spec.description ?? spec.reason ?? "",
        destinations: Object.freeze([...destinations]),
        matches: matchesOf(spec),
        conditional: spec.when !== undefined,
        privileged: spec.privileged ?? manifest.spec.privileged,
        approvers: Object.freeze([...(spec.stepUp?.approvers ?? [])]),
        shadow: spec.shadow ?? manifest.spec.shadow,
        controls: Object.freeze([...(spec.controls ?? [])]),
      }));
    });
  }
  if (issues.length > 0) throw policyError(issues);

  const version = policyVersion(documents);
  const headers: HeaderSelection = Object.freeze({ all: reads.allHeaders, names: reads.allHeaders ? new Set<string>() : headerNames });
  const enforced = index(entries.filter((entry) => !entry.shadow));
  // Shadow rules (rollout): a second index holding every rule as if the shadow ones were
  // enforced; it is only built, and only consulted, when there are shadow rules.
  const shadowed = entries.some((entry) => entry.shadow) ? index(entries) : undefined;
  const shadow = shadowed === undefined ? undefined
    : new Policy(Object.freeze(summaries), version, headers, reads.entities, shadowed.exact, shadowed.fallback, report, undefined);
  return new Policy(Object.freeze(summaries), version, headers, reads.entities, enforced.exact, enforced.fallback, report, shadow);
}

interface Entry {
  rule: CompiledRule;
  destinations: readonly string[];
  covers: StringMatcher;
  /** Evaluated for the would-be outcome only, never enforced. */
  shadow: boolean;
}

function index(entries: readonly Entry[]): { exact: Map<string, Bucket>; fallback: Bucket } {
  const methods = new Set<string>();
  const exactNames = new Set<string>();
  for (const { rule, destinations } of entries) {
    for (const method of rule.methods ?? []) methods.add(method);
    for (const pattern of destinations) if (!pattern.includes("*")) exactNames.add(pattern);
  }
  const exact = new Map<string, Bucket>();
  for (const name of exactNames) {
    const rules = entries.filter(({ covers }) => covers(name)).map(({ rule }) => rule);
    exact.set(name, bucket(rules, methods));
  }
  const fallback = bucket(entries.filter(({ destinations }) => hasWildcard(destinations)).map(({ rule }) => rule), methods);
  return { exact, fallback };
}
