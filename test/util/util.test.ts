// The shared helpers every layer uses: bearer-token matching, zod issue paths, the record guard.

import { describe, expect, it } from "vitest";
import { z } from "zod";
import { bearerToken, holdSecrets, matchSecret } from "../../src/util/bearer.js";
import { isRecord } from "../../src/util/guards.js";
import { describeIssues, formatZodError, issuePath } from "../../src/util/zod.js";

describe("bearer tokens", () => {
  it.each([
    ["Bearer abc", "abc"],
    ["bearer abc", "abc"],
    ["Bearer   abc  ", "abc"],
    ["Bearer", undefined],
    ["Bearer ", undefined],
    ["Bearer a b", undefined],
    ["Basic abc", undefined],
    ["abc", undefined],
    [undefined, undefined],
  ])("%j carries %j", (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });

  it("grants what the matching secret grants, and nothing for any other token", () => {
    const held = holdSecrets([["s3cret-one", "alice"], ["s3cret-two", "bob"]] as const);
    expect(matchSecret("s3cret-one", held)).toBe("alice");
    expect(matchSecret("s3cret-two", held)).toBe("bob");
    expect(matchSecret("s3cret-on", held)).toBeUndefined();
    expect(matchSecret("", held)).toBeUndefined();
    expect(matchSecret("s3cret-one", [])).toBeUndefined();
    // Held as digests only: the secret is nowhere in what is kept.
    expect(JSON.stringify(held)).not.toContain("s3cret");
  });
});

describe("zod issues", () => {
  const schema = z.strictObject({ a: z.object({ b: z.array(z.number()) }), c: z.string() });
  const failed = schema.safeParse({ a: { b: [1, "x"] }, c: 3 });
  if (failed.success) throw new Error("expected a failure");

  it("names each issue by its path", () => {
    expect(describeIssues(failed.error.issues)).toEqual([
      expect.stringMatching(/^a\.b\.1: /),
      expect.stringMatching(/^c: /),
    ]);
    expect(formatZodError(failed.error)).toMatch(/^a\.b\.1: .+; c: .+$/);
  });

  it.each([
    { path: [], name: undefined, prefix: "", out: "(root)" },
    { path: ["a", 0, "b"], name: undefined, prefix: "", out: "a.0.b" },
    { path: ["a"], name: undefined, prefix: "signals[2]", out: "signals[2].a" },
    { path: [], name: undefined, prefix: "body", out: "body" },
    { path: ["ok", "sk-live-secret"], name: (p: PropertyKey) => (p === "ok" ? "ok" : "(field)"), prefix: "", out: "ok.(field)" },
  ])("issuePath $path → $out", ({ path, name, prefix, out }) => {
    expect(issuePath(path, name, prefix)).toBe(out);
  });
});

describe("isRecord", () => {
  it.each([
    [{}, true], [{ a: 1 }, true], [Object.create(null), true],
    [null, false], [[], false], ["x", false], [1, false], [undefined, false],
  ])("%j → %s", (value, expected) => {
    expect(isRecord(value)).toBe(expected);
  });
});
