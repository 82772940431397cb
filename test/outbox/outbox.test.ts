// The outbox's sender against real HTTP receivers on loopback: what it does with each kind of
// answer, and what a hostile receiver cannot make it do.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { JournalQueue, Outbox, destinationKey, type Destination, type Notice } from "../../src/outbox/index.js";
import { createMetrics, type Metrics } from "../../src/telemetry/metrics.js";
import { captureLogger, eventually } from "../signals/support.js";
import { startReceiver, type TestReceiver } from "./receiver.js";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

function notice(n: number): Notice {
  return { id: `caep/idp/evt-${String(n)}`, channel: "caep", receiver: "idp", createdAt: Date.now(), contentType: "application/secevent+jwt", body: `set-${String(n)}` };
}

async function setup(options: { receiver?: TestReceiver; maxAttempts?: number; timeoutMs?: number; retryDelaysMs?: number[]; url?: string } = {}) {
  const receiver = options.receiver ?? await startReceiver();
  cleanup.push(() => receiver.close());
  const metrics = createMetrics({ defaultMetrics: false });
  const log = captureLogger();
  const destinations = new Map<string, Destination>([[destinationKey("caep", "idp"), {
    url: options.url ?? `${receiver.url}/events`, headers: () => ({ authorization: "Bearer receiver-token-abc" }),
  }]]);
  const outbox = new Outbox({
    queue: new JournalQueue({ path: "", logger: log.logger, maxPending: 1_000 }),
    destinations, metrics, logger: log.logger,
    retryDelaysMs: options.retryDelaysMs ?? [20, 40], maxAttempts: options.maxAttempts ?? 5, timeoutMs: options.timeoutMs ?? 2_000, concurrency: 4,
  });
  await outbox.start();
  cleanup.push(() => outbox.close());
  return { receiver, outbox, metrics, log };
}

async function count(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return value?.value ?? 0;
}

describe("the outbox sender", () => {
  it("delivers each notice once, with its media type and the receiver's authorization, and counts it", async () => {
    const { receiver, outbox, metrics } = await setup();
    for (const n of [1, 2, 3]) await outbox.enqueue(notice(n));
    await outbox.enqueue(notice(1)); // the same event for the same receiver: queued once
    await outbox.idle();
    expect(receiver.received.map((r) => r.body).sort()).toEqual(["set-1", "set-2", "set-3"]);
    expect(receiver.received[0]?.headers["content-type"]).toBe("application/secevent+jwt");
    expect(receiver.received[0]?.headers.authorization).toBe("Bearer receiver-token-abc");
    expect(await count(metrics, "vigil_outbox_delivered_total", { channel: "caep" })).toBe(3);
    expect(await count(metrics, "vigil_outbox_enqueued_total", { channel: "caep" })).toBe(3);
  });

  it("retries a receiver that is down or answers 503 until it takes the notice", async () => {
    const { receiver, outbox, metrics } = await setup();
    receiver.script = [{ status: 503 }, { status: 500 }];
    await outbox.enqueue(notice(1));
    await outbox.idle();
    expect(receiver.received).toHaveLength(3);
    expect(await count(metrics, "vigil_outbox_failures_total", { channel: "caep", reason: "http_5xx" })).toBe(2);
    expect(await count(metrics, "vigil_outbox_delivered_total", { channel: "caep" })).toBe(1);
  });

  it("retries after a timeout when the receiver hangs", async () => {
    const { receiver, outbox, metrics } = await setup({ timeoutMs: 100 });
    receiver.script = [{ status: 202, delayMs: 1_000 }];
    await outbox.enqueue(notice(1));
    await outbox.idle();
    expect(await count(metrics, "vigil_outbox_failures_total", { channel: "caep", reason: "timeout" })).toBe(1);
    expect(await count(metrics, "vigil_outbox_delivered_total", { channel: "caep" })).toBe(1);
  });

  it("drops a notice the receiver rejects (RFC 8935 400) after one attempt, naming only a registered err code", async () => {
    const { receiver, outbox, metrics, log } = await setup();
    receiver.script = [{ status: 400, body: JSON.stringify({ err: "invalid_audience", description: "evil\nforged log line" }) }];
    await outbox.enqueue(notice(1));
    await outbox.idle();
    expect(receiver.received).toHaveLength(1);
    expect(await count(metrics, "vigil_outbox_dropped_total", { channel: "caep", reason: "rejected" })).toBe(1);
    const line = log.lines.find((l) => l.msg === "notice dropped: the receiver rejected it");
    expect(line).toMatchObject({ status: 400, err_code: "invalid_audience" });
    expect(JSON.stringify(log.lines)).not.toContain("forged log line");
  });

  it("gives up after maxAttempts and says so", async () => {
    const { receiver, outbox, metrics } = await setup({ maxAttempts: 3, receiver: await startReceiver({ status: 502 }) });
    await outbox.enqueue(notice(1));
    await outbox.idle();
    expect(receiver.received).toHaveLength(3);
    expect(await count(metrics, "vigil_outbox_dropped_total", { channel: "caep", reason: "attempts" })).toBe(1);
  });

  it("honours a Retry-After only up to the longest configured delay", async () => {
    const { receiver, outbox } = await setup({ retryDelaysMs: [10, 150] });
    receiver.script = [{ status: 429, headers: { "retry-after": "86400" } }];
    await outbox.enqueue(notice(1));
    const started = Date.now();
    await outbox.idle();
    const waited = Date.now() - started;
    expect(receiver.received).toHaveLength(2);
    expect(waited).toBeGreaterThanOrEqual(100);
    expect(waited).toBeLessThan(5_000);
  });

  it("never follows a redirect: a receiver cannot point Vigil at another host", async () => {
    let elsewhereHits = 0;
    const elsewhere: Server = createServer((_req, res) => {
      elsewhereHits++;
      res.writeHead(202).end();
    });
    await new Promise<void>((resolve) => elsewhere.listen(0, "127.0.0.1", resolve));
    cleanup.push(() => new Promise((resolve) => { elsewhere.close(() => { resolve(); }); }));
    const target = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}/internal`;
    const { receiver, outbox, metrics } = await setup({ receiver: await startReceiver({ status: 307, headers: { location: target } }) });
    await outbox.enqueue(notice(1));
    await outbox.idle();
    expect(receiver.received).toHaveLength(1);
    expect(elsewhereHits).toBe(0);
    expect(await count(metrics, "vigil_outbox_dropped_total", { channel: "caep", reason: "rejected" })).toBe(1);
  });

  it("reads a few KiB of a receiver's answer at most: an endless answer does not hold the sender", async () => {
    let chunks = 0;
    const endless: Server = createServer((_req, res) => {
      res.writeHead(202, { "content-type": "application/json" });
      const timer = setInterval(() => {
        chunks++;
        if (!res.write("x".repeat(64 * 1024))) return;
      }, 1);
      res.on("close", () => { clearInterval(timer); });
    });
    await new Promise<void>((resolve) => endless.listen(0, "127.0.0.1", resolve));
    cleanup.push(() => new Promise((resolve) => { endless.closeAllConnections(); endless.close(() => { resolve(); }); }));
    const { outbox, metrics } = await setup({ url: `http://127.0.0.1:${(endless.address() as AddressInfo).port}/events`, timeoutMs: 10_000 });
    const started = Date.now();
    await outbox.enqueue(notice(1));
    await outbox.idle();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await count(metrics, "vigil_outbox_delivered_total", { channel: "caep" })).toBe(1);
    await eventually(() => chunks > 0);
  });

  it("drops a notice whose receiver is no longer configured", async () => {
    const { outbox, metrics } = await setup();
    await outbox.enqueue({ ...notice(1), id: "caep/gone/evt-1", receiver: "gone" });
    await outbox.idle();
    expect(await count(metrics, "vigil_outbox_dropped_total", { channel: "caep", reason: "unknown_receiver" })).toBe(1);
  });

  it("reports its backlog and the age of the oldest notice while a receiver is down", async () => {
    const { receiver, outbox, metrics } = await setup({ receiver: await startReceiver({ status: 503 }), retryDelaysMs: [60_000] });
    await outbox.enqueue({ ...notice(1), createdAt: Date.now() - 30_000 });
    await eventually(() => receiver.received.length === 1);
    await outbox.refreshGauges();
    expect(await count(metrics, "vigil_outbox_backlog", {})).toBe(1);
    expect(await count(metrics, "vigil_outbox_oldest_age_seconds", {})).toBeGreaterThanOrEqual(30);
  });
});
