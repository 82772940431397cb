// The NATS store against a real NATS server with JetStream (never a mock). Without a server the
// suite is skipped and says why; with CI=true a missing server fails the run instead.

import { randomBytes } from "node:crypto";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { storeSchema } from "../../src/config/schema.js";
import type { StoreConfig } from "../../src/config/schema.js";
import { createNatsStore, signalsBucketName } from "../../src/signals/index.js";
import type { NatsSignalStore, Signal, SignalInput } from "../../src/signals/index.js";
import { kvKeyFor } from "../../src/signals/nats-store.js";
import { createMetrics } from "../../src/telemetry/metrics.js";
import { runSignalStoreContract } from "../contract/signal-store.case.js";
import { captureLogger, eventually } from "./support.js";
import { TcpProxy, canConnect } from "./tcp-proxy.js";
import { freePort } from "../support/ports.js";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const target = new URL(NATS_URL.replace(/^nats:/, "http:"));
const NATS_HOST = target.hostname;
const NATS_PORT = Number(target.port || "4222");
const natsUp = await canConnect(NATS_HOST, NATS_PORT);
const required = process.env.CI === "true";
const suite = natsUp || required ? describe : describe.skip;
const title = natsUp || required
  ? "NATS store"
  : `NATS store (skipped: no NATS server at ${NATS_URL}; run nats-server -js there, or set CI=true to fail instead)`;

if (!natsUp && !required) console.warn(title);

const T0 = 1_750_000_000_000;
const silent = captureLogger().logger;

let admin: NatsConnection | undefined;
const buckets = new Set<string>();

async function adminConnection(): Promise<NatsConnection> {
  admin ??= await connect({ servers: NATS_URL, name: "vigil-tests-admin" });
  return admin;
}

function uniquePrefix(): string {
  return `vigiltest_${randomBytes(6).toString("hex")}`;
}

function configFor(prefix: string, overrides: Partial<StoreConfig> = {}): StoreConfig {
  buckets.add(signalsBucketName(prefix));
  return storeSchema.parse({ bus: NATS_URL, bucketPrefix: prefix, freshnessBoundMs: 1_000, ...overrides });
}

async function destroyBuckets(): Promise<void> {
  const nc = await adminConnection();
  for (const bucket of buckets) {
    const kv = await new Kvm(nc).open(bucket);
    await kv.destroy().catch(() => undefined);
  }
  buckets.clear();
}

function riskFor(subject: string, level: "none" | "low" | "high" | "critical", observedAt: number, id = `r-${randomBytes(4).toString("hex")}`): SignalInput {
  return { id, kind: "risk", subject, source: "scanner", observedAt, data: { level } };
}

suite(title, () => {
  beforeAll(() => {
    if (!natsUp) {
      throw new Error(`CI=true requires a NATS server with JetStream at ${NATS_URL}, but it is unreachable`);
    }
  });

  afterAll(async () => {
    await admin?.drain();
  });

  runSignalStoreContract("nats", (now) => {
    const store = createNatsStore(configFor(uniquePrefix()), { logger: silent, now });
    return Promise.resolve({
      store,
      dispose: async () => {
        await store.close();
        await destroyBuckets();
      },
    });
  });

  describe("in a cluster", () => {
    const stores: NatsSignalStore[] = [];
    const proxies: TcpProxy[] = [];

    async function open(config: StoreConfig, name: string, logger = silent): Promise<NatsSignalStore> {
      const store = createNatsStore(config, { logger, name });
      stores.push(store);
      await store.ready();
      return store;
    }

    afterEach(async () => {
      await Promise.all(stores.splice(0).map((store) => store.close()));
      await Promise.all(proxies.splice(0).map((proxy) => proxy.stop()));
      await destroyBuckets();
    });

    it("shows a signal written through one instance on another", async () => {
      const config = configFor(uniquePrefix());
      const a = await open(config, "a");
      const b = await open(config, "b");
      const heard: Signal[] = [];
      b.subscribe((signal) => heard.push(signal));

      const subject = "spiffe://example.org/ns/agents/sa/planner";
      await a.put(riskFor(subject, "critical", Date.now()));
      await eventually(() => b.get(subject, "risk")?.data.level === "critical", 5_000, "B sees A's write");
      await eventually(() => heard.length === 1);
      expect(heard[0]).toMatchObject({ kind: "risk", subject, data: { level: "critical" } });
      expect(b.size()).toBe(1);
    });

    it("is ready only once the bucket's existing values are loaded", async () => {
      const config = configFor(uniquePrefix());
      const writer = await open(config, "writer");
      const now = Date.now();
      await Promise.all(Array.from({ length: 300 }, (_, i) => writer.put(riskFor(`spiffe://example.org/ns/n/sa/w${i}`, "high", now))));

      const late = createNatsStore(config, { logger: silent, name: "late" });
      stores.push(late);
      expect(late.isReady).toBe(false);
      expect(late.freshness(Date.now()).fresh).toBe(false);
      await late.ready();
      expect(late.size()).toBe(300);
      expect(late.get("spiffe://example.org/ns/n/sa/w299", "risk")?.data.level).toBe("high");
      expect(late.freshness(Date.now()).fresh).toBe(true);
    });

    it("is ready at once on an empty bucket", async () => {
      const store = await open(configFor(uniquePrefix()), "empty");
      expect(store.isReady).toBe(true);
      expect(store.size()).toBe(0);
    });

    it("keeps a revocation sticky against a write from another instance that has not seen it yet", async () => {
      const config = configFor(uniquePrefix());
      const a = await open(config, "a");
      const b = await open(config, "b");
      const subject = "sha256:60cb0264f067b82086bf37362f4341ee232a83909f6afdbccea57e32323c16a0";
      await a.put({
        id: "rev-1", kind: "revocation", subject, source: "scanner", observedAt: Date.now(),
        data: { revoked: true, reason: "leaked", by: "scanner" },
      });
      await expect(b.put({
        id: "rev-2", kind: "revocation", subject, source: "scanner", observedAt: Date.now() + 10,
        data: { revoked: false, reason: "looks fine to me", by: "someone" },
      })).rejects.toMatchObject({ code: "conflict" });
      const reinstated = await b.reinstate(subject, "bob", "rotated and verified");
      expect(reinstated.status).toBe("written");
      await eventually(() => a.get(subject, "revocation")?.data.revoked === false);
    });

    it("lets the latest observation win across instances, and spots a duplicate written elsewhere", async () => {
      const config = configFor(uniquePrefix());
      const a = await open(config, "a");
      const b = await open(config, "b");
      const subject = "spiffe://example.org/ns/agents/sa/planner";
      const newer = riskFor(subject, "critical", T0 + 10, "newer");
      await a.put(newer);
      expect((await b.put(riskFor(subject, "low", T0 + 5))).status).toBe("stale");
      expect((await b.put(newer)).status).toBe("duplicate");
      expect(b.get(subject, "risk")?.data.level).toBe("critical");
    });

    it("decides grant uses on the bus: of six racing uses on two instances of a three-use grant, exactly three win", async () => {
      const config = configFor(uniquePrefix(), { grantTimeoutMs: 5_000 });
      const a = await open(config, "a");
      const b = await open(config, "b");
      const subject = "spiffe://example.org/ns/ci/sa/deployer";
      await a.put({
        id: "g-1", kind: "grant", subject, name: "apr-9", source: "approvals", observedAt: Date.now(),
        data: { approvalId: "apr-9", scope: "deploy:prod", approver: "alice", usesLeft: 3 },
      });
      await eventually(() => b.get(subject, "grant", "apr-9") !== undefined);
      const now = Date.now();
      const results = await Promise.all([a, b, a, b, a, b].map(async (store) => store.useGrant(subject, "apr-9", now)));
      expect(results.filter((used) => used)).toHaveLength(3);

      const kv = await new Kvm(await adminConnection()).open(signalsBucketName(config.bucketPrefix));
      const key = kvKeyFor(subject, "grant", "apr-9");
      let stored = -1;
      await eventually(() => {
        void kv.get(key).then((entry) => {
          stored = entry?.json<{ data: { usesLeft: number } }>().data.usesLeft ?? -1;
        });
        return stored === 0;
      }, 5_000, "the KV holds 0 uses");
      await eventually(() => a.get(subject, "grant", "apr-9")?.data.usesLeft === 0, 5_000, "A shows 0 uses");
      await eventually(() => b.get(subject, "grant", "apr-9")?.data.usesLeft === 0, 5_000, "B shows 0 uses");
      expect(a.useGrant(subject, "apr-9", Date.now())).toBe(false);
      expect(b.useGrant(subject, "apr-9", Date.now())).toBe(false);
    });

    it("sweeps expired signals and spent grants out of memory and the bucket, on every instance", async () => {
      const config = configFor(uniquePrefix());
      const a = await open(config, "a");
      const b = await open(config, "b");
      const subject = "spiffe://example.org/ns/ci/sa/sweeper";
      const now = Date.now();
      await a.put({ ...riskFor(subject, "high", now), expiresAt: now + 300 });
      await a.put({
        id: "g-s", kind: "grant", subject, name: "apr-s", source: "approvals", observedAt: now,
        data: { approvalId: "apr-s", scope: "deploy:prod", approver: "alice", usesLeft: 1 },
      });
      await a.put(riskFor("spiffe://example.org/ns/ci/sa/keeper", "low", now));
      await a.put({ id: "rv", kind: "revocation", subject: "spiffe://example.org/ns/ci/sa/revoked", source: "ops", observedAt: now, data: { revoked: true, reason: "leak", by: "ops" } });
      await eventually(() => b.size() === 4, 5_000, "B holds all four");
      expect(await a.useGrant(subject, "apr-s", Date.now())).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 350));
      expect(a.sweepNow()).toBe(2);
      const kv = await new Kvm(await adminConnection()).open(signalsBucketName(config.bucketPrefix));
      for (const key of [kvKeyFor(subject, "risk", ""), kvKeyFor(subject, "grant", "apr-s")]) {
        let entry = await kv.get(key);
        for (let i = 0; i < 50 && entry?.operation === "PUT"; i++) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          entry = await kv.get(key);
        }
        expect(entry?.operation).not.toBe("PUT");
      }
      // B hears the deletes; the revocation (sticky) and the live risk stay everywhere.
      await eventually(() => b.size() === 2, 5_000, "B forgets the swept values");
      expect(a.size()).toBe(2);
      expect(b.get("spiffe://example.org/ns/ci/sa/revoked", "revocation")?.data.revoked).toBe(true);
      // The key can be written again on top of its delete marker.
      expect((await b.put(riskFor(subject, "critical", Date.now()))).status).toBe("written");
      await eventually(() => a.get(subject, "risk")?.data.level === "critical", 5_000, "A sees the new value");
    });

    it("denies a grant use the bus cannot decide (cut off, within store.grantTimeoutMs), counts it, and never spends a grant twice", async () => {
      const config = configFor(uniquePrefix(), { grantTimeoutMs: 200 });
      const proxy = new TcpProxy(NATS_HOST, NATS_PORT);
      proxies.push(proxy);
      await proxy.start();
      const metrics = createMetrics({ defaultMetrics: false });
      const cut = createNatsStore({ ...config, bus: proxy.url }, { logger: silent, name: "cut", metrics });
      stores.push(cut);
      await cut.ready();
      const claims = async (result: string): Promise<number> => (await metrics.grantClaims.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
      const subject = "spiffe://example.org/ns/ci/sa/deployer";
      await cut.put({
        id: "g-2", kind: "grant", subject, name: "apr-10", source: "approvals", observedAt: Date.now(),
        data: { approvalId: "apr-10", scope: "deploy:prod", approver: "alice", usesLeft: 1 },
      });
      await proxy.stop();
      const started = Date.now();
      expect(await cut.useGrant(subject, "apr-10", Date.now())).toBe(false);
      expect(Date.now() - started).toBeLessThan(5_000);
      // Timed out, or refused at once by a client that knows it is disconnected: a denial either way.
      expect(await claims("timeout") + await claims("unavailable")).toBe(1);
      expect(await claims("used")).toBe(0);
      // The denied use may still land once the bus is back (the client resends what it buffered):
      // then the grant is spent without an allow (fail closed). Either way it is never spent twice.
      await proxy.start();
      // Back when a write goes through again.
      for (let i = 0; ; i++) {
        const written = await cut.put(riskFor(subject, "low", Date.now(), `probe-${String(i)}`)).then(() => true, () => false);
        if (written) break;
        if (i > 100) throw new Error("the bus did not come back");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const later = await cut.useGrant(subject, "apr-10", Date.now());
      expect(await claims("used")).toBe(later ? 1 : 0);
      expect(await cut.useGrant(subject, "apr-10", Date.now())).toBe(false);
      expect(cut.get(subject, "grant", "apr-10")?.data.usesLeft).toBe(0);
    });

    it("turns stale when the bus is unreachable, then catches up on reconnect without losing updates", async () => {
      const config = configFor(uniquePrefix(), { freshnessBoundMs: 600 });
      const proxy = new TcpProxy(NATS_HOST, NATS_PORT);
      proxies.push(proxy);
      await proxy.start();

      const direct = await open(config, "direct");
      const existing = "spiffe://example.org/ns/n/sa/existing";
      await direct.put(riskFor(existing, "low", T0));
      const log = captureLogger();
      const behind = await open({ ...config, bus: proxy.url }, "behind-proxy", log.logger);
      expect(behind.get(existing, "risk")?.data.level).toBe("low");
      await eventually(() => behind.freshness(Date.now()).fresh, 2_000, "fresh while connected");

      await proxy.stop();
      const cutAt = Date.now();
      // Written while the proxied instance cannot hear: a new key and an update of an old one.
      const fresh = "spiffe://example.org/ns/n/sa/new";
      await direct.put(riskFor(fresh, "critical", T0));
      await direct.put(riskFor(existing, "high", T0 + 1));

      await eventually(() => !behind.freshness(Date.now()).fresh, 3_000, "stale after the bound");
      const staleAt = Date.now();
      expect(staleAt - cutAt).toBeGreaterThanOrEqual(500);
      const view = behind.freshness(Date.now());
      expect(view.ageMs).toBeGreaterThan(600);
      expect(behind.get(fresh, "risk")).toBeUndefined();
      expect(behind.get(existing, "risk")?.data.level).toBe("low");
      // Writes through an unreachable bus fail rather than pretend.
      await expect(behind.put(riskFor("spiffe://example.org/x", "low", T0))).rejects.toMatchObject({ code: "unavailable" });

      await proxy.start();
      await eventually(() => behind.get(fresh, "risk")?.data.level === "critical", 10_000, "new key arrives after reconnect");
      expect(behind.get(existing, "risk")?.data.level).toBe("high");
      await eventually(() => behind.freshness(Date.now()).fresh, 5_000, "fresh again");
      expect(log.warnings().some((msg) => msg.includes("lost the signal bus"))).toBe(true);
      expect(log.lines.some((line) => line.msg === "caught up with the signal bucket")).toBe(true);

      // And the watch keeps going after the reconnect.
      await direct.put(riskFor(fresh, "none", T0 + 2));
      await eventually(() => behind.get(fresh, "risk")?.data.level === "none", 5_000, "updates after reconnect");
    }, 40_000);

    it("ignores KV entries Vigil did not write", async () => {
      const config = configFor(uniquePrefix());
      const log = captureLogger();
      const store = await open(config, "a", log.logger);
      const kv = await new Kvm(await adminConnection()).open(signalsBucketName(config.bucketPrefix));
      await kv.put("not.a.signal.key", "{}");
      await kv.put(kvKeyFor("spiffe://example.org/a", "risk", ""), "not json");
      await store.put(riskFor("spiffe://example.org/b", "low", T0));
      await eventually(() => log.warnings().length >= 2);
      expect(store.size()).toBe(1);
    });

    it("forgets a value deleted from the bucket", async () => {
      const config = configFor(uniquePrefix());
      const store = await open(config, "a");
      const subject = "spiffe://example.org/deleted";
      await store.put(riskFor(subject, "high", T0));
      const kv = await new Kvm(await adminConnection()).open(signalsBucketName(config.bucketPrefix));
      await kv.delete(kvKeyFor(subject, "risk", ""));
      await eventually(() => store.get(subject, "risk") === undefined);
      expect((await store.put(riskFor(subject, "low", T0 - 5))).status).toBe("written");
    });

    it("rejects ready() with unavailable when NATS cannot be reached", async () => {
      const port = await freePort();
      const store = createNatsStore(configFor(uniquePrefix(), { bus: `nats://127.0.0.1:${port}` }), { logger: silent });
      await expect(store.ready()).rejects.toMatchObject({ code: "unavailable" });
      expect(store.freshness(Date.now()).fresh).toBe(false);
      await store.close();
    });

    it("is not fresh after close and refuses writes", async () => {
      const store = await open(configFor(uniquePrefix()), "a");
      await store.close();
      expect(store.freshness(Date.now()).fresh).toBe(false);
      await expect(store.put(riskFor("spiffe://example.org/a", "low", T0))).rejects.toMatchObject({ code: "unavailable" });
    });
  });
});
