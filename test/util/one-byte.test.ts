// Strings read from files are kept one byte per character where they can be (util/one-byte.ts).
// Whether V8 holds a string one or two bytes wide is seen through V8's own serializer, which
// writes the string as it is held: tag '"' for one-byte, 'c' for two-byte.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serialize } from "node:v8";
import fc from "fast-check";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/index.js";
import { parsePolicyDocuments, readPolicyDocuments } from "../../src/policy/documents.js";
import { parseEntities } from "../../src/policy/entities.js";
import { loadSignalsFile } from "../../src/signals/index.js";
import { oneByteString, withOneByteStrings } from "../../src/util/one-byte.js";

const ONE_BYTE_TAG = 0x22;
const TWO_BYTE_TAG = 0x63;

/** How V8 holds `value`: "one" or "two" bytes per character. */
function width(value: string): "one" | "two" {
  // Header: 0xFF and the format version; then the tag.
  const tag = serialize(value)[2];
  if (tag === ONE_BYTE_TAG) return "one";
  if (tag === TWO_BYTE_TAG) return "two";
  throw new Error(`unexpected serializer tag ${String(tag)}`);
}

/**
 * An ASCII string cut from a text with a wider character. Long cuts (13 characters and more) are
 * slices that share the text's two-byte storage on every Node; Node 24 copies shorter ones into
 * one-byte strings of their own.
 */
function wide(ascii: string): string {
  return `${ascii}\u2014`.slice(0, ascii.length);
}

/** Every string value in `value` (keys are V8's shared copies, whatever their width: not ours). */
function strings(value: unknown, out: string[] = []): string[] {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const item of value) strings(item, out);
  else if (typeof value === "object" && value !== null) for (const item of Object.values(value)) strings(item, out);
  return out;
}

const BEYOND_LATIN1 = /[\u0100-\u{10ffff}]/u;

describe("oneByteString", () => {
  it("the test's own probe tells the two widths apart", () => {
    expect(width("staging deploy allowed")).toBe("one");
    expect(width(wide("staging deploy allowed"))).toBe("two");
  });

  it.each([
    ["ASCII cut from a wider text", wide("staging deploy allowed")],
    ["Latin-1 beyond ASCII", wide("café")],
    ["empty", wide("")],
  ])("copies %s into a one-byte string with the same characters", (_, value) => {
    const copy = oneByteString(value);
    expect(copy).toBe(value);
    expect(width(copy)).toBe("one");
  });

  it("leaves a string with a character beyond Latin-1 as it is", () => {
    const value = "deploy \u2014 staging";
    expect(oneByteString(value)).toBe(value);
    expect(width(oneByteString(value))).toBe("two");
  });

  it("keeps the characters of any string", () => {
    fc.assert(fc.property(fc.string({ unit: "binary" }), (value) => {
      const copy = oneByteString(value);
      expect(copy).toBe(value);
      if (!BEYOND_LATIN1.test(value)) expect(width(copy)).toBe("one");
    }), { numRuns: 2000 });
  });
});

describe("withOneByteStrings", () => {
  it("copies any parsed YAML value to an equal one whose strings are one-byte where they can be", () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => {
      // A comment with a wider character makes the whole text, and every value cut from it, wide.
      const parsed: unknown = parseYaml(`# \u2014\n${stringifyYaml(value)}`);
      const copy = withOneByteStrings(parsed);
      expect(copy).toStrictEqual(parsed);
      for (const s of strings(copy)) if (!BEYOND_LATIN1.test(s)) expect(width(s)).toBe("one");
    }), { numRuns: 500 });
  });

  it("makes the values of a two-byte YAML text one-byte", () => {
    const parsed = parseYaml("# \u2014\nrule: { reason: staging deploy allowed, controls: [NHI8] }\nnote: \"\u2014\"\n") as unknown;
    // Short values may already be one-byte copies (Node 24); the long one is a two-byte slice.
    expect(strings(parsed).filter((s) => width(s) === "two")).toContain("staging deploy allowed");
    const copy = withOneByteStrings(parsed);
    expect(copy).toStrictEqual(parsed);
    expect(strings(copy).filter((s) => width(s) === "two")).toEqual(["\u2014"]);
  });

  it("keeps __proto__ an own key and leaves the prototype alone", () => {
    const parsed = parseYaml("__proto__: { polluted: yes }\na: \u2014\n") as Record<string, unknown>;
    const copy = withOneByteStrings(parsed) as Record<string, unknown>;
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect(Object.keys(copy)).toEqual(["__proto__", "a"]);
    expect(Object.getOwnPropertyDescriptor(copy, "__proto__")?.value).toEqual({ polluted: "yes" });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("copies a node reached twice once, cycles included", () => {
    const shared = { name: wide("a shared name, long") };
    const root: Record<string, unknown> = { a: shared, b: shared, list: [shared] };
    root.self = root;
    const copy = withOneByteStrings(root) as Record<string, unknown>;
    expect(copy).not.toBe(root);
    expect(copy.a).toBe(copy.b);
    expect((copy.list as unknown[])[0]).toBe(copy.a);
    expect(copy.self).toBe(copy);
    expect(width((copy.a as { name: string }).name)).toBe("one");
  });

  it("keeps objects that are not plain data as they are", () => {
    const date = new Date(0);
    const map = new Map([["k", "v"]]);
    const copy = withOneByteStrings({ date, map }) as { date: Date; map: Map<string, string> };
    expect(copy.date).toBe(date);
    expect(copy.map).toBe(map);
  });
});

describe("files read at load", () => {
  // Each file carries an em dash in a comment: the whole text is two bytes wide.
  it("a policy's names, reasons and expressions are one-byte", () => {
    const [doc] = parsePolicyDocuments(`# deploy-api \u2014 who may deploy
apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: deploy-api }
spec:
  destinations: ["deploy-api"]
  rules:
    - name: staging-deploy
      sources: ["spiffe://example.org/ns/ci/sa/deployer"]
      when: 'request.method == "POST"'
      outcome: allow
      reason: staging deploy allowed
`, "p.yaml");
    expect(doc).toBeDefined();
    const rule = doc?.manifest.spec.rules[0];
    expect(rule?.reason).toBe("staging deploy allowed");
    const all = strings(doc?.manifest);
    expect(all).toContain("request.method == \"POST\"");
    expect(all.filter((s) => width(s) === "two")).toEqual([]);
  });

  it("a policy with an alias inside itself is refused by the schema, not by a stack overflow", () => {
    const { documents, issues } = readPolicyDocuments(`# \u2014
apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: p, labels: &x { a: *x } }
spec:
  destinations: ["d"]
  rules: []
`, "p.yaml");
    expect(documents).toEqual([]);
    expect(issues.map((issue) => issue.message)).toContain("expected string, got a mapping");
    expect(issues.some((issue) => issue.message.includes("call stack"))).toBe(false);
  });

  it("an entities file's roles and attribute values are one-byte", () => {
    const book = parseEntities(`# entities \u2014 who is who
apiVersion: vigil.dev/v1alpha1
kind: Entities
spec:
  subjects:
    - ids: [alice]
      roles: [payments-approver]
      attributes: { team: payments-platform, regions: [eu-central-1-north] }
`, "e.yaml");
    const entry = book.subject("alice");
    expect(entry?.roles).toEqual(["payments-approver"]);
    expect(strings(entry).filter((s) => width(s) === "two")).toEqual([]);
  });

  it("seed signals and settings are one-byte", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vigil-one-byte-"));
    try {
      const signalsPath = join(dir, "signals.yaml");
      await writeFile(signalsPath, `# seeds \u2014 for the demo
- id: seed-risk-1
  kind: risk
  subject: spiffe://example.org/ns/agents/sa/planner
  source: seed
  observedAt: 2026-01-01T00:00:00Z
  data: { level: high }
`);
      const signals = await loadSignalsFile(signalsPath);
      expect(signals).toHaveLength(1);
      expect(strings(signals).filter((s) => width(s) === "two")).toEqual([]);

      const configPath = join(dir, "vigil.yaml");
      await writeFile(configPath, "# settings \u2014 trust domains\nidentity: { trustDomains: [example.org] }\n");
      const config = loadConfig({ config: configPath }, {});
      expect(config.identity.trustDomains).toEqual(["example.org"]);
      expect(config.identity.trustDomains.map(width)).toEqual(["one"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
