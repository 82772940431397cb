// The signal store's memory is bounded: at most store.maxSignals values (a new latest-wins value
// past it is refused "unavailable" and counted; a revocation in force or a terminal credential is
// always taken, so security state is never refused for space), expired values leave memory, and
// at most store.maxQueuedWrites writes wait on the embedded journal. The same bound holds for bus
// values, refused through the counted bus-refusal path.

import { randomBytes } from "node:crypto";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { storeSchema } from "../../src/config/schema.js";
import { VigilError } from "../../src/errors/index.js";
import { createEmbeddedStore, createNatsStore, signalsBucketName } from "../../src/signals/index.js";
import type { Signal, SignalInput } from "../../src/signals/index.js";
import { SignalIndex } from "../../src/signals/signal-index.js";
import { kvKeyFor } from "../../src/signals/nats-store.js";
import { createMetrics } from "../../src/telemetry/metrics.js";
import type { Metrics } from "../../src/telemetry/metrics.js";
import { captureLogger, eventually } from "./support.js";
import { canConnect } from "./tcp-proxy.js";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const target = new URL(NATS_URL.replace(/^nats:/, "http:"));
const natsUp = await canConnect(target.hostname, Number(target.port || "4222"));

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const agent = (i: number): string => `spiffe://example.org/ns/agents/sa/a${String(i)}`;
const key = (i: number): string => `sha256:${i.toString(16).padStart(64, "0")}`;

function risk(i: number, extra: Partial<Signal> = {}): Signal {
  return { id: `r-${String(i)}`, kind: "risk", subject: agent(i), name: "", source: "t", observedAt: NOW, data: { level: "high" }, ...extra } as Signal;
}
function revocation(subject: string, id: string): Signal {
  return { id, kind: "revocation", subject, name: "", source: "t", observedAt: NOW, data: { revoked: true, reason: "t", by: "t" } };
}
function credential(subject: string, id: string, state: "leaked" | "compromised" | "revoked" | "active"): Signal {
  return { id, kind: "credential", subject, name: "", source: "t", observedAt: NOW, data: { state } };
}

async function refused(metrics: Metrics, which: "signalWritesRefused" | "busValuesRefused", reason: string): Promise<number> {
  return (await metrics[which].get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

describe("SignalIndex bound (maxSignals)", () => {
  const fill = (max: number): { index: SignalIndex; full: Signal[] } => {
    const full: Signal[] = [];
    const index = new SignalIndex({ maxSignals: max, now: () => NOW, onFull: (s) => full.push(s) });
    for (let i = 0; i < max; i++) {
      const d = index.decide(risk(i));
      index.set(d.signal, false);
    }
    return { index, full };
  };

  it.each<{ name: string; signal: Signal; outcome: "write" | "unavailable" }>([
    { name: "a risk value for a new subject", signal: risk(100), outcome: "unavailable" },
    { name: "a posture value for a new subject", signal: { ...risk(101), kind: "posture", data: { status: "compliant", attributes: {} } }, outcome: "unavailable" },
    { name: "an active credential", signal: credential(key(1), "c1", "active"), outcome: "unavailable" },
    { name: "a revocation in force (always taken)", signal: revocation(agent(102), "rv1"), outcome: "write" },
    { name: "a leaked credential (always taken)", signal: credential(key(2), "c2", "leaked"), outcome: "write" },
    { name: "a compromised credential (always taken)", signal: credential(key(3), "c3", "compromised"), outcome: "write" },
    { name: "a newer value at an address already held", signal: risk(0, { id: "r-0b", observedAt: NOW + 1, data: { level: "low" } }), outcome: "write" },
  ])("full: $name → $outcome", ({ signal, outcome }) => {
    const { index, full } = fill(5);
    if (outcome === "write") {
      expect(index.decide(signal).status).toBe("write");
      expect(full).toHaveLength(0);
      return;
    }
    let error: unknown;
    try {
      index.decide(signal);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(VigilError);
    expect((error as VigilError).code).toBe("unavailable");
    expect((error as VigilError).message).toContain("store.maxSignals");
    expect(full).toHaveLength(1);
    expect(index.size()).toBe(5);
  });

  it("a full index of expired values makes room by sweeping them", () => {
    let now = NOW;
    const index = new SignalIndex({ maxSignals: 10, now: () => now });
    for (let i = 0; i < 10; i++) index.set(risk(i, { expiresAt: NOW + 1000 }), false);
    expect(() => index.decide(risk(50))).toThrow(VigilError);
    now = NOW + 2_000;
    expect(index.decide(risk(51)).status).toBe("write");
    expect(index.size()).toBe(0);
  });

  it("expired values leave memory as writes go on, never a sticky one", () => {
    let now = NOW;
    const index = new SignalIndex({ now: () => now });
    for (let i = 0; i < 200; i++) index.set(risk(i, { expiresAt: NOW + 1000 }), false);
    for (let i = 0; i < 20; i++) index.set(revocation(key(i), `rv-${String(i)}`), false);
    expect(index.size()).toBe(220);
    now = NOW + 2_000;
    // 100 new writes sweep 4 subjects each: more than one round of the 220 subjects.
    for (let i = 1000; i < 1100; i++) index.set(risk(i), false);
    expect(index.size()).toBe(120);
    for (let i = 0; i < 20; i++) expect(index.get(key(i), "revocation", "", now)?.data.revoked).toBe(true);
  });
});

describe("the stores refuse past the bound and keep security state", () => {
  it("embedded: a new risk value past store.maxSignals is 503-class and counted; a revocation is taken", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const store = createEmbeddedStore(storeSchema.parse({ journalPath: "", maxSignals: 3 }), { logger: captureLogger().logger, now: () => NOW, metrics });
    await store.ready();
    for (let i = 0; i < 3; i++) await store.put(risk(i));
    await expect(store.put(risk(3) as SignalInput)).rejects.toMatchObject({ code: "unavailable" });
    expect(await refused(metrics, "signalWritesRefused", "capacity")).toBe(1);
    expect((await store.put(revocation(agent(3), "rv") as SignalInput)).status).toBe("written");
    expect((await store.put(credential(key(9), "ck", "compromised") as SignalInput)).status).toBe("written");
    expect(store.get(agent(3), "revocation")?.data.revoked).toBe(true);
    expect(store.get(key(9), "credential")?.data.state).toBe("compromised");
    expect(store.size()).toBe(5);
    await store.close();
  });

  it("embedded: more writes than store.maxQueuedWrites at once are refused, the rest land", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const store = createEmbeddedStore(storeSchema.parse({ journalPath: "", maxQueuedWrites: 2 }), { logger: captureLogger().logger, now: () => NOW, metrics });
    const results = await Promise.allSettled([0, 1, 2, 3, 4].map((i) => store.put(risk(i) as SignalInput)));
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "rejected", "rejected", "rejected"]);
    for (const r of results) if (r.status === "rejected") expect(r.reason).toMatchObject({ code: "unavailable" });
    expect(await refused(metrics, "signalWritesRefused", "queue_full")).toBe(3);
    // The queue empties: writes are taken again.
    expect((await store.put(risk(7) as SignalInput)).status).toBe("written");
    await store.close();
  });

  (natsUp ? it : it.skip)("bus: values past the bound are refused and counted, sticky values are always taken", async () => {
    const prefix = `vigiltest_bounds_${randomBytes(6).toString("hex")}`;
    const metrics = createMetrics({ defaultMetrics: false });
    const store = createNatsStore(storeSchema.parse({ bus: NATS_URL, bucketPrefix: prefix, maxSignals: 2 }), {
      logger: captureLogger().logger, name: "bounds", metrics,
    });
    const nc = await connect({ servers: NATS_URL });
    try {
      await store.ready();
      const kv = await new Kvm(nc).open(signalsBucketName(prefix));
      const now = Date.now();
      const put = (s: Signal) => kv.put(kvKeyFor(s.subject, s.kind, s.name), JSON.stringify({ ...s, observedAt: now }));
      await put(risk(0));
      await put(risk(1));
      await eventually(() => store.size() === 2, 5_000, "two bus values applied");
      await put(risk(2));
      await put(revocation(agent(5), "bus-rv"));
      await put(credential(key(5), "bus-ck", "leaked"));
      await eventually(() => store.get(key(5), "credential")?.data.state === "leaked", 5_000, "sticky bus values applied");
      expect(store.get(agent(5), "revocation")?.data.revoked).toBe(true);
      expect(store.get(agent(2), "risk")).toBeUndefined();
      expect(await refused(metrics, "busValuesRefused", "capacity")).toBe(1);
      // A local write past the bound is refused too, a local revocation taken.
      await expect(store.put({ ...risk(3), observedAt: now })).rejects.toMatchObject({ code: "unavailable" });
      expect((await store.put({ ...revocation(agent(6), "local-rv"), observedAt: now })).status).toBe("written");
    } finally {
      await store.close();
      await (await new Kvm(nc).open(signalsBucketName(prefix))).destroy().catch(() => undefined);
      await nc.drain();
    }
  }, 30_000);
});
