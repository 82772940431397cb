// hasPrefix is startsWith by another route (lastIndexOf at position 0): the same answer for any
// two strings, flat, sliced or concatenated, empty or not.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hasPrefix } from "../../src/util/prefix.js";

describe("hasPrefix", () => {
  it("answers as startsWith for any value and prefix", () => {
    const text = fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.constantFrom("", "/", "spiffe://example.org/ns/a/sa/"));
    fc.assert(fc.property(text, text, fc.nat(8), (value, prefix, cut) => {
      expect(hasPrefix(value, prefix)).toBe(value.startsWith(prefix));
      // A prefix of the value itself (a slice), and the value with the prefix in front of it.
      const own = value.slice(0, cut);
      expect(hasPrefix(value, own)).toBe(true);
      expect(hasPrefix(`${prefix}${value}`, prefix)).toBe(true);
    }), { numRuns: 3000 });
  });

  it("looks at position 0 only", () => {
    expect(hasPrefix("/v1/api/v1/", "/api/")).toBe(false);
    expect(hasPrefix("a", "ab")).toBe(false);
    expect(hasPrefix("", "")).toBe(true);
  });
});
