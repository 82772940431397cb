// The index and the skipping of rules that cannot win are optimisations: on generated policies
// and requests, a compiled policy must decide exactly like a naive reference that evaluates every
// rule on its own and then picks the most restrictive result.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OUTCOME_SEVERITY } from "../../src/model/index.js";
import { CONDITION_ERROR_REASON, compilePolicy, parsePolicyDocuments } from "../../src/policy/index.js";
import type { CompiledPolicy, PolicyInput, PolicyResult } from "../../src/policy/index.js";
import { policyInput } from "./policy-input.js";

interface RuleShape {
  sources: string | null;
  methods: string | null;
  paths: string | null;
  when: string | null;
  privileged: boolean | null;
  appliesToPrivileged: boolean;
  outcome: string;
  revoke: boolean;
  window: boolean;
}

interface DocShape {
  destinations: string;
  privileged: boolean;
  rules: RuleShape[];
}

const SOURCES = [
  null, "[\"spiffe://example.org/ns/a/**\"]", "[\"spiffe://example.org/ns/a/sa/b\"]", "[\"spiffe://example.org/ns/*/sa/c\"]",
  "[\"spiffe://example.org/ns/b/**\", \"spiffe://example.org/ns/a/sa/*\"]",
];

const ruleShape: fc.Arbitrary<RuleShape> = fc.record({
  sources: fc.constantFrom(...SOURCES),
  methods: fc.constantFrom(null, "[GET]", "[POST]", "[GET, POST]"),
  paths: fc.constantFrom(null, "[\"/a/**\"]", "[\"/b\"]", "[\"/a/*\", \"/c\"]"),
  when: fc.constantFrom(null, "signals.fresh", "'!signals.fresh'", "context.env == \"prod\"", "signals.risk == \"high\""),
  privileged: fc.constantFrom(null, true, false),
  appliesToPrivileged: fc.boolean(),
  outcome: fc.constantFrom("allow", "deny", "step_up", "delay", "revoke"),
  revoke: fc.boolean(),
  window: fc.boolean(),
});

const docShape: fc.Arbitrary<DocShape> = fc.record({
  destinations: fc.constantFrom("[svc]", "[\"*\"]", "[svc, other]", "[\"sv*\"]"),
  privileged: fc.boolean(),
  rules: fc.array(ruleShape, { minLength: 1, maxLength: 5 }),
});

function ruleYaml(rule: RuleShape, name: string, appliesToPrivileged: boolean): string {
  const lines = [`- name: ${name}`];
  if (rule.sources !== null) lines.push(`  sources: ${rule.sources}`);
  if (rule.methods !== null) lines.push(`  methods: ${rule.methods}`);
  if (rule.paths !== null) lines.push(`  paths: ${rule.paths}`);
  if (rule.when !== null) lines.push(`  when: ${rule.when}`);
  if (rule.privileged !== null) lines.push(`  privileged: ${rule.privileged}`);
  if (appliesToPrivileged) lines.push("  appliesTo: privileged");
  lines.push(`  outcome: ${rule.outcome}`);
  if (rule.outcome === "delay") lines.push("  retryAfterSeconds: 30");
  if (rule.outcome === "step_up") lines.push("  stepUp: { approvers: [ops] }");
  if (rule.revoke || rule.outcome === "revoke") lines.push("  revoke: [credential]");
  if (rule.window && (rule.outcome === "allow" || rule.outcome === "step_up")) {
    lines.push("  changeWindow: { days: [mon], start: \"09:00\", end: \"10:00\" }");
  }
  return lines.map((line) => `    ${line}`).join("\n");
}

function docYaml(doc: DocShape, index: number, rules: string[]): string {
  return `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata:
  name: p${index}
spec:
  destinations: ${doc.destinations}
  privileged: ${doc.privileged}
  rules:
${rules.join("\n")}
`;
}

const MONDAY_0930 = Date.UTC(2025, 5, 16, 9, 30);
const TUESDAY_0930 = Date.UTC(2025, 5, 17, 9, 30);

const request: fc.Arbitrary<PolicyInput> = fc.record({
  destination: fc.constantFrom("svc", "other", "svx", "elsewhere"),
  method: fc.constantFrom("GET", "POST", "PUT"),
  path: fc.constantFrom("/a/x", "/a/x/y", "/b", "/c", "/a/../b"),
  fresh: fc.boolean(),
  risk: fc.constantFrom("none", "high"),
  env: fc.constantFrom(null, "prod", "dev"),
  now: fc.constantFrom(MONDAY_0930, TUESDAY_0930),
  caller: fc.constantFrom("spiffe://example.org/ns/a/sa/b", "spiffe://example.org/ns/a/sa/c", "spiffe://example.org/ns/b/sa/c", ""),
}).map((r) => policyInput(r.destination, r.method, r.path, {
  caller: r.caller,
  signals: { fresh: r.fresh, risk: r.risk },
  context: r.env === null ? {} : { env: r.env },
  now: r.now,
}));

function rank(result: PolicyResult): number {
  return OUTCOME_SEVERITY[result.outcome] * 4 + (result.revoke.length > 0 ? 2 : 0) + (result.reason === CONDITION_ERROR_REASON ? 0 : 1);
}

interface SingleRule {
  policy: CompiledPolicy;
  appliesToPrivileged: boolean;
}

/** Each rule compiled alone, in load order (appliesTo: privileged ones as plain rules). */
function singleRules(docs: DocShape[]): SingleRule[] {
  return docs.flatMap((doc, d) => doc.rules.map((rule, r) => ({
    policy: compilePolicy(parsePolicyDocuments(docYaml(doc, d, [ruleYaml(rule, `r${r}`, false)]))),
    appliesToPrivileged: rule.appliesToPrivileged,
  })));
}

/** Every rule evaluated on its own; appliesTo: privileged ones only when a privileged rule matched. */
function reference(rules: SingleRule[], input: PolicyInput): PolicyResult | undefined {
  const normal: PolicyResult[] = [];
  const privilegedOnly: PolicyResult[] = [];
  let privileged = false;
  for (const rule of rules) {
    const result = rule.policy.evaluate(input);
    if (result.rule === "") continue;
    if (rule.appliesToPrivileged) {
      privilegedOnly.push(result);
    } else {
      normal.push(result);
      if (result.privileged) privileged = true;
    }
  }
  // Candidates are in load order, so the first of equal rank is the one loaded first.
  const candidates = privileged ? [...normal, ...privilegedOnly] : normal;
  const order = (result: PolicyResult) => {
    const [policy = "", rule = ""] = result.rule.split("/");
    return Number(policy.slice(1)) * 100 + Number(rule.slice(1));
  };
  let best: PolicyResult | undefined;
  for (const candidate of candidates) {
    if (best === undefined || rank(candidate) > rank(best) || (rank(candidate) === rank(best) && order(candidate) < order(best))) best = candidate;
  }
  return best;
}

describe("compiled evaluation against a naive reference", () => {
  it("decides like evaluating every rule and taking the most restrictive", () => {
    fc.assert(fc.property(fc.array(docShape, { minLength: 1, maxLength: 3 }), fc.array(request, { minLength: 1, maxLength: 12 }), (docs, inputs) => {
      const yaml = docs.map((doc, d) => docYaml(doc, d, doc.rules.map((rule, r) => ruleYaml(rule, `r${r}`, rule.appliesToPrivileged)))).join("---\n");
      const policy = compilePolicy(parsePolicyDocuments(yaml));
      const rules = singleRules(docs);
      for (const input of inputs) {
        const expected = reference(rules, input);
        const actual = policy.evaluate(input);
        const label = `${input.request.method} ${input.request.destination}${input.request.path}\n${yaml}`;
        if (expected === undefined) {
          expect(actual.rule, label).toBe("");
          expect(actual.outcome, label).toBe("deny");
        } else {
          expect({ rule: actual.rule, outcome: actual.outcome, revoke: actual.revoke, retryAfterSeconds: actual.retryAfterSeconds }, label)
            .toEqual({ rule: expected.rule, outcome: expected.outcome, revoke: expected.revoke, retryAfterSeconds: expected.retryAfterSeconds });
        }
      }
    }), { numRuns: 200 });
  });
});

describe("remembered source answers (SourceMemo)", () => {
  // A long-lived policy remembers, per rule list, which rules admit each caller, and forgets them
  // all once 64 callers are held. Over sequences of many callers (past that bound, callers coming
  // back after it), it must answer and explain exactly as the same policy compiled afresh.
  const caller = fc.integer({ min: 0, max: 149 }).map((n) => `spiffe://example.org/ns/${["a", "b", "c"][n % 3] ?? "a"}/sa/${n % 5 === 0 ? "c" : `w${String(n)}`}`);
  it("answers as a policy that has seen no caller before", () => {
    fc.assert(fc.property(fc.array(docShape, { minLength: 1, maxLength: 3 }), fc.array(fc.tuple(request, caller), { minLength: 70, maxLength: 200 }), (docs, calls) => {
      const yaml = docs.map((doc, d) => docYaml(doc, d, doc.rules.map((rule, r) => ruleYaml(rule, `r${r}`, rule.appliesToPrivileged)))).join("---\n");
      const documents = parsePolicyDocuments(yaml);
      const policy = compilePolicy(documents);
      for (const [base, spiffeId] of calls) {
        const input: PolicyInput = { ...base, source: { ...base.source, spiffe_id: spiffeId } };
        const fresh = compilePolicy(documents);
        const label = `${spiffeId} ${input.request.method} ${input.request.destination}${input.request.path}\n${yaml}`;
        const actual = policy.evaluate(input);
        const expected = fresh.evaluate(input);
        expect({ rule: actual.rule, outcome: actual.outcome }, label).toEqual({ rule: expected.rule, outcome: expected.outcome });
        expect(policy.explain?.(input), label).toEqual(fresh.explain?.(input));
      }
    }), { numRuns: 15 });
  });
});
