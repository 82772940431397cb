// Bounds on `when:` conditions: regexes run by RE2 and refused at load when RE2 cannot run them,
// parse limits, no nested comprehensions, and the bounded cache of patterns that are not literals.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConditionCompiler, celActivation } from "../../src/policy/cel.js";
import { MAX_DYNAMIC_PATTERNS, MAX_MATCH_INPUT, MAX_SPLIT_PARTS, RegexCache, boundedSplit } from "../../src/policy/cel-bounds.js";
import { policyInput } from "./policy-input.js";

function run(expression: string, overrides: Parameters<typeof policyInput>[3] = {}, path = "/v1/items"): boolean {
  const compiled = new ConditionCompiler().compile(expression);
  if (!compiled.ok) throw new Error(`does not compile: ${compiled.error}`);
  return compiled.condition(celActivation(policyInput("api", "GET", path, overrides)));
}

const deep = (depth: number) => `${"(".repeat(depth)}true${")".repeat(depth)}`;

describe("CEL bounds at load", () => {
  it.each([
    { expression: "request.path.matches(\"(a)\\\\1\")", problem: "RE2 cannot run" },
    { expression: "request.path.matches(\"^(?=admin)\")", problem: "RE2 cannot run" },
    { expression: "request.path.matches(\"a(?!b)\")", problem: "RE2 cannot run" },
    { expression: "request.headers.all(k, request.headers.exists(j, j == k))", problem: "comprehension inside another" },
    { expression: "signals.anomalies.exists(a, a.split(\"-\").all(p, p != \"\"))", problem: "comprehension inside another" },
    { expression: "request.path.vigil_re2_matches(\"a\")", problem: "vigil_re2_matches" },
    { expression: Array.from({ length: 400 }, (_, i) => `request.path == "/p${i}"`).join(" || "), problem: "maxAstNodes" },
    { expression: deep(40), problem: "maxDepth" },
  ])("refuses $problem", ({ expression, problem }) => {
    const compiled = new ConditionCompiler().compile(expression);
    expect(compiled.ok).toBe(false);
    if (!compiled.ok) expect(compiled.error).toContain(problem);
  });

  it.each([
    "request.path.matches(\"^/v1/[a-z]+$\")",
    "request.path.matches(\"(a+)+$\")",
    "request.path.matches(context.pattern)",
    "signals.anomalies.filter(a, a != \"x\").all(a, a != \"y\")",
    "request.headers.exists(k, k.startsWith(\"x-\")) || signals.anomalies.exists(a, a == \"scan\")",
    deep(20),
  ])("accepts %s", (expression) => {
    expect(new ConditionCompiler().compile(expression).ok).toBe(true);
  });
});

describe("CEL matches runs on RE2", () => {
  const long = "a".repeat(MAX_MATCH_INPUT - 10);
  it.each<{ name: string; expression: string; path: string; result: boolean; context?: Record<string, string> }>([
    { name: "a catastrophic pattern on a long miss", expression: "request.path.matches(\"(a+)+$\")", path: `/${long}!`, result: false },
    { name: "a catastrophic pattern on a long hit", expression: "request.path.matches(\"(a+)+$\")", path: `/${long}`, result: true },
    { name: "RE2 flags (a JS RegExp refuses (?i))", expression: "request.path.matches(\"(?i)^/ADMIN\")", path: "/admin/x", result: true },
    { name: "search, not full match", expression: "request.path.matches(\"min\")", path: "/admin/x", result: true },
    { name: "inside a comprehension", expression: "[\"scanning\"].exists(a, a.matches(\"(?i)^SCAN\"))", path: "/", result: true },
    { name: "a pattern from context", expression: "request.path.matches(context.pattern)", path: "/v1/x", result: true, context: { pattern: "^/v[0-9]/" } },
  ])("$name", ({ expression, path, result, context }) => {
    expect(run(expression, context === undefined ? {} : { context }, path)).toBe(result);
  });

  it.each<{ name: string; expression: string; path: string; context: Record<string, string> }>([
    { name: "an input longer than the bound", expression: "request.path.matches(\"a\")", path: `/${"a".repeat(MAX_MATCH_INPUT)}`, context: {} },
    { name: "a backreference from context", expression: "request.path.matches(context.pattern)", path: "/aa", context: { pattern: "(a)\\1" } },
    { name: "an over-long pattern from context", expression: "request.path.matches(context.pattern)", path: "/aa", context: { pattern: "a".repeat(2000) } },
  ])("is an evaluation error (the rule denies) for $name", ({ expression, path, context }) => {
    expect(() => run(expression, { context }, path)).toThrow(/matches:/);
  });

  it("keeps a bounded number of patterns that are not literals", () => {
    const cache = new RegexCache();
    for (let i = 0; i < MAX_DYNAMIC_PATTERNS * 3; i++) expect(cache.matches(`x${i}`, `^x${i}$`)).toBe(true);
    expect(cache.dynamicCount).toBe(MAX_DYNAMIC_PATTERNS);
    expect(cache.addLiteral("^lit$")).toBeUndefined();
    expect(cache.matches("lit", "^lit$")).toBe(true);
    expect(cache.dynamicCount).toBe(MAX_DYNAMIC_PATTERNS);
  });
});

/** cel-js's own split (node_modules/@marcbachmann/cel-js/lib/functions.js), the reference. */
function celSplit(text: string, separator: string, limit?: number): string[] {
  if (limit === 0) return [];
  const parts = text.split(separator);
  if (limit === undefined || limit < 0 || parts.length <= limit) return parts;
  const limited = parts.slice(0, limit - 1);
  limited.push(parts.slice(limit - 1).join(separator));
  return limited;
}

describe("CEL split is bounded", () => {
  it("gives what cel-js gives while the parts fit", () => {
    const text = fc.array(fc.constantFrom("a", "/", "//", "b", ""), { maxLength: 30 }).map((parts) => parts.join(""));
    const limit = fc.option(fc.integer({ min: -2, max: 12 }), { nil: undefined });
    fc.assert(fc.property(text, fc.constantFrom("/", "//", "", "a", "x"), limit, (input, separator, max) => {
      expect(boundedSplit(input, separator, max === undefined ? undefined : BigInt(max))).toEqual(celSplit(input, separator, max));
    }), { numRuns: 3000 });
  });

  it.each([
    { name: "a path into its segments", expression: "request.path.split(\"/\").size() == 3", path: "/v1/items", result: true },
    { name: "with a limit", expression: "request.path.split(\"/\", 2)[1] == \"v1/items\"", path: "/v1/items", result: true },
    { name: "a limit that keeps a long path whole", expression: "request.path.split(\"/\", 1).size() == 1", path: "/a".repeat(30_000), result: true },
  ])("splits $name", ({ expression, path, result }) => {
    expect(run(expression, {}, path)).toBe(result);
  });

  it("is an evaluation error past the bound, before a comprehension runs over it", () => {
    expect(() => run("request.path.split(\"\").exists(c, request.path.contains(c + \"!\"))", {}, "/".padEnd(60_000, "a"))).toThrow(/split: more than/);
    expect(() => run("request.path.split(\"/\").size() > 0", {}, "/a".repeat(MAX_SPLIT_PARTS))).toThrow(/split: more than/);
  });
});
