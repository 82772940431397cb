// The cluster outbox on the real NATS (127.0.0.1:4222): two Vigil instances share one work-queue
// stream, and each notice reaches its receiver exactly once whichever instance queued it; a
// message a bus client forges on the outbox subject is dropped unsent. Each test uses its own
// prefix and deletes its stream afterwards.

import { randomBytes } from "node:crypto";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { storeSchema } from "../../src/config/schema.js";
import { JetStreamQueue, Outbox, destinationKey, outboxStreamName, outboxSubject, type Notice } from "../../src/outbox/index.js";
import { createMetrics } from "../../src/telemetry/metrics.js";
import { eventually } from "../signals/support.js";
import { canConnect } from "../signals/tcp-proxy.js";
import { startReceiver } from "./receiver.js";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const target = new URL(NATS_URL.replace(/^nats:/, "http:"));
const natsUp = await canConnect(target.hostname, Number(target.port || "4222"));
const suite = natsUp || process.env.CI === "true" ? describe : describe.skip;
if (!natsUp) console.warn(`outbox JetStream tests skipped: no NATS at ${NATS_URL}`);

const silent = pino({ level: "silent" });
const SEAL = randomBytes(32);
const cleanup: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

function notice(n: number): Notice {
  return { id: `caep/idp/evt-${String(n)}`, channel: "caep", receiver: "idp", createdAt: Date.now(), contentType: "application/secevent+jwt", body: `set-${String(n)}` };
}

async function total(metrics: ReturnType<typeof createMetrics>, name: string): Promise<number> {
  const values = (await metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
  return values.reduce((sum, v) => sum + v.value, 0);
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${String(timeoutMs)} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

suite("the cluster outbox (JetStream work queue)", () => {
  async function instances(prefix: string, count: number, receiverUrl: string, seal = SEAL) {
    const metrics = createMetrics({ defaultMetrics: false });
    const store = storeSchema.parse({ bus: NATS_URL, bucketPrefix: prefix });
    const list: Outbox[] = [];
    for (let i = 0; i < count; i++) {
      const outbox = new Outbox({
        queue: new JetStreamQueue({
          store, logger: silent, maxPending: 1_000, ackWaitMs: 5_000, seal,
          onRefused: (reason) => { metrics.outboxRefused.labels(reason).inc(); },
        }),
        destinations: new Map([[destinationKey("caep", "idp"), { url: receiverUrl, headers: () => ({}) }]]),
        metrics, logger: silent, retryDelaysMs: [50], maxAttempts: 5, timeoutMs: 2_000, concurrency: 4,
      });
      await outbox.start();
      list.push(outbox);
    }
    cleanup.push(async () => {
      for (const o of list) await o.close();
      const nc = await connect({ servers: NATS_URL });
      await (await jetstreamManager(nc)).streams.delete(outboxStreamName(prefix)).catch(() => false);
      await nc.close();
    });
    return { list, metrics };
  }

  it("sends each notice exactly once across instances, whoever queued it and even when queued twice", async () => {
    const receiver = await startReceiver();
    cleanup.push(() => receiver.close());
    const prefix = `t_outbox_${randomBytes(4).toString("hex")}`;
    const { list } = await instances(prefix, 2, receiver.url);
    for (let n = 0; n < 20; n++) {
      await list[n % 2]?.enqueue(notice(n));
      // The other instance queues the same event again: the stream keeps one (message id).
      await list[(n + 1) % 2]?.enqueue(notice(n));
    }
    await eventually(() => receiver.received.length >= 20, 10_000, "20 deliveries");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(receiver.received.map((r) => r.body).sort()).toEqual(Array.from({ length: 20 }, (_, n) => `set-${String(n)}`).sort());
  });

  it("redelivers a notice the receiver refused, on whichever instance, until it is taken", async () => {
    const receiver = await startReceiver();
    receiver.script = [{ status: 503 }, { status: 503 }];
    cleanup.push(() => receiver.close());
    const { list, metrics } = await instances(`t_outbox_${randomBytes(4).toString("hex")}`, 2, receiver.url);
    await list[0]?.enqueue(notice(1));
    await eventually(() => receiver.received.length >= 3, 10_000, "three attempts");
    await until(async () => await total(metrics, "vigil_outbox_delivered_total") === 1, "the delivery counted");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(receiver.received).toHaveLength(3);
    expect(await total(metrics, "vigil_outbox_failures_total")).toBe(2);
    await list[0]?.refreshGauges();
    expect(await total(metrics, "vigil_outbox_backlog")).toBe(0);
  });

  it("hands a notice held by an instance that died mid-send to another instance after ackWait", async () => {
    const receiver = await startReceiver();
    cleanup.push(() => receiver.close());
    const prefix = `t_outbox_${randomBytes(4).toString("hex")}`;
    const store = storeSchema.parse({ bus: NATS_URL, bucketPrefix: prefix });
    // The doomed instance: takes the notice and never settles it, then its connection is gone.
    const doomed = new JetStreamQueue({ store, logger: silent, maxPending: 1_000, ackWaitMs: 1_500, seal: SEAL });
    await doomed.open();
    cleanup.push(async () => {
      const nc = await connect({ servers: NATS_URL });
      await (await jetstreamManager(nc)).streams.delete(outboxStreamName(prefix)).catch(() => false);
      await nc.close();
    });
    await doomed.add(notice(1));
    const held = await doomed.claim(1, 2_000, new AbortController().signal);
    expect(held.map((l) => l.notice.id)).toEqual([notice(1).id]);
    await doomed.close();
    // A survivor on the same stream and consumer (ack_wait as the doomed one set it).
    const survivor = new Outbox({
      queue: new JetStreamQueue({ store, logger: silent, maxPending: 1_000, ackWaitMs: 1_500, seal: SEAL }),
      destinations: new Map([[destinationKey("caep", "idp"), { url: receiver.url, headers: () => ({}) }]]),
      metrics: createMetrics({ defaultMetrics: false }), logger: silent, retryDelaysMs: [50], maxAttempts: 5, timeoutMs: 2_000, concurrency: 4,
    });
    await survivor.start();
    cleanup.push(() => survivor.close());
    await eventually(() => receiver.received.length >= 1, 10_000, "the survivor's delivery");
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(receiver.received.map((r) => r.body)).toEqual(["set-1"]);
  });

  it("drops unsent a message a bus client forged on the outbox subject", async () => {
    const receiver = await startReceiver();
    cleanup.push(() => receiver.close());
    const prefix = `t_outbox_${randomBytes(4).toString("hex")}`;
    const { metrics } = await instances(prefix, 1, receiver.url);
    const nc = await connect({ servers: NATS_URL });
    cleanup.push(() => nc.close());
    const js = jetstream(nc);
    const forged = { ...notice(9), body: "forged" };
    await js.publish(outboxSubject(prefix, "caep"), JSON.stringify({ notice: forged, seal: "AAAA" }));
    await js.publish(outboxSubject(prefix, "caep"), "not json at all");
    await until(async () => await total(metrics, "vigil_outbox_refused_total") >= 2, "two refusals");
    expect(receiver.received).toEqual([]);
  });
});
