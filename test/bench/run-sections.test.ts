// `npm run bench` rewrites only the generated part of BENCHMARKS.md (between the bench:run
// markers) and keeps the hand-written sections around it byte for byte, or refuses.

import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GENERATED_BEGIN as B, GENERATED_END as E, spliceGenerated } from "../../bench/lib.js";

/** The text before the begin marker (included) and from the end marker on; throws if either is missing. */
function outside(text: string): [string, string] {
  const begin = text.indexOf(B);
  const end = text.indexOf(E);
  if (begin === -1 || end === -1) throw new Error("markers missing");
  return [text.slice(0, begin + B.length), text.slice(end)];
}

function count(text: string, marker: string): number {
  return text.split(marker).length - 1;
}

describe("spliceGenerated writes the new part between the markers", () => {
  const cases: { name: string; doc: string; body: string; text: string }[] = [
    {
      name: "replaces the old part and keeps the sections around it",
      doc: `# Benchmarks\n\n${B}\nold figures\n\n${E}\n\n## Hardening figures (issue #8)\nby hand\n`,
      body: "## Results\n\n| a | 1 |\n",
      text: `# Benchmarks\n\n${B}\n## Results\n\n| a | 1 |\n\n${E}\n\n## Hardening figures (issue #8)\nby hand\n`,
    },
    {
      name: "fills markers that sit on one line",
      doc: `top ${B}${E} bottom`,
      body: "new",
      text: `top ${B}\nnew\n\n${E} bottom`,
    },
    {
      name: "empties the part when the body is empty",
      doc: `a\n${B}\nold\n${E}\nb`,
      body: "",
      text: `a\n${B}\n${E}\nb`,
    },
    {
      name: "writes a CRLF file's part with CRLF and leaves the rest alone",
      doc: `# T\r\n${B}\r\nold\r\n${E}\r\n## by hand\r\nmixed\nending\n`,
      body: "one\ntwo\r\nthree\n\n",
      text: `# T\r\n${B}\r\none\r\ntwo\r\nthree\r\n\r\n${E}\r\n## by hand\r\nmixed\nending\n`,
    },
    {
      name: "writes an LF file's part with LF even when the body has CRLF",
      doc: `# T\n${B}\n${E}\n`,
      body: "one\r\ntwo\r\n",
      text: `# T\n${B}\none\ntwo\n\n${E}\n`,
    },
    {
      name: "keeps blank lines at the start of the body",
      doc: `${B}${E}`,
      body: "\n\nx",
      text: `${B}\n\n\nx\n\n${E}`,
    },
  ];
  it.each(cases)("$name", ({ doc, body, text }) => {
    expect(spliceGenerated(doc, body)).toEqual({ ok: true, text });
  });
});

describe("spliceGenerated refuses when it cannot tell what is generated", () => {
  const cases: { name: string; doc: string; body?: string; reason: RegExp }[] = [
    { name: "no markers at all", doc: "# Benchmarks\n\n## Hardening figures\n", reason: /once each, found them 0 and 0 times/ },
    { name: "begin marker missing", doc: `x\n${E}\ny`, reason: /found them 0 and 1 times/ },
    { name: "end marker missing", doc: `x\n${B}\ny`, reason: /found them 1 and 0 times/ },
    { name: "begin marker twice", doc: `${B}\na\n${B}\nb\n${E}`, reason: /found them 2 and 1 times/ },
    { name: "end marker twice", doc: `${B}\na\n${E}\nb\n${E}`, reason: /found them 1 and 2 times/ },
    { name: "nested pairs", doc: `${B}\n${B}\nx\n${E}\n${E}`, reason: /found them 2 and 2 times/ },
    { name: "two pairs one after the other", doc: `${B}\n${E}\n${B}\n${E}`, reason: /found them 2 and 2 times/ },
    { name: "end before begin", doc: `hand\n${E}\nmiddle\n${B}\nhand`, reason: /comes before/ },
    { name: "a body that contains a marker", doc: `${B}\n${E}`, body: `x ${E} y`, reason: /contains a marker/ },
  ];
  it.each(cases)("$name", ({ doc, body, reason }) => {
    const spliced = spliceGenerated(doc, body ?? "new");
    expect(spliced.ok).toBe(false);
    if (!spliced.ok) expect(spliced.reason).toMatch(reason);
  });
});

describe("BENCHMARKS.md as committed", () => {
  const doc = readFileSync(new URL("../../BENCHMARKS.md", import.meta.url), "utf8");
  const spliced = spliceGenerated(doc, "## Goals\n\nstand-in for a run\n");
  const [before, after] = outside(doc);

  it("takes a bench run and keeps everything outside the markers", () => {
    expect(spliced.ok).toBe(true);
    if (!spliced.ok) return;
    expect(outside(spliced.text)).toEqual([before, after]);
  });

  it("has the generated sections inside the markers and the hand-written ones outside", () => {
    const inside = doc.slice(before.length, doc.length - after.length);
    for (const heading of ["## Goals", "## For comparison", "## Results"]) expect(inside).toContain(`\n${heading}\n`);
    expect(before.startsWith("# Benchmarks\n")).toBe(true);
    for (const heading of ["## Hardening figures", "## Issue #9 figures", "## Revocation notices", "## Behaviour baselines",
      "## Policy rollout", "## Cluster", "## Soak", "## Where the Check time goes", "## AuthZEN decision API"]) {
      expect(after).toContain(`\n${heading}`);
    }
  });
});

// Text biased towards what matters here: line endings, marker fragments and the markers themselves.
const piece = fc.oneof(
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.constantFrom("\n", "\r\n", "\r", "## Soak\n", "<!--", "-->", "<!-- bench:run", " begin -->", " end -->", "| a | 1 |\n"),
);
const markerFree = fc.array(piece, { maxLength: 12 }).map((parts) => parts.join(""))
  .filter((s) => !s.includes(B) && !s.includes(E));
const anyDoc = fc.array(fc.oneof(piece, fc.constant(B), fc.constant(E)), { maxLength: 16 }).map((parts) => parts.join(""));

describe("spliceGenerated, for any input", () => {
  it("changes nothing outside a well-placed pair of markers", () => {
    fc.assert(fc.property(markerFree, markerFree, markerFree, markerFree, (prefix, middle, suffix, body) => {
      const spliced = spliceGenerated(prefix + B + middle + E + suffix, body);
      expect(spliced.ok).toBe(true);
      if (!spliced.ok) return;
      expect(spliced.text.startsWith(prefix + B)).toBe(true);
      expect(spliced.text.endsWith(E + suffix)).toBe(true);
      expect(count(spliced.text, B)).toBe(1);
      expect(count(spliced.text, E)).toBe(1);
    }), { numRuns: 2000 });
  });

  it("either keeps the outside text exactly or refuses, and a second run with the same body changes nothing", () => {
    fc.assert(fc.property(anyDoc, markerFree, (doc, body) => {
      const spliced = spliceGenerated(doc, body);
      const placeable = count(doc, B) === 1 && count(doc, E) === 1 && doc.indexOf(B) < doc.indexOf(E);
      expect(spliced.ok).toBe(placeable);
      if (!spliced.ok) return;
      expect(outside(spliced.text)).toEqual(outside(doc));
      expect(spliceGenerated(spliced.text, body)).toEqual(spliced);
    }), { numRuns: 2000 });
  });
});
