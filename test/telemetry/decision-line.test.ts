// The decision line as it reaches stdout (createDecisionLog through a LineWriter that reuses its
// buffers) against the string builder as it was, kept here: the bytes must stay the same, for
// ordinary lines and for every value that needs escaping, is not ASCII, or is malformed UTF-16.

import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Writable } from "node:stream";
import { createDecisionLog, createLogger, MAX_PENDING_DECISION_LINES, type DecisionLine } from "../../src/telemetry/index.js";
import { LineWriter } from "../../src/telemetry/line-writer.js";

// --- The string builder as it was before the in-place encoder (src/telemetry/decision-log.ts). ---
// eslint-disable-next-line no-control-regex -- as it was
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u2028\u2029]/;
function list(values: readonly string[]): string {
  return values.length === 0 ? "[]" : JSON.stringify(values);
}
function quote(value: string): string {
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
}
function oldLine(line: DecisionLine, time: string, prefix: string): string {
  const s = quote;
  return `{"level":"info","time":"${time}"${prefix},"decision_id":${s(line.decision_id)},"caller":${s(line.caller)}`
    + `,"credential":${s(line.credential)},"method":${s(line.method)},"host":${s(line.host)},"destination":${s(line.destination)},"path":${s(line.path)}`
    + `,"tool":${s(line.tool)},"context":${JSON.stringify(line.context)},"outcome":${s(line.outcome)},"rule":${s(line.rule)}`
    + `,"reason":${s(line.reason)},"identity_problems":${line.identity_problems.length === 0 ? "[]" : JSON.stringify(line.identity_problems)}`
    + `,"latency_us":${line.latency_us},"policy_version":${s(line.policy_version)},"controls":${list(line.controls)}`
    + `,"matched_rules":${list(line.matched_rules)},"shadow_outcome":${s(line.shadow_outcome)},"shadow_rule":${s(line.shadow_rule)}`
    + `,"dry_run":${line.dry_run ? "true" : "false"},"would_outcome":${s(line.would_outcome)},"would_rule":${s(line.would_rule)},"msg":"decision"}\n`;
}
// --- end of the old builder ---

const PREFIX = ",\"service\":\"vigil\",\"component\":\"decision\"";

const base: DecisionLine = {
  decision_id: "3f1c2a9e-8b7d-4c2e-9f1a-0b2c3d4e5f60", caller: "spiffe://example.org/ns/ci/sa/deployer", credential: "sha256:ab",
  method: "POST", host: "deploy-api:8443", destination: "deploy-api", path: "/v1/items/7", tool: "", context: { destination: "deploy-api", env: "prod" },
  outcome: "allow", rule: "deploy-api/release", reason: "rule deploy-api/release allows", identity_problems: [], latency_us: 7,
  policy_version: "0123456789abcdef", controls: [], matched_rules: [], shadow_outcome: "", shadow_rule: "", dry_run: false,
  would_outcome: "", would_rule: "",
};

function decoded(entries: [string, string][]): Record<string, string> {
  // The decoder's shape: no prototype, keys in wire order.
  const out = Object.create(null) as Record<string, string>;
  for (const [k, v] of entries) out[k] = v;
  return out;
}

const cases: [string, Partial<DecisionLine>][] = [
  ["an ordinary allow", {}],
  ["every list and shadow field set", {
    identity_problems: ["ambiguous_credential", "expired"], controls: ["NHI2", "PR.AA-05"], matched_rules: ["guards/revoked", "a/b"],
    shadow_outcome: "deny", shadow_rule: "deploy-api/new-rule", dry_run: true, would_outcome: "revoke", would_rule: "guards/revoked",
  }],
  ["empty everything", {
    decision_id: "", caller: "", credential: "", method: "", host: "", destination: "", path: "", context: {}, outcome: "", rule: "",
    reason: "", policy_version: "", latency_us: 0,
  }],
  ["quotes and backslashes", { path: "/v1/\"quoted\"\\x", reason: "no \\ way", caller: "\"" }],
  ["control characters", { path: "/a\nb\rc\td\u0000e\u0001f\u001f\b\f", reason: "\u007f del" }],
  ["U+2028 and U+2029 alone (the builder stringifies, which leaves them raw)", { path: "/a\u2028b\u2029c" }],
  ["unicode, BMP and astral", { path: "/é/日本/😀", host: "bücher.example", reason: "ü", tool: "ツール" }],
  ["a lone high surrogate (raw: U+FFFD in UTF-8)", { path: "/x\ud800y" }],
  ["a lone low surrogate at the end", { reason: "end\udfff" }],
  ["a lone surrogate next to a quote (stringified: \\ud800)", { path: "/\"\ud800" }],
  ["a lone surrogate next to U+2028", { path: "\u2028\ud83d" }],
  ["lone surrogates, unicode and escapes in context and lists", {
    context: { "we\"ird": "x\ud800", "é": "\n", "": "" }, identity_problems: ["\udc00", "é\""], controls: ["\u2028"], matched_rules: ["\\"],
  }],
  ["a context from the decoder (no prototype)", { context: decoded([["b", "1"], ["a", "2"]]) }],
  ["integer-like context keys (JSON.stringify puts them first, ascending)", { context: decoded([["z", "1"], ["10", "2"], ["2", "3"], ["a", "4"]]) }],
  ["latency: zero, large, fractional, negative, NaN", { latency_us: 1234567890123 }],
  ["latency fractional", { latency_us: 1.5 }],
  ["latency negative", { latency_us: -3 }],
  ["latency NaN", { latency_us: Number.NaN }],
  ["latency -0", { latency_us: -0 }],
  ["latency beyond safe integers", { latency_us: 1e21 }],
  ["a long value (still fits the buffer)", { path: `/${"p".repeat(1500)}`, reason: "r".repeat(600) }],
  ["a long unicode value", { path: "é".repeat(900) }],
  ["every escapable character once", { reason: Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(i)).join("") }],
];

/** The line's time, checked for pino's isoTime shape. */
function timeOf(text: string): string {
  const time = /^\{"level":"info","time":"([^"]+)"/.exec(text)?.[1] ?? "";
  expect(time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  return time;
}

describe("decision line bytes", () => {
  // Text biased towards what escaping and UTF-8 treat specially, lone surrogates included.
  const special = fc.constantFrom("\"", "\\", "\n", "\u0000", "\u001f", "\u007f", "\u2028", "\u2029", "é", "日", "😀",
    "\ud800", "\udfff", "\ud83d", "/", " ", "a", "0");
  const text = fc.oneof(
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.array(fc.oneof(special, fc.string({ maxLength: 3 })), { maxLength: 20 }).map((parts) => parts.join("")),
  );
  const lineArb = fc.record({
    decision_id: text, caller: text, credential: text, method: text, host: text, destination: text, path: text, tool: text,
    context: fc.dictionary(text, text, { maxKeys: 5 }), outcome: text, rule: text, reason: text,
    identity_problems: fc.array(text, { maxLength: 3 }), latency_us: fc.oneof(fc.nat(), fc.double()),
    policy_version: text, controls: fc.array(text, { maxLength: 3 }), matched_rules: fc.array(text, { maxLength: 3 }),
    shadow_outcome: text, shadow_rule: text, dry_run: fc.boolean(), would_outcome: text, would_rule: text,
  });
  const wellFormed = (line: DecisionLine): boolean => JSON.stringify(line).match(/\\ud[89a-f]/) === null;

  it("are the old builder's for any line, and JSON that reads back as the line", () => {
    const out: Buffer[] = [];
    const stream = new Writable({ write(chunk: Buffer, _enc, done) { out.push(chunk); done(); } });
    const log = createDecisionLog(createLogger({ level: "info", destination: stream }).child({ component: "decision" }));
    fc.assert(fc.property(lineArb, (line) => {
      out.length = 0;
      log?.(line);
      const bytes = Buffer.concat(out);
      const textOut = bytes.toString("utf8");
      expect(bytes.equals(Buffer.from(oldLine(line, timeOf(textOut), PREFIX), "utf8"))).toBe(true);
      // Not JSON, as before: NaN and ±Infinity are written as `${n}`.
      if (wellFormed(line) && Number.isFinite(line.latency_us)) {
        const parsed = JSON.parse(textOut) as Record<string, unknown>;
        // -0 reads back as 0.
        expect(parsed).toEqual({ level: "info", time: timeOf(textOut), service: "vigil", component: "decision",
          ...line, latency_us: line.latency_us === 0 ? 0 : line.latency_us, msg: "decision" });
      }
    }), { numRuns: 3000 });
  });

  // The log remembers values it found plain (caller, host, rule, …): values drawn from a few, some
  // needing escapes, repeat across lines, so one that was remembered wrongly would be written bare.
  it("are the old builder's when values repeat from line to line", () => {
    const out: Buffer[] = [];
    const stream = new Writable({ write(chunk: Buffer, _enc, done) { out.push(chunk); done(); } });
    const log = createDecisionLog(createLogger({ level: "info", destination: stream }).child({ component: "decision" }));
    const few = fc.constantFrom("", "deploy-api", "a\"b", "back\\slash", "line\nbreak", "\u2028", "é", "spiffe://example.org/ns/a/sa/b");
    const repeating = fc.record({
      decision_id: few, caller: few, credential: few, method: few, host: few, destination: few, path: few, tool: few,
      context: fc.dictionary(few, few, { maxKeys: 2 }), outcome: few, rule: few, reason: few,
      identity_problems: fc.array(few, { maxLength: 2 }), latency_us: fc.nat(),
      policy_version: few, controls: fc.array(few, { maxLength: 2 }), matched_rules: fc.array(few, { maxLength: 2 }),
      shadow_outcome: few, shadow_rule: few, dry_run: fc.boolean(), would_outcome: few, would_rule: few,
    });
    fc.assert(fc.property(fc.array(repeating, { minLength: 1, maxLength: 20 }), (lines) => {
      for (const line of lines) {
        out.length = 0;
        log?.(line);
        const textOut = Buffer.concat(out).toString("utf8");
        expect(textOut).toBe(oldLine(line, timeOf(textOut), PREFIX));
        expect((JSON.parse(textOut) as Record<string, unknown>).host).toBe(line.host);
      }
    }), { numRuns: 300 });
  });
});

describe("decision log through a LineWriter", () => {
  it("writes the old builder's lines, in order, short and too long for the buffer, and flushes on close", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-decisions-"));
    const fd = openSync(join(dir, "out.log"), "w");
    const writer = new LineWriter(fd, { flushIntervalMs: 5 });
    const log = createDecisionLog(createLogger({ level: "info", destination: writer }).child({ component: "decision" }));
    expect(log).toBeDefined();
    const lines: DecisionLine[] = [];
    // Enough lines for dozens of chunks, so written buffers are reused many times over.
    for (let i = 0; i < 6000; i++) {
      const change = cases[i % cases.length]?.[1] ?? {};
      lines.push({ ...base, ...change, decision_id: `d-${String(i)}` });
    }
    // Lines longer than the buffer go on their own, in their place among the others.
    lines.splice(1500, 0, { ...base, path: `/${"x".repeat(70_000)}` }, { ...base, reason: "\"".repeat(30_000) });
    for (const [i, line] of lines.entries()) {
      log?.(line);
      // Let the writer drain now and then: 6,000 lines at once would overflow its 2 MiB queue.
      if (i % 500 === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await log?.close();
    await writer.close();
    closeSync(fd);
    const bytes = readFileSync(join(dir, "out.log"));
    rmSync(dir, { recursive: true, force: true });
    const out: Buffer[] = [];
    for (let start = 0; start < bytes.length;) {
      const newline = bytes.indexOf(0x0a, start);
      const end = newline < 0 ? bytes.length : newline + 1;
      out.push(bytes.subarray(start, end));
      start = end;
    }
    expect(out).toHaveLength(lines.length);
    out.forEach((got, i) => {
      const line = lines[i];
      if (line !== undefined) expect(got.equals(Buffer.from(oldLine(line, timeOf(got.toString("utf8")), PREFIX), "utf8"))).toBe(true);
    });
    expect(writer.stats.dropped).toBe(0);
  });
});

// Through a LineWriter (production: stdout) a line's text is built after the current turn of the
// event loop, off the path Envoy waits on; these hold what that may and may not change.
describe("decision lines written after the turn that recorded them", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A decision log on a LineWriter over a fresh file, and a way to read what reached the file. */
  function fileLog(): { log: NonNullable<ReturnType<typeof createDecisionLog>>; writer: LineWriter; lines: () => Promise<string[]>; done: () => Promise<void> } {
    const dir = mkdtempSync(join(tmpdir(), "vigil-deferred-"));
    const path = join(dir, "out.log");
    const fd = openSync(path, "w");
    const writer = new LineWriter(fd, { flushIntervalMs: 60_000 });
    const log = createDecisionLog(createLogger({ level: "info", destination: writer }).child({ component: "decision" }));
    if (log === undefined) throw new Error("no decision log");
    const lines = async (): Promise<string[]> => {
      await new Promise<void>((resolve) => { writer.flush(() => { resolve(); }); });
      return readFileSync(path, "utf8").split("\n").filter((l) => l !== "");
    };
    const done = async (): Promise<void> => {
      await writer.close();
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    };
    return { log, writer, lines, done };
  }
  const nextTurn = (): Promise<void> => new Promise((resolve) => { setImmediate(resolve); });

  it("writes nothing while the turn runs, then every line in order, stamped with the time it was recorded", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2026-12-02T07:00:00.123Z"));
    const { log, lines, done } = fileLog();
    try {
      for (let i = 0; i < 3; i++) log({ ...base, decision_id: `d-${String(i)}` });
      expect(await lines()).toEqual([]);
      // Built later, still stamped with the time of the record.
      vi.setSystemTime(new Date("2026-12-02T07:00:09.999Z"));
      await nextTurn();
      const written = await lines();
      expect(written.map((l) => (JSON.parse(l) as { decision_id: string }).decision_id)).toEqual(["d-0", "d-1", "d-2"]);
      for (const [i, l] of written.entries()) {
        expect(l).toBe(oldLine({ ...base, decision_id: `d-${String(i)}` }, "2026-12-02T07:00:00.123Z", PREFIX).trimEnd());
      }
    } finally {
      await done();
    }
  });

  it(`keeps at most ${String(MAX_PENDING_DECISION_LINES)} lines waiting: the next one writes them all at once`, async () => {
    const { log, lines, done } = fileLog();
    try {
      for (let i = 0; i < MAX_PENDING_DECISION_LINES - 1; i++) log({ ...base, decision_id: `d-${String(i)}` });
      expect(await lines()).toHaveLength(0);
      log({ ...base, decision_id: "last-of-the-batch" });
      log({ ...base, decision_id: "after" });
      const now = await lines();
      expect(now).toHaveLength(MAX_PENDING_DECISION_LINES);
      expect(now.at(-1)).toContain("\"decision_id\":\"last-of-the-batch\"");
      await nextTurn();
      expect((await lines()).at(-1)).toContain("\"decision_id\":\"after\"");
    } finally {
      await done();
    }
  });

  it("writes waiting lines on close", async () => {
    const { log, lines, done } = fileLog();
    try {
      log({ ...base, decision_id: "at-close" });
      await log.close();
      expect(await lines()).toEqual([oldLine({ ...base, decision_id: "at-close" }, timeOf(((await lines())[0] ?? "")), PREFIX).trimEnd()]);
    } finally {
      await done();
    }
  });

  it("counts a line whose text cannot be built as dropped, throws nothing and writes the others", async () => {
    const { log, writer, lines, done } = fileLog();
    try {
      const hostile = { toJSON: (): never => { throw new Error("no text for this one"); } } as unknown as Record<string, string>;
      log({ ...base, decision_id: "before" });
      log({ ...base, decision_id: "broken", context: hostile });
      log({ ...base, decision_id: "after" });
      await nextTurn();
      expect((await lines()).map((l) => (JSON.parse(l) as { decision_id: string }).decision_id)).toEqual(["before", "after"]);
      expect(writer.stats.dropped).toBe(1);
    } finally {
      await done();
    }
  });
});
