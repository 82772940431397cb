// The Check path's own telemetry: the hand-built decision line must be exactly what pino would
// have written, and the hot metrics must expose what prom-client would.

import { spawnSync } from "node:child_process";
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createDecisionLog, createLogger, createMetrics, loggerLineWriter, type DecisionLine } from "../../src/telemetry/index.js";
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
  method: "POST", host: "deploy-api", destination: "deploy-api", path: "/v1/\"quoted\"\npath\u2028", tool: "", context: { env: "prod", "we\"ird": "x" },
  outcome: "deny", rule: "guards/revoked", reason: "no \\ way", identity_problems: ["ambiguous_credential"], latency_us: 7,
  policy_version: "0123456789abcdef", controls: ["NHI2", "PR.AA-05"], matched_rules: ["guards/revoked", "deploy-api/release"],
  shadow_outcome: "deny", shadow_rule: "deploy-api/new-rule", dry_run: true, would_outcome: "revoke", would_rule: "guards/revoked",
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

  it("writes empty lists as [] the way pino does", async () => {
    const fast = capture();
    const viaPino = capture();
    const bare = { ...line, controls: [], matched_rules: [], policy_version: "" };
    createDecisionLog(createLogger({ level: "info", destination: fast.stream }))?.(bare);
    createLogger({ level: "info", destination: viaPino.stream }).info(bare, "decision");
    await new Promise((resolve) => setImmediate(resolve));
    expect({ ...JSON.parse(fast.lines[0]!) as object, time: 0 }).toEqual({ ...JSON.parse(viaPino.lines[0]!) as object, time: 0 });
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

describe("line writer on a stdout that fails or stalls", () => {
  it("drops and counts lines when the descriptor refuses them (a full disk), never throws, and says so once", async () => {
    const fd = openSync("/dev/full", "w");
    const changes: (string | undefined)[] = [];
    const writer = new LineWriter(fd, { flushIntervalMs: 5, onStateChange: (err) => { changes.push(err?.code); } });
    for (let i = 0; i < 2000; i++) writer.write(`{"n":${String(i)},"pad":"${"x".repeat(100)}"}\n`);
    await writer.close();
    closeSync(fd);
    expect(writer.stats).toEqual({ dropped: 2000, failing: "ENOSPC" });
    expect(changes).toEqual(["ENOSPC"]);
  });

  it("holds at most maxQueuedBytes while nobody reads, drops the rest, and writes whole lines once read", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-lines-"));
    const fifo = join(dir, "fifo");
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
    // Read-write and non-blocking, as a pipe to a stalled log shipper looks: writes get EAGAIN.
    const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    const writer = new LineWriter(fd, { flushIntervalMs: 5, maxQueuedBytes: 256 * 1024, closeTimeoutMs: 200 });
    const line = (i: number): string => `{"n":${String(i)},"pad":"${"y".repeat(200)}"}\n`;
    for (let i = 0; i < 10_000; i++) writer.write(line(i));
    writer.flush();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const { dropped } = writer.stats;
    // ~2.2 MB offered; the pipe (64 KiB) and the queue (256 KiB) hold a fraction of it.
    expect(dropped).toBeGreaterThan(5_000);
    expect(dropped).toBeLessThan(10_000);

    const received: string[] = [];
    const chunk = Buffer.alloc(64 * 1024);
    let rest = "";
    for (let idle = 0; idle < 20;) {
      let n = 0;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
      }
      if (n === 0) {
        idle++;
        await new Promise((resolve) => setTimeout(resolve, 60));
        continue;
      }
      idle = 0;
      const text = rest + chunk.toString("utf8", 0, n);
      const parts = text.split("\n");
      rest = parts.pop() ?? "";
      received.push(...parts);
    }
    await writer.close();
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
    expect(rest).toBe("");
    expect(received.length + writer.stats.dropped).toBe(10_000);
    // Every line that came out is whole and they are in order.
    const numbers = received.map((l) => (JSON.parse(l) as { n: number }).n);
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
  });

  it("is what a production logger writes through, so its drops can be counted", () => {
    expect(loggerLineWriter(createLogger({ level: "info" }).child({ component: "x" }))).toBeInstanceOf(LineWriter);
    expect(loggerLineWriter(createLogger({ level: "info", destination: capture().stream }))).toBeUndefined();
  });
});
