// Vigil's own revocations (decision effects) against real stores: a revocation is enforced on this
// instance from the moment it is decided until the store holds it, retried while the store cannot
// take it, and reported done ("revoked") only once it is held — never on a refusal or an outage.

import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { storeSchema } from "../../src/config/schema.js";
import { Effects } from "../../src/decision/effects.js";
import type { RevocationEffect } from "../../src/decision/effects.js";
import { createEmbeddedStore, createNatsStore, signalsBucketName } from "../../src/signals/index.js";
import { createMetrics } from "../../src/telemetry/metrics.js";
import type { Metrics } from "../../src/telemetry/metrics.js";
import { captureLogger, eventually } from "../signals/support.js";
import { TcpProxy, canConnect } from "../signals/tcp-proxy.js";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const target = new URL(NATS_URL.replace(/^nats:/, "http:"));
const NATS_HOST = target.hostname;
const NATS_PORT = Number(target.port || "4222");
const natsUp = await canConnect(NATS_HOST, NATS_PORT);

const KEY = "sha256:6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b";

function effectFor(subject: string): RevocationEffect {
  return {
    subject, target: "credential", reason: "the presented credential is compromised", decisionId: `d-${randomBytes(4).toString("hex")}`,
    caller: "spiffe://example.org/ns/a/sa/b", rule: "guards/compromised-credential", at: Date.now(),
  };
}

async function counter(metrics: Metrics, label: string): Promise<number> {
  const metric = await metrics.effectsFailed.get();
  return metric.values.find((value) => value.labels.effect === label)?.value ?? 0;
}

async function pendingGauge(metrics: Metrics): Promise<number> {
  return (await metrics.revocationsPending.get()).values[0]?.value ?? 0;
}

describe("Vigil's own revocations", () => {
  const cleanups: (() => Promise<void>)[] = [];

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("is done once the store holds it, and only then", async () => {
    const store = createEmbeddedStore(storeSchema.parse({ journalPath: "" }), { logger: captureLogger().logger });
    await store.ready();
    const log = captureLogger();
    const metrics = createMetrics({ defaultMetrics: false });
    const effects = new Effects({ store, logger: log.logger, metrics });
    cleanups.push(() => effects.close(), () => store.close());

    effects.revoke(effectFor(KEY));
    expect(effects.pendingRevoked(KEY)).toBe(true);
    await effects.drain();
    expect(store.get(KEY, "revocation")?.data.revoked).toBe(true);
    expect(effects.pendingRevoked(KEY)).toBe(false);
    expect(await pendingGauge(metrics)).toBe(0);
    expect(log.lines.filter((line) => line.msg === "revoked")).toHaveLength(1);
  });

  it("keeps denying, and never says revoked, when the store refuses the revocation", async () => {
    const store = createEmbeddedStore(storeSchema.parse({ journalPath: "" }), { logger: captureLogger().logger });
    await store.ready();
    const log = captureLogger();
    const metrics = createMetrics({ defaultMetrics: false });
    const effects = new Effects({ store, logger: log.logger, metrics, retryDelaysMs: [5] });
    cleanups.push(() => effects.close(), () => store.close());

    // Not a subject the store takes for a revocation (neither SPIFFE ID nor fingerprint).
    effects.revoke(effectFor("not-a-subject"));
    await effects.drain();
    expect(effects.pendingRevoked("not-a-subject")).toBe(true);
    expect(await pendingGauge(metrics)).toBe(1);
    expect(await counter(metrics, "revocation")).toBe(1);
    expect(log.lines.some((line) => line.msg === "revoked")).toBe(false);
    expect(log.lines.some((line) => line.msg === "revocation refused by the signal store; enforced on this instance only")).toBe(true);
  });

  (natsUp ? it : it.skip)("retries through a bus outage, denying meanwhile, until the store acknowledges", async () => {
    const prefix = `vigiltest_effects_${randomBytes(6).toString("hex")}`;
    const proxy = new TcpProxy(NATS_HOST, NATS_PORT);
    await proxy.start();
    const store = createNatsStore(storeSchema.parse({ bus: proxy.url, bucketPrefix: prefix, freshnessBoundMs: 500 }), {
      logger: captureLogger().logger, name: "effects",
    });
    await store.ready();
    const log = captureLogger();
    const metrics = createMetrics({ defaultMetrics: false });
    const effects = new Effects({ store, logger: log.logger, metrics, retryDelaysMs: [50, 100, 200] });
    cleanups.push(async () => {
      await effects.close();
      await store.close();
      await proxy.stop();
      const nc = await connect({ servers: NATS_URL });
      await (await new Kvm(nc).open(signalsBucketName(prefix))).destroy().catch(() => undefined);
      await nc.drain();
    });

    await proxy.stop();
    effects.revoke(effectFor(KEY));
    await eventually(() => log.lines.some((line) => line.msg === "revocation not durable yet; still enforced here, retrying"), 10_000, "a failed attempt");
    expect(effects.pendingRevoked(KEY)).toBe(true);
    expect(await pendingGauge(metrics)).toBe(1);
    expect(log.lines.some((line) => line.msg === "revoked")).toBe(false);
    expect(await counter(metrics, "revocation")).toBeGreaterThanOrEqual(1);

    await proxy.start();
    await eventually(() => !effects.pendingRevoked(KEY), 20_000, "the retry lands");
    expect(store.get(KEY, "revocation")?.data.revoked).toBe(true);
    expect(await pendingGauge(metrics)).toBe(0);
    expect(log.lines.filter((line) => line.msg === "revoked")).toHaveLength(1);
  }, 40_000);
});
