// The Check path's own telemetry: the hand-built decision line must be exactly what pino would
// have written, and the hot metrics must expose what prom-client would.

import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createDecisionLog, createLogger, createMetrics, type DecisionLine } from "../../src/telemetry/index.js";
import { LineWriter } from "../../src/telemetry/line-writer.js";

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString("utf8").split("\n").filter((l) => l !== ""));
      done();
    },
  });
  return { lines, stream };
}

const line: DecisionLine = {
  decision_id: "d-1", caller: "spiffe://example.org/ns/ci/sa/deployer", credential: "sha256:ab",
  method: "POST", host: "deploy-api", path: "/v1/\"quoted\"\npath\u2028", tool: "", context: { env: "prod", "we\"ird": "x" },
  outcome: "deny", rule: "guards/revoked", reason: "no \\ way", identity_problems: ["ambiguous_credential"], latency_us: 7,
};

describe("decision log line", () => {
  it("writes the same JSON pino writes for the same fields", async () => {
    const fast = capture();
    const viaPino = capture();
    const logFast = createDecisionLog(createLogger({ level: "info", destination: fast.stream }).child({ component: "decision" }));
    const pinoLogger = createLogger({ level: "info", destination: viaPino.stream }).child({ component: "decision" });
    expect(logFast).toBeDefined();
    logFast?.(line);
    pinoLogger.info(line, "decision");
    await new Promise((resolve) => setImmediate(resolve));
    const a = JSON.parse(fast.lines[0]!) as Record<string, unknown>;
    const b = JSON.parse(viaPino.lines[0]!) as Record<string, unknown>;
    expect(Object.keys(a)).toEqual(Object.keys(b));
    expect({ ...a, time: 0 }).toEqual({ ...b, time: 0 });
  });

  it("costs nothing when info lines are off", () => {
    expect(createDecisionLog(createLogger({ level: "warn", destination: capture().stream }))).toBeUndefined();
  });
});

describe("hot metrics", () => {
  it("expose decisions by outcome and a cumulative latency histogram", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.decisions.inc("allow");
    metrics.decisions.inc("revoke", 2);
    for (const seconds of [0.000001, 0.00002, 0.00002, 3]) metrics.decisionDuration.observe(seconds);
    const text = await metrics.registry.metrics();
    expect(text).toContain("# TYPE vigil_decisions_total counter");
    expect(text).toMatch(/^vigil_decisions_total\{outcome="allow"\} 1$/m);
    expect(text).toMatch(/^vigil_decisions_total\{outcome="revoke"\} 2$/m);
    expect(text).toMatch(/^vigil_decisions_total\{outcome="step_up"\} 0$/m);
    expect(text).toContain("# TYPE vigil_decision_duration_seconds histogram");
    expect(text).toMatch(/^vigil_decision_duration_seconds_bucket\{le="0.000005"\} 1$/m);
    expect(text).toMatch(/^vigil_decision_duration_seconds_bucket\{le="0.000025"\} 3$/m);
    expect(text).toMatch(/^vigil_decision_duration_seconds_bucket\{le="0.05"\} 3$/m);
    expect(text).toMatch(/^vigil_decision_duration_seconds_bucket\{le="\+Inf"\} 4$/m);
    expect(text).toMatch(/^vigil_decision_duration_seconds_count 4$/m);
    expect(text).toMatch(/^vigil_decision_duration_seconds_sum 3.00004/m);
  });
});

describe("line writer", () => {
  it("writes every line, whole and in order, batched, and the rest on close", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-lines-"));
    const fd = openSync(join(dir, "out.log"), "w");
    const writer = new LineWriter(fd, { flushIntervalMs: 5 });
    const expected: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const line = `{"n":${i},"pad":"${"é".repeat(i % 50)}"}`;
      expected.push(line);
      writer.write(`${line}\n`);
      if (i === 2500) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const huge = `{"huge":"${"x".repeat(40_000)}"}`;
    expected.push(huge);
    writer.write(`${huge}\n`);
    await writer.close();
    closeSync(fd);
    expect(readFileSync(join(dir, "out.log"), "utf8").split("\n").slice(0, -1)).toEqual(expected);
    rmSync(dir, { recursive: true, force: true });
  });
});
