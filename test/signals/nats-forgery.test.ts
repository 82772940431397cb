// Forged bus values: a second, real NATS client writes straight into the signal bucket, past every
// check a Vigil instance makes on its own writes. The instance watching the bucket must judge each
// value by the same rules: its view (and so every decision) stays as it was, the refusal is logged
// without the value and counted, and a sticky value the forgery replaced is put back on the bus.

import { randomBytes } from "node:crypto";
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { storeSchema } from "../../src/config/schema.js";
import { createNatsStore, signalsBucketName } from "../../src/signals/index.js";
import type { NatsSignalStore, Signal } from "../../src/signals/index.js";
import { kvKeyFor } from "../../src/signals/nats-store.js";
import { createMetrics } from "../../src/telemetry/metrics.js";
import type { Metrics } from "../../src/telemetry/metrics.js";
import { captureLogger, eventually } from "./support.js";
import type { CapturedLog } from "./support.js";
import { canConnect } from "./tcp-proxy.js";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const target = new URL(NATS_URL.replace(/^nats:/, "http:"));
const natsUp = await canConnect(target.hostname, Number(target.port || "4222"));
const suite = natsUp || process.env.CI === "true" ? describe : describe.skip;

const AGENT = "spiffe://example.org/ns/agents/sa/planner";
const KEY = "sha256:6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b";
const RAW_KEY = "demo-api-key-K1-0001";

interface World {
  store: NatsSignalStore;
  kv: KV;
  log: CapturedLog;
  metrics: Metrics;
  bucket: string;
}

async function refusedCount(metrics: Metrics, reason: string): Promise<number> {
  const metric = await metrics.busValuesRefused.get();
  return metric.values.find((value) => value.labels.reason === reason)?.value ?? 0;
}

/** What the store holds that a decision reads, for comparing before and after a forgery. */
function view(store: NatsSignalStore): Record<string, unknown> {
  return {
    revoked: store.get(AGENT, "revocation")?.data.revoked,
    credential: store.get(KEY, "credential")?.data.state,
    keyRevoked: store.get(KEY, "revocation")?.data.revoked,
    risk: store.get(AGENT, "risk")?.data.level,
    size: store.size(),
  };
}

function value(signal: Record<string, unknown>): string {
  return JSON.stringify({ name: "", source: "forger", observedAt: Date.now(), ...signal });
}

interface Forgery {
  name: string;
  /** Writes the forgery with the second client. */
  forge: (kv: KV) => Promise<unknown>;
  reason: string;
  /** The key whose held value must be restored on the bus, when the forgery replaced a sticky one. */
  repaired?: string;
}

const revocationKey = kvKeyFor(AGENT, "revocation", "");
const credentialKey = kvKeyFor(KEY, "credential", "");
const riskKey = kvKeyFor(AGENT, "risk", "");

const forgeries: Forgery[] = [
  {
    name: "garbage over a revocation",
    forge: (kv) => kv.put(revocationKey, "\u0000not json{"),
    reason: "invalid", repaired: revocationKey,
  },
  {
    name: "a put lifting a revocation",
    forge: (kv) => kv.put(revocationKey, value({ id: "f1", kind: "revocation", subject: AGENT, data: { revoked: false, reason: "x", by: "x" } })),
    reason: "lifts_revocation", repaired: revocationKey,
  },
  {
    name: "a revocation lifted by reusing its own event id",
    forge: (kv) => kv.put(revocationKey, value({ id: "held-revocation", kind: "revocation", subject: AGENT, data: { revoked: false, reason: "x", by: "x" } })),
    reason: "reused_id", repaired: revocationKey,
  },
  {
    name: "a delete of a revocation",
    forge: (kv) => kv.delete(revocationKey),
    reason: "deletes_sticky", repaired: revocationKey,
  },
  {
    name: "a purge of a compromised credential",
    forge: (kv) => kv.purge(credentialKey),
    reason: "deletes_sticky", repaired: credentialKey,
  },
  {
    name: "a compromised credential softened to active, dated later",
    forge: (kv) => kv.put(credentialKey, value({ id: "f2", kind: "credential", subject: KEY, observedAt: Date.now() + 1_000, data: { state: "active" } })),
    reason: "softens_credential", repaired: credentialKey,
  },
  {
    name: "a far-future risk value",
    forge: (kv) => kv.put(riskKey, value({ id: "f3", kind: "risk", subject: AGENT, observedAt: Date.now() + 86_400_000, data: { level: "none" } })),
    reason: "future",
  },
  {
    name: "an older risk value",
    forge: (kv) => kv.put(riskKey, value({ id: "f4", kind: "risk", subject: AGENT, observedAt: 1, data: { level: "none" } })),
    reason: "stale",
  },
  {
    name: "a risk value stored under another subject's key",
    forge: (kv) => kv.put(riskKey, value({ id: "f5", kind: "risk", subject: "spiffe://example.org/ns/x/sa/y", data: { level: "none" } })),
    reason: "wrong_key",
  },
  {
    name: "a risk value for a subject that is not a SPIFFE ID",
    forge: (kv) => kv.put(kvKeyFor("bot", "risk", ""), value({ id: "f6", kind: "risk", subject: "bot", data: { level: "none" } })),
    reason: "invalid",
  },
  {
    name: "a credential keyed by the raw secret",
    forge: (kv) => kv.put(kvKeyFor(RAW_KEY, "credential", ""), value({ id: "f7", kind: "credential", subject: RAW_KEY, data: { state: "active" } })),
    reason: "invalid",
  },
  {
    name: "a key Vigil never writes",
    forge: (kv) => kv.put("risk.not.a.vigil.key", "{}"),
    reason: "unknown_key",
  },
];

suite("forged values on the signal bus (a second NATS client)", () => {
  let admin: NatsConnection | undefined;
  let world: World | undefined;

  beforeAll(async () => {
    admin = await connect({ servers: NATS_URL, name: "vigil-tests-forger" });
  });

  afterAll(async () => {
    await admin?.drain();
  });

  afterEach(async () => {
    if (world === undefined) return;
    await world.store.close();
    await world.kv.destroy().catch(() => undefined);
    world = undefined;
  });

  async function start(): Promise<World> {
    const prefix = `vigiltest_forge_${randomBytes(6).toString("hex")}`;
    const log = captureLogger();
    const metrics = createMetrics({ defaultMetrics: false });
    const store = createNatsStore(storeSchema.parse({ bus: NATS_URL, bucketPrefix: prefix, freshnessBoundMs: 1_000 }), {
      logger: log.logger, name: "watched", metrics,
    });
    await store.ready();
    const bucket = signalsBucketName(prefix);
    if (admin === undefined) throw new Error("no admin connection");
    const kv = await new Kvm(admin).open(bucket);
    const now = Date.now();
    await store.put({ id: "held-revocation", kind: "revocation", subject: AGENT, source: "vigil", observedAt: now, data: { revoked: true, reason: "policy", by: "vigil:guard" } });
    await store.put({ id: "held-credential", kind: "credential", subject: KEY, source: "scanner", observedAt: now, data: { state: "compromised" } });
    await store.put({ id: "held-risk", kind: "risk", subject: AGENT, source: "scanner", observedAt: now, data: { level: "high" } });
    world = { store, kv, log, metrics, bucket };
    return world;
  }

  it.each(forgeries)("refuses $name, counts it as $reason, and keeps its view", async ({ forge, reason, repaired }) => {
    const { store, kv, log, metrics } = await start();
    const before = view(store);
    await forge(kv);
    await eventually(() => log.lines.some((line) => line.msg === "refused a value from the signal bus"), 5_000, "the refusal is logged");
    expect(await refusedCount(metrics, reason)).toBe(1);
    expect(view(store)).toEqual(before);
    if (repaired !== undefined) {
      // Restored on the bus, so an instance that starts later does not load the forgery.
      const held = JSON.parse(JSON.stringify(repaired === revocationKey ? store.get(AGENT, "revocation") : store.get(KEY, "credential"))) as Signal;
      await eventually(() => log.lines.some((line) => line.msg === "restored a sticky value on the signal bus"), 5_000, "repair");
      const entry = await kv.get(repaired);
      expect(entry?.json<Signal>()).toEqual(held);
      const late = createNatsStore(storeSchema.parse({ bus: NATS_URL, bucketPrefix: world?.bucket.replace(/-signals$/, "") }), {
        logger: captureLogger().logger, name: "late",
      });
      await late.ready();
      expect(view(late)).toMatchObject({ revoked: true, credential: "compromised" });
      await late.close();
    }
    // Every store write still works against the key, now at the forgery's revision or later.
    expect((await store.put({ id: "after", kind: "risk", subject: AGENT, source: "scanner", observedAt: Date.now() + 10, data: { level: "critical" } })).status)
      .toBe("written");
    const text = JSON.stringify(log.lines);
    expect(text).not.toContain(RAW_KEY);
    expect(text).not.toContain(Buffer.from(RAW_KEY).toString("base64url"));
  });

  it("applies a reinstatement written by another instance, and says so on every instance", async () => {
    const { store, log } = await start();
    const other = createNatsStore(storeSchema.parse({ bus: NATS_URL, bucketPrefix: world?.bucket.replace(/-signals$/, "") }), {
      logger: captureLogger().logger, name: "other",
    });
    await other.ready();
    try {
      await other.reinstate(AGENT, "alice", "false positive");
      await eventually(() => store.get(AGENT, "revocation")?.data.revoked === false, 5_000, "lifted");
      const audit = log.lines.find((line) => line.msg === "revocation lifted by a reinstatement from the signal bus");
      expect(audit).toMatchObject({ subject: AGENT, by: "alice", reason: "false positive" });
    } finally {
      await other.close();
    }
  });
});
