// Glob patterns for sources, paths and destinations, path normal form, and CIDR ranges.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CidrSet, parseCidr } from "../../src/policy/cidr.js";
import { compileGlobs, globProblem, isNormalPath } from "../../src/policy/glob.js";

describe("glob patterns", () => {
  it.each([
    // exact
    { pattern: "/v1/deploy", value: "/v1/deploy", matches: true },
    { pattern: "/v1/deploy", value: "/v1/deploy/", matches: false },
    { pattern: "/v1/deploy", value: "/v1/deployx", matches: false },
    // "*" is exactly one non-empty segment
    { pattern: "/api/tickets/*", value: "/api/tickets/T-1", matches: true },
    { pattern: "/api/tickets/*", value: "/api/tickets/", matches: false },
    { pattern: "/api/tickets/*", value: "/api/tickets", matches: false },
    { pattern: "/api/tickets/*", value: "/api/tickets/T-1/comments", matches: false },
    { pattern: "/v1/hosts/*/quarantine", value: "/v1/hosts/h-42/quarantine", matches: true },
    { pattern: "/v1/hosts/*/quarantine", value: "/v1/hosts/a/b/quarantine", matches: false },
    // "*" inside a segment
    { pattern: "/v*/status", value: "/v2/status", matches: true },
    { pattern: "/v*/status", value: "/v/status", matches: true },
    { pattern: "/v*/status", value: "/x/v2/status", matches: false },
    // "/**" is the prefix and everything below
    { pattern: "/v1/**", value: "/v1", matches: true },
    { pattern: "/v1/**", value: "/v1/", matches: true },
    { pattern: "/v1/**", value: "/v1/a/b/c", matches: true },
    { pattern: "/v1/**", value: "/v10", matches: false },
    { pattern: "/v1/**", value: "/v2/a", matches: false },
    { pattern: "/*/reports/**", value: "/eu/reports/2025/q1.csv", matches: true },
    { pattern: "/*/reports/**", value: "/eu/west/reports/q1.csv", matches: false },
    // regex characters are literal
    { pattern: "/a.b/*", value: "/axb/c", matches: false },
    { pattern: "/a+(b)/*", value: "/a+(b)/c", matches: true },
    // SPIFFE IDs
    { pattern: "spiffe://example.org/ns/ci/sa/deployer", value: "spiffe://example.org/ns/ci/sa/deployer", matches: true },
    { pattern: "spiffe://example.org/ns/ci/sa/*", value: "spiffe://example.org/ns/ci/sa/deployer", matches: true },
    { pattern: "spiffe://example.org/ns/*/sa/deployer", value: "spiffe://example.org/ns/ci/sa/deployer", matches: true },
    { pattern: "spiffe://example.org/ns/ci/**", value: "spiffe://example.org/ns/ci/sa/deployer", matches: true },
    { pattern: "spiffe://example.org/ns/ci/**", value: "spiffe://example.org/ns/cid/sa/deployer", matches: false },
    { pattern: "spiffe://example.org/ns/ci/**", value: "spiffe://evil.org/ns/ci/sa/deployer", matches: false },
    { pattern: "spiffe://*/ns/ci/sa/deployer", value: "spiffe://other.org/ns/ci/sa/deployer", matches: true },
    // any
    { pattern: "**", value: "spiffe://example.org/x", matches: true },
    { pattern: "*", value: "anything/at/all", matches: true },
    { pattern: "**", value: "", matches: false },
    { pattern: "spiffe://example.org/**", value: "", matches: false },
  ])("$pattern against $value → $matches", ({ pattern, value, matches }) => {
    expect(globProblem(pattern, pattern.startsWith("spiffe") ? "source" : "path")).toBeUndefined();
    expect(compileGlobs([pattern])(value)).toBe(matches);
  });

  it("matches any pattern of a list", () => {
    const matcher = compileGlobs(["/a", "/b/*", "/c/**", "/d*/x"]);
    expect(["/a", "/b/1", "/c", "/c/1/2", "/dd/x"].map(matcher)).toEqual([true, true, true, true, true]);
    expect(["/b", "/b/1/2", "/e", "/d/y"].map(matcher)).toEqual([false, false, false, false]);
  });

  it.each([
    { pattern: "/v1/**/x", kind: "path", problem: "only allowed as the last segment" },
    { pattern: "/v1/a**", kind: "path", problem: "must be a whole segment" },
    { pattern: "v1/deploy", kind: "path", problem: "must start with" },
    { pattern: "/v1/x?y=1", kind: "path", problem: "without the query string" },
    { pattern: "/v1/ x", kind: "path", problem: "whitespace" },
    { pattern: "example.org/ns/ci", kind: "source", problem: "SPIFFE ID" },
  ] as const)("refuses $pattern", ({ pattern, kind, problem }) => {
    expect(globProblem(pattern, kind)).toContain(problem);
  });

  it.each([
    { path: "/api/tickets/T-1", normal: true },
    { path: "/", normal: true },
    { path: "/api/./tickets", normal: false },
    { path: "/api/tickets/../admin", normal: false },
    { path: "/api/tickets/..", normal: false },
    { path: "/api//tickets", normal: false },
    { path: "/api/%2e%2e/admin", normal: false },
    { path: "/api%2Fadmin", normal: false },
    { path: "/api\\admin", normal: false },
    { path: "api/tickets", normal: false },
    { path: "", normal: false },
    { path: "/api/v1.2/file.tar.gz", normal: true },
  ])("path $path is normal: $normal", ({ path, normal }) => {
    expect(isNormalPath(path)).toBe(normal);
  });
});

describe("CIDR ranges", () => {
  it.each([
    { range: "10.20.0.0/16", ip: "10.20.7.9", inside: true },
    { range: "10.20.0.0/16", ip: "10.21.0.1", inside: false },
    { range: "10.20.0.0/16", ip: "::ffff:10.20.7.9", inside: true },
    { range: "0.0.0.0/0", ip: "203.0.113.5", inside: true },
    { range: "0.0.0.0/0", ip: "2001:db8::1", inside: false },
    { range: "192.168.1.10", ip: "192.168.1.10", inside: true },
    { range: "192.168.1.10", ip: "192.168.1.11", inside: false },
    { range: "255.255.255.255/32", ip: "255.255.255.255", inside: true },
    { range: "128.0.0.0/1", ip: "200.1.1.1", inside: true },
    { range: "128.0.0.0/1", ip: "100.1.1.1", inside: false },
    { range: "fd00::/8", ip: "fd12:3456::1", inside: true },
    { range: "fd00::/8", ip: "fe80::1", inside: false },
    { range: "2001:db8::/32", ip: "2001:db8:ffff::1", inside: true },
    { range: "2001:db8::/32", ip: "2001:db9::1", inside: false },
    { range: "2001:db8:0:0:0:0:0:1/128", ip: "2001:db8::1", inside: true },
    { range: "::/0", ip: "::1", inside: true },
    { range: "10.0.0.0/8", ip: "", inside: false },
    { range: "10.0.0.0/8", ip: "010.0.0.1", inside: false },
    { range: "10.0.0.0/8", ip: "10.0.0", inside: false },
    { range: "10.0.0.0/8", ip: "10.0.0.256", inside: false },
    { range: "fd00::/8", ip: "fd00::1%eth0", inside: false },
    { range: "fd00::/8", ip: "fd00:::1", inside: false },
  ])("$ip in $range: $inside", ({ range, ip, inside }) => {
    expect(new CidrSet([range]).has(ip)).toBe(inside);
  });

  it.each(["10.0.0.0/33", "10.0.0/8", "fd00::/129", "10.0.0.0/", "10.0.0.0/08", "::1::2/64", "host.example/8"])("refuses %s", (range) => {
    expect(parseCidr(range)).toBeUndefined();
  });
});

// The RegExp the matcher replaced (src/policy/glob.ts before hardening #8): the reference for
// what a glob means. It backtracks on long values, so it is only run on short ones here.
function referenceGlobs(patterns: readonly string[]): (value: string) => boolean {
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const segment = (text: string) => (text === "*" ? "[^/]+" : text.split("*").map(escape).join("[^/]*"));
  if (patterns.some((pattern) => pattern === "*" || pattern === "**")) return (value) => value !== "";
  const sources = patterns.map((pattern) => {
    const segments = pattern.split("/");
    const rest = segments[segments.length - 1] === "**";
    return (rest ? segments.slice(0, -1) : segments).map(segment).join("/") + (rest ? "(?:/.*)?" : "");
  });
  const regex = new RegExp(`^(?:${sources.join("|")})$`, "s");
  return (value) => value !== "" && regex.test(value);
}

describe("glob matcher against the RegExp it replaced", () => {
  const piece = fc.constantFrom("a", "b", ".", "/", "*", "**", "/**", "\n");
  const pattern = fc.array(piece, { minLength: 1, maxLength: 8 }).map((parts) => parts.join(""));
  const value = fc.array(fc.constantFrom("a", "b", ".", "/", "ab", "\n"), { maxLength: 12 }).map((parts) => parts.join(""));

  it("agrees on random patterns and values", () => {
    fc.assert(fc.property(fc.array(pattern, { minLength: 1, maxLength: 3 }), value, (patterns, input) => {
      expect(compileGlobs(patterns)(input)).toBe(referenceGlobs(patterns)(input));
    }), { numRuns: 5000 });
  });

  it("agrees on values built from the pattern (mostly matching ones)", () => {
    const filled = fc.tuple(pattern, fc.array(fc.constantFrom("", "a", "b.", "x/y"), { minLength: 8, maxLength: 8 }));
    fc.assert(fc.property(filled, ([glob, fills]) => {
      let index = 0;
      const input = glob.replace(/\*+/g, () => fills[index++ % fills.length] ?? "");
      expect(compileGlobs([glob])(input)).toBe(referenceGlobs([glob])(input));
    }), { numRuns: 3000 });
  });

  // Outcomes only: how long these take is measured in bench/stalls.bench.ts.
  it.each([
    { pattern: "/files/*.*.*", value: `/files/${"a".repeat(60_000)}`, matches: false },
    { pattern: "/files/*.*.*", value: `/files/${"a.".repeat(30_000)}`, matches: true },
    { pattern: "/files/*.*.*", value: `/files/${".".repeat(60_000)}/`, matches: false },
    { pattern: "*.*.svc.cluster.local", value: `${".".repeat(60_000)}x`, matches: false },
    { pattern: "*.*.svc.cluster.local", value: `${"a.".repeat(30_000)}svc.cluster.local`, matches: true },
    { pattern: "/a/*/*/*/b", value: "/a" + "/x".repeat(30_000), matches: false },
    { pattern: "/v1/*/**", value: "/v1/x" + "/y".repeat(30_000), matches: true },
  ])("decides $pattern against a 60 KB value", ({ pattern, value, matches }) => {
    expect(compileGlobs([pattern])(value)).toBe(matches);
  });
});
