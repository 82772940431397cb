// Policy YAML from anywhere (a truncated save, a ConfigMap mid-swap, a hostile edit): whatever the
// text, reading and compiling it either gives a policy or throws a VigilError — nothing else — and
// a policy from garbage never allows what it should not: an allow always names the rule that
// said "allow", and text without the word "allow" (or mutations of a deny-only policy) never
// allows the fixed probe.

import fc from "fast-check";
import { stringify } from "yaml";
import { describe, expect, it } from "vitest";
import { VigilError } from "../../src/errors/index.js";
import { compilePolicy, parsePolicyDocuments } from "../../src/policy/index.js";
import type { PolicyResult } from "../../src/policy/index.js";
import { policyInput } from "./policy-input.js";

const PROBES = [
  policyInput("payments", "POST", "/transfers", { caller: "spiffe://example.org/ns/agents/sa/planner" }),
  policyInput("payments", "DELETE", "/admin/all", { caller: "spiffe://example.org/ns/agents/sa/planner", signals: { revoked: true, risk: "critical" } }),
  policyInput("tickets", "GET", "/", { caller: "" }),
];

/** One of the characters of `set` (ASCII sets only). */
function chars(set: string): fc.Arbitrary<string> {
  return fc.constantFrom(...Array.from(set));
}

/** Texts that compiled: a property over garbage that never compiles would prove nothing. */
let compiledCount = 0;

/** Reads and compiles `text`; undefined when it was refused (with a VigilError, or the test fails). */
function compiled(text: string): PolicyResult[] | undefined {
  let policy;
  try {
    policy = compilePolicy(parsePolicyDocuments(text, "fuzz.yaml"));
  } catch (error) {
    expect(error).toBeInstanceOf(VigilError);
    return undefined;
  }
  compiledCount++;
  return PROBES.map((probe) => policy.evaluate(probe));
}

function checkNoAllowFromGarbage(text: string): void {
  const results = compiled(text);
  if (results === undefined) return;
  for (const result of results) {
    if (result.outcome !== "allow") continue;
    // An allow comes from a rule, and a rule says allow only if the text does.
    expect(result.rule).not.toBe("");
    expect(text).toContain("allow");
  }
}

const DENY_ONLY = `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata:
  name: locked
spec:
  destinations: ["*"]
  rules:
    - name: no-writes
      methods: [POST, PUT, DELETE]
      outcome: deny
    - name: risky
      when: signals.risk in ["high", "critical"]
      outcome: revoke
      revoke: [credential]
    - name: reads-wait
      methods: [GET]
      paths: ["/**"]
      outcome: step_up
      stepUp: { approvers: ["spiffe://example.org/ns/ops/sa/oncall"], grantTtlSeconds: 900, grantUses: 1 }
`;

const WORDS = [
  "apiVersion", "vigil.dev/v1alpha1", "kind", "Policy", "metadata", "name", "spec", "destinations", "rules", "outcome",
  "deny", "allow", "revoke", "step_up", "delay", "when", "true", "false", "methods", "paths", "sources", "*", "/**",
  "privileged", "appliesTo", "context", "stepUp", "signals.fresh", "!signals.fresh", "1 == 1", "changeWindow", "",
];
const word = fc.constantFrom(...WORDS);
const { node } = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    word, fc.integer(), fc.boolean(), fc.constant(null),
    fc.array(tie("node"), { maxLength: 4 }),
    fc.dictionary(word, tie("node"), { maxKeys: 5 }),
  ),
}));
/** Mostly `valid`, sometimes anything from the vocabulary. */
function mostly<T>(valid: fc.Arbitrary<T>, other: fc.Arbitrary<unknown> = node): fc.Arbitrary<unknown> {
  return fc.oneof({ arbitrary: valid, weight: 12 }, { arbitrary: other, weight: 1 });
}

/** Rules that are often valid: a name and an outcome, and a few of the other fields. */
const rule = fc.record({
  name: fc.constantFrom("a", "b", "c", "d"),
  outcome: mostly(fc.constantFrom("deny", "allow", "revoke", "delay"), word),
  methods: mostly(fc.constantFrom(["GET"], ["POST"], ["GET", "POST"])),
  paths: mostly(fc.constantFrom(["/**"], ["/transfers"], ["/admin/*"])),
  when: mostly(fc.constantFrom("true", "signals.fresh", "signals.risk == \"high\"", "source.spiffe_id == \"\""), fc.constantFrom("1 +", "nope(")),
}, { requiredKeys: ["name", "outcome"] });

/** Documents shaped roughly like a policy, with vocabulary in every place. */
const policyish = fc.record({
  apiVersion: mostly(fc.constant("vigil.dev/v1alpha1"), word),
  kind: mostly(fc.constant("Policy"), word),
  metadata: mostly(fc.record({ name: fc.string({ minLength: 1, maxLength: 8, unit: chars("abcdefgh") }) })),
  spec: mostly(fc.record({
    destinations: mostly(fc.constantFrom(["*"], ["payments"], ["tickets", "payments"])),
    rules: mostly(fc.uniqueArray(rule, { minLength: 1, maxLength: 4, selector: (r) => r.name }), fc.array(fc.dictionary(word, node, { maxKeys: 6 }), { maxLength: 4 })),
  })),
});

describe("policy YAML from anywhere", () => {
  it("random text: a policy or a VigilError, and no allow from nowhere", () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.string({ unit: chars("{}[]:-#&*!|>'\"%@` \n\tallowdeny") })), (text) => {
      checkNoAllowFromGarbage(text);
    }), { numRuns: 1500 });
  });

  it("policy-shaped documents of random structure", () => {
    compiledCount = 0;
    fc.assert(fc.property(fc.array(policyish, { minLength: 1, maxLength: 3 }), (docs) => {
      checkNoAllowFromGarbage(docs.map((d) => stringify(d)).join("---\n"));
    }), { numRuns: 1500 });
    expect(compiledCount).toBeGreaterThan(10);
  });

  it("a deny-only policy mutated (lines dropped, repeated, cut, junk inserted) never allows", () => {
    const lines = DENY_ONLY.split("\n");
    const junk = fc.string({ unit: chars("{}[]:-#&*!|>'\" \n\tdenyrevk") });
    const mutation = fc.oneof(
      fc.nat(lines.length - 1).map((i) => (ls: string[]) => ls.filter((_, j) => j !== i)),
      fc.nat(lines.length - 1).map((i) => (ls: string[]) => [...ls.slice(0, i + 1), ...ls.slice(i)]),
      fc.tuple(fc.nat(lines.length - 1), junk).map(([i, j]) => (ls: string[]) => [...ls.slice(0, i), j, ...ls.slice(i)]),
      fc.tuple(fc.nat(lines.length - 1), fc.nat(40)).map(([i, n]) => (ls: string[]) => ls.map((l, k) => (k === i ? l.slice(0, n) : l))),
    );
    expect(compiled(DENY_ONLY)?.map((r) => r.outcome)).toEqual(["deny", "revoke", "step_up"]);
    compiledCount = 0;
    fc.assert(fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.nat(DENY_ONLY.length), (mutations, cut) => {
      const mutated = mutations.reduce((ls, m) => m(ls), lines).join("\n");
      for (const text of [mutated, mutated.slice(0, cut)]) {
        const results = compiled(text);
        if (results === undefined) continue;
        for (const result of results) expect(result.outcome).not.toBe("allow");
      }
    }), { numRuns: 1500 });
    expect(compiledCount).toBeGreaterThan(50);
  });

  it.each([
    { name: "empty text", text: "" },
    { name: "only a comment", text: "# nothing\n" },
    { name: "a document separator", text: "---\n" },
    { name: "null", text: "null" },
    { name: "a list", text: "- allow\n" },
  ])("$name compiles to nothing that allows", ({ text }) => {
    checkNoAllowFromGarbage(text);
    const results = compiled(text);
    for (const result of results ?? []) expect(result.outcome).toBe("deny");
  });
});
