// The CheckResponse encoder and upstreamHeaders against frozen copies of their implementations
// from before the #9 rewrite (test/support/legacy-encode/): every decision in a table built to
// reach each branch and each varint boundary, and random decisions, must give the same bytes.
// Byte-identical output is the contract: Envoy, the e2e wire tests and any capture taken before
// the rewrite all see exactly what they saw.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Decision, Outcome } from "../../../src/model/index.js";
import {
  encodeCheckResponse,
  encodeFailClosed,
  encodeTransportRefusal,
  STATIC_FAIL_CLOSED,
} from "../../../src/transport/envoy/index.js";
import { upstreamHeaders } from "../../../src/transport/envoy/upstream-headers.js";
import * as legacy from "../../support/legacy-encode/encode.js";
import { upstreamHeaders as legacyUpstreamHeaders } from "../../support/legacy-encode/upstream-headers.js";
import { decodeWithEnvoyProtos } from "../../support/envoy-client.js";

const OUTCOMES = ["allow", "deny", "revoke", "step_up", "delay", "maybe"] as Outcome[];

function decision(overrides: Partial<Decision> = {}): Decision {
  return {
    id: "0b0e5a5e-6f61-4b7a-9a0e-1b2c3d4e5f60", outcome: "allow", rule: "ci-may-deploy", reason: "allowed",
    caller: "spiffe://example.org/ns/ci/sa/release-pipeline", trustDomain: "example.org",
    credentialFingerprint: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    headersToRemove: [], durationNs: 0, ...overrides,
  };
}

/** Strings that take every path of sizing and writing: empty, ASCII, multi-byte, surrogates, controls, JSON escapes. */
const SAMPLES = [
  "", "a", "x-vigil-caller", "é", "日本語", "🔒 locked", "\ud800", "a\udc00b", "\ud83d", "tab\there", "line\nbreak",
  "nul\u0000", "del\u007f", "quote\"back\\slash", "</script>", "\u2028\u2029", "é".repeat(64), "é".repeat(8192),
];
/** ASCII lengths on both sides of the one-, two- and three-byte varint limits (127/128, 16383/16384). */
const BOUNDARY_LENGTHS = [126, 127, 128, 129, 16382, 16383, 16384, 16385];
const STRING_FIELDS = ["id", "rule", "reason", "caller", "trustDomain", "credentialFingerprint", "approvalId"] as const;

const REQUEST_HEADERS: Readonly<Record<string, string>>[] = [
  {},
  { ":path": "/", "host": "h", "x-request-id": "r" },
  { "x-vigil-caller": "forged", "x-vigil-approval-id": "apr_1", "x-vigil-step-up": "approval", "x-other": "1" },
  Object.assign(Object.create(null) as Record<string, string>, { "x-vigil-forged": "1", "__proto__": "x" }),
];
const HEADERS_TO_REMOVE: string[][] = [
  [], ["x-forwarded-client-cert"], ["X-Forwarded-Client-Cert", "x-forwarded-client-cert"], [":path", "host", "bad name", "authorization"],
  ["x-vigil-caller", "X-VIGIL-CALLER", "x-vigil-decision-id"], ["é", ""],
];
const RETRY_AFTER = [undefined, 0, -1, 0.2, 1, 1.5, 59.9999, 1e6, 2 ** 31, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];

interface Row {
  readonly name: string;
  readonly decision: Decision;
  readonly headers: Readonly<Record<string, string>>;
}

function table(): Row[] {
  const rows: Row[] = [];
  for (const outcome of OUTCOMES) {
    const base = decision({ outcome, approvalId: "apr_1", retryAfterSeconds: 30, controls: ["two-person"] });
    rows.push({ name: `${outcome} plain`, decision: decision({ outcome }), headers: {} });
    rows.push({ name: `${outcome} with approval and retry-after`, decision: base, headers: {} });
    for (const field of STRING_FIELDS) {
      const values = [...SAMPLES, ...BOUNDARY_LENGTHS.map((n) => "v".repeat(n))];
      for (const value of values) {
        rows.push({ name: `${outcome} ${field}=${JSON.stringify(value.slice(0, 12))}…(${String(value.length)})`, decision: { ...base, [field]: value }, headers: {} });
      }
    }
    for (const headers of REQUEST_HEADERS) {
      for (const headersToRemove of HEADERS_TO_REMOVE) {
        rows.push({ name: `${outcome} headers ${JSON.stringify(Object.keys(headers))} remove ${JSON.stringify(headersToRemove)}`, decision: { ...base, headersToRemove }, headers });
        rows.push({ name: `${outcome} no identity, headers ${JSON.stringify(Object.keys(headers))} remove ${JSON.stringify(headersToRemove)}`, decision: { ...base, caller: "", trustDomain: "", credentialFingerprint: "\n", headersToRemove }, headers });
      }
    }
    for (const retryAfterSeconds of RETRY_AFTER) {
      rows.push({ name: `${outcome} retry-after ${String(retryAfterSeconds)}`, decision: { ...base, retryAfterSeconds }, headers: {} });
    }
  }
  // Every length of one value across the 127/128 and 16383/16384 limits of each enclosing length
  // (header value, header option, ok_response / denied_response, body, metadata).
  for (let n = 0; n <= 300; n++) {
    for (const outcome of ["allow", "deny", "step_up"] as const) {
      rows.push({ name: `${outcome} caller and reason of ${String(n)} bytes`, decision: decision({ outcome, caller: "c".repeat(n), reason: "r".repeat(n), approvalId: "a".repeat(n) }), headers: {} });
    }
  }
  for (let n = 16_000; n <= 16_400; n += 3) {
    rows.push({ name: `allow id of ${String(n)} bytes`, decision: decision({ id: "i".repeat(n) }), headers: {} });
    rows.push({ name: `deny reason of ${String(n)} bytes`, decision: decision({ outcome: "deny", reason: "r".repeat(n) }), headers: {} });
  }
  return rows;
}

describe("encoder: same bytes as before the rewrite", () => {
  const rows = table();

  it(`encodes all ${String(rows.length)} table rows byte for byte as the previous encoder did`, () => {
    const mismatches: string[] = [];
    for (const row of rows) {
      const expected = legacy.encodeCheckResponse(row.decision, row.headers);
      const actual = encodeCheckResponse(row.decision, row.headers);
      if (!actual.equals(expected)) mismatches.push(row.name);
    }
    expect(mismatches).toEqual([]);
  });

  it("the table reaches every outcome's wire shape (a check that the rows are not all alike)", () => {
    const shapes = new Set(rows.map((row) => {
      const res = decodeWithEnvoyProtos(encodeCheckResponse(row.decision, row.headers));
      return `${String(res.status?.code ?? 0)}/${res.denied_response?.status?.code ?? "ok"}/${String(res.ok_response?.headers_to_remove?.length ?? 0)}`;
    }));
    expect([...shapes].sort()).toEqual(expect.arrayContaining(["0/ok/0", "0/ok/3", "0/ok/6", "7/Forbidden/0", "7/TooManyRequests/0"]));
  });

  it("gives the same bytes when callers repeat (the encoder keeps recent callers' headers) and when they differ in one field", () => {
    const copy = (s: string): string => Buffer.from(s, "utf8").toString("utf8");
    const base = decision();
    const callers: Decision[] = [
      base,
      { ...base, credentialFingerprint: `${base.credentialFingerprint}0` },
      { ...base, trustDomain: "example.com" },
      { ...base, caller: `${base.caller}/x` },
      { ...base, caller: "" },
      { ...base, caller: "bad\nvalue" },
      { ...base, trustDomain: "", credentialFingerprint: "" },
      { ...base, caller: "é", trustDomain: "🔒" },
    ];
    const mismatches: number[] = [];
    // Every caller in turn (more than the encoder keeps), then runs of one, with equal copies of the strings.
    const order = [...Array.from({ length: 200 }, (_, i) => i % callers.length), ...Array.from({ length: 200 }, (_, i) => Math.floor(i / 25))];
    order.forEach((k, i) => {
      const d = callers[k] ?? base;
      const fresh = { ...d, id: `d-${String(i)}`, caller: copy(d.caller), trustDomain: copy(d.trustDomain), credentialFingerprint: copy(d.credentialFingerprint) };
      if (!encodeCheckResponse(fresh).equals(legacy.encodeCheckResponse(fresh))) mismatches.push(i);
    });
    expect(mismatches).toEqual([]);
  });

  it("decides the upstream headers as before for every table row", () => {
    for (const row of rows) expect(upstreamHeaders(row.decision, row.headers)).toEqual(legacyUpstreamHeaders(row.decision, row.headers));
  });

  it.each([
    ["encodeFailClosed", (id: string) => encodeFailClosed(id), (id: string) => legacy.encodeFailClosed(id)],
    ["oversized", (id: string) => encodeTransportRefusal("oversized", id, 4096), (id: string) => legacy.encodeTransportRefusal("oversized", id, 4096)],
    ["late", (id: string) => encodeTransportRefusal("late", id, 4096), (id: string) => legacy.encodeTransportRefusal("late", id, 4096)],
    ["transport", (id: string) => encodeTransportRefusal("transport", id, 4096), (id: string) => legacy.encodeTransportRefusal("transport", id, 4096)],
  ])("%s: same bytes for every id", (_name, fresh, old) => {
    for (const id of [...SAMPLES, ...BOUNDARY_LENGTHS.map((n) => "d".repeat(n))]) expect(fresh(id).equals(old(id))).toBe(true);
  });

  it("the static fail-closed answer is unchanged", () => {
    expect(STATIC_FAIL_CLOSED.equals(legacy.STATIC_FAIL_CLOSED)).toBe(true);
  });
});

const anyText = fc.string({
  unit: fc.oneof(fc.constant("\ud800"), fc.constant("\udc00"), fc.constant("\u0007"), fc.constant("\t"), fc.constant("\""), fc.constant("\\"), fc.string({ unit: "binary", minLength: 1, maxLength: 1 }), fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 1 })),
  maxLength: 300,
});
const headerName = fc.oneof(
  fc.constantFrom("x-vigil-caller", "x-vigil-decision-id", "x-vigil-trust-domain", "x-vigil-credential-fingerprint", "x-vigil-step-up", "host", ":path", "X-Vigil-Caller"),
  fc.string({ unit: fc.constantFrom(..."abcx-vigl:_ Aé".split("")), maxLength: 20 }),
);
const randomDecision: fc.Arbitrary<Decision> = fc.record({
  id: anyText,
  outcome: fc.constantFrom<Outcome>(...OUTCOMES),
  rule: anyText,
  reason: anyText,
  caller: anyText,
  trustDomain: anyText,
  credentialFingerprint: anyText,
  retryAfterSeconds: fc.option(fc.oneof(fc.double(), fc.integer({ min: -10, max: 1e7 })), { nil: undefined }),
  approvalId: fc.option(anyText, { nil: undefined }),
  headersToRemove: fc.array(fc.oneof(anyText, headerName), { maxLength: 5 }),
  durationNs: fc.nat(),
  controls: fc.option(fc.array(anyText, { maxLength: 3 }), { nil: undefined }),
}, { requiredKeys: ["id", "outcome", "rule", "reason", "caller", "trustDomain", "credentialFingerprint", "headersToRemove", "durationNs"] });
const requestHeaders = fc.dictionary(headerName, anyText, { maxKeys: 8 });

describe("encoder: same bytes as before the rewrite, random decisions", () => {
  it("encodes every random decision and request headers byte for byte as the previous encoder did", () => {
    fc.assert(fc.property(randomDecision, requestHeaders, (d, headers) => {
      expect(upstreamHeaders(d, headers)).toEqual(legacyUpstreamHeaders(d, headers));
      expect(encodeCheckResponse(d, headers).toString("hex")).toBe(legacy.encodeCheckResponse(d, headers).toString("hex"));
    }), { numRuns: 3000 });
  });
});
