// The policy layer's caches are bounded whatever the input: inCidr ranges (a CEL expression can
// build ranges from request data), a change window's quarter-hour offsets (every distinct "now"
// adds one) and the rule lists' remembered source answers (every distinct caller adds one). Each row feeds far more distinct keys than the bound and checks the size.

import { describe, expect, it } from "vitest";
import { CIDR_CACHE_LIMIT, CidrCache } from "../../src/policy/cidr.js";
import { ChangeWindow, OFFSET_CACHE_LIMIT } from "../../src/policy/change-window.js";
import { SOURCE_MEMO_CALLERS, SOURCE_MEMO_MAX_ID, SourceMemo, type SourceTest } from "../../src/policy/source-memo.js";

describe("policy cache bounds", () => {
  it.each([
    { limit: CIDR_CACHE_LIMIT, ranges: 5_000 },
    { limit: 8, ranges: 100 },
  ])("CidrCache($limit) holds at most $limit ranges after $ranges distinct ones, and still answers", ({ limit, ranges }) => {
    const cache = new CidrCache(limit);
    for (let i = 0; i < ranges; i++) {
      const range = `10.${String((i >> 8) & 255)}.${String(i & 255)}.0/24`;
      expect(cache.contains(`10.${String((i >> 8) & 255)}.${String(i & 255)}.7`, range)).toBe(true);
      expect(cache.contains("192.168.0.1", range)).toBe(false);
    }
    expect(cache.size).toBe(limit);
  });

  it.each([
    { timezone: "Europe/Berlin", quarters: 1_000 },
    { timezone: "America/New_York", quarters: 200 },
  ])("a $timezone change window remembers at most OFFSET_CACHE_LIMIT offsets over $quarters quarter hours", ({ timezone, quarters }) => {
    const window = new ChangeWindow({ timezone, days: ["mon", "tue", "wed", "thu", "fri"], start: "09:00", end: "17:00" });
    const start = Date.parse("2025-03-01T00:00:00Z");
    let largest = 0;
    for (let q = 0; q < quarters; q++) {
      window.secondsUntilOpen(start + q * 15 * 60_000);
      largest = Math.max(largest, window.cachedOffsets);
    }
    expect(largest).toBeGreaterThan(0);
    expect(largest).toBeLessThanOrEqual(OFFSET_CACHE_LIMIT);
  });

  it("a rule list remembers the source answers of at most SOURCE_MEMO_CALLERS callers, none past SOURCE_MEMO_MAX_ID, and answers each right", () => {
    // Two rules: one admits callers in namespace a, one every caller (no sources).
    const rules: SourceTest[] = [
      { hasSources: true, admits: (id) => id.startsWith("spiffe://example.org/ns/a/") },
      { hasSources: false, admits: () => true },
    ];
    const memo = new SourceMemo(rules);
    let largest = 0;
    for (let i = 0; i < 5_000; i++) {
      const id = `spiffe://example.org/ns/${i % 2 === 0 ? "a" : "b"}/sa/w${String(i)}`;
      expect([...memo.admitted(id)]).toEqual([i % 2 === 0 ? 1 : 0, 1]);
      // Coming back while remembered gives the same answer.
      expect([...memo.admitted(id)]).toEqual([i % 2 === 0 ? 1 : 0, 1]);
      largest = Math.max(largest, memo.size);
    }
    expect(largest).toBe(SOURCE_MEMO_CALLERS);
    const before = memo.size;
    const long = `spiffe://example.org/ns/a/sa/${"x".repeat(SOURCE_MEMO_MAX_ID)}`;
    expect([...memo.admitted(long)]).toEqual([1, 1]);
    expect(memo.size).toBe(before);
    // A list whose rules have no sources remembers nothing.
    const open = new SourceMemo([{ hasSources: false, admits: () => true }]);
    expect([...open.admitted("spiffe://example.org/ns/a/sa/x")]).toEqual([1]);
    expect(open.size).toBe(0);
  });
});
