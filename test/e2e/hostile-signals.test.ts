// Hostile signal writes against a real Vigil in cluster mode (real NATS at 127.0.0.1:4222, one
// bucket per row), judged by what Envoy would get back over real gRPC: every row is an attempt
// to talk Vigil out of refusing a compromised or revoked credential, through a local write or a
// second NATS client writing straight into the bucket, and none may change the decision.

import { randomBytes } from "node:crypto";
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { VigilError } from "../../src/errors/index.js";
import type { SignalInput } from "../../src/signals/index.js";
import { signalsBucketName } from "../../src/signals/index.js";
import { kvKeyFor } from "../../src/signals/nats-store.js";
import { createEnvoyClient, type DecodedCheckResponse, type EnvoyClient } from "../support/envoy-client.js";
import { DEPLOYER, K1, K1_FP } from "../support/example-world.js";
import { startTestVigil, type TestVigil } from "../support/vigil.js";
import { canConnect } from "../signals/tcp-proxy.js";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const target = new URL(NATS_URL.replace(/^nats:/, "http:"));
const natsUp = await canConnect(target.hostname, Number(target.port || "4222"));
const suite = natsUp || process.env.CI === "true" ? describe : describe.skip;

const DAY = 86_400_000;

interface Ctx {
  vigil: TestVigil;
  kv: KV;
  now: number;
}

function outcomeOf(res: DecodedCheckResponse): string {
  if (res.status?.code === undefined || res.status.code === 0) return "allow";
  return String((JSON.parse(res.denied_response?.body ?? "{}") as { outcome?: string }).outcome);
}

async function refusal(promise: Promise<unknown>): Promise<VigilError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof VigilError) return error;
    throw error;
  }
  throw new Error("expected the write to be refused");
}

function credential(state: string, observedAt: number, id = `c-${randomBytes(4).toString("hex")}`): SignalInput {
  return { id, kind: "credential", subject: K1_FP, source: "ssf:https://idp.example.com/", observedAt, data: { state } } as SignalInput;
}

function revocation(revoked: boolean, observedAt: number, extra: Partial<SignalInput> = {}): SignalInput {
  return {
    id: `r-${randomBytes(4).toString("hex")}`, kind: "revocation", subject: K1_FP, source: "secret-scanner", observedAt,
    data: { revoked, reason: "leaked", by: "scanner" }, ...extra,
  } as SignalInput;
}

function forged(signal: Record<string, unknown>): string {
  return JSON.stringify({ name: "", source: "forger", ...signal });
}

interface Row {
  attack: string;
  /** State in force before the attack (written the ordinary way). */
  given: (ctx: Ctx) => Promise<unknown>;
  /** The attack; may assert on how it is refused. */
  attempt: (ctx: Ctx) => Promise<unknown>;
  /** The outcome Envoy gets for the deployer's request with K1 after the attack. */
  expected: "revoke" | "deny";
}

const credentialKey = kvKeyFor(K1_FP, "credential", "");
const revocationKey = kvKeyFor(K1_FP, "revocation", "");

const rows: Row[] = [
  {
    attack: "a RISC credential-compromise dated before the held active value (out of order)",
    given: () => Promise.resolve(),
    attempt: async ({ vigil, now }) => {
      expect((await vigil.store.put(credential("compromised", now - 60 * DAY))).status).toBe("written");
    },
    expected: "revoke",
  },
  {
    attack: "an active value written locally after the compromise",
    given: ({ vigil, now }) => vigil.store.put(credential("compromised", now)),
    attempt: async ({ vigil, now }) => {
      expect((await refusal(vigil.store.put(credential("active", now + 1_000)))).code).toBe("conflict");
    },
    expected: "revoke",
  },
  {
    attack: "a forged bus value softening the compromise to active",
    given: ({ vigil, now }) => vigil.store.put(credential("compromised", now)),
    attempt: ({ kv, now }) => kv.put(credentialKey, forged({ id: "f1", kind: "credential", subject: K1_FP, observedAt: now + 1_000, data: { state: "active" } })),
    expected: "revoke",
  },
  {
    attack: "a forged bus value lifting the key's revocation",
    given: ({ vigil, now }) => vigil.store.put(revocation(true, now)),
    attempt: ({ kv, now }) => kv.put(revocationKey, forged({ id: "f2", kind: "revocation", subject: K1_FP, observedAt: now + 1_000, data: { revoked: false, reason: "x", by: "x" } })),
    expected: "deny",
  },
  {
    attack: "a forged delete of the key's revocation",
    given: ({ vigil, now }) => vigil.store.put(revocation(true, now)),
    attempt: ({ kv }) => kv.delete(revocationKey),
    expected: "deny",
  },
  {
    attack: "garbage written over the key's revocation on the bus",
    given: ({ vigil, now }) => vigil.store.put(revocation(true, now)),
    attempt: ({ kv }) => kv.put(revocationKey, "{\"kind\":\"revocation\""),
    expected: "deny",
  },
  {
    attack: "a revocation value with a past expiresAt written locally",
    given: ({ vigil, now }) => vigil.store.put(revocation(true, now)),
    attempt: async ({ vigil, now }) => {
      expect((await refusal(vigil.store.put(revocation(true, now + 1_000, { expiresAt: now - 1 })))).code).toBe("invalid_input");
    },
    expected: "deny",
  },
  {
    attack: "a forged bus revocation value with a past expiresAt",
    given: ({ vigil, now }) => vigil.store.put(revocation(true, now)),
    attempt: ({ kv, now }) => kv.put(revocationKey, forged({ id: "f3", kind: "revocation", subject: K1_FP, observedAt: now + 1_000, expiresAt: now - 1, data: { revoked: true, reason: "x", by: "x" } })),
    expected: "deny",
  },
  {
    attack: "a far-future value written first so that later revocations look stale",
    given: () => Promise.resolve(),
    attempt: async ({ vigil, now }) => {
      expect((await refusal(vigil.store.put(revocation(false, now + 365 * DAY)))).code).toBe("invalid_input");
      expect((await vigil.store.put(revocation(true, now))).status).toBe("written");
    },
    expected: "deny",
  },
  {
    attack: "a far-future active value forged on the bus, then a compromise",
    given: () => Promise.resolve(),
    attempt: async ({ vigil, kv, now }) => {
      await kv.put(credentialKey, forged({ id: "f4", kind: "credential", subject: K1_FP, observedAt: now + 365 * DAY, data: { state: "active" } }));
      expect((await vigil.store.put(credential("compromised", now))).status).toBe("written");
    },
    expected: "revoke",
  },
  {
    attack: "a credential signal keyed by the raw key (refused without echoing it), then the compromise",
    given: () => Promise.resolve(),
    attempt: async ({ vigil, kv, now }) => {
      const error = await refusal(vigil.store.put({ ...credential("active", now), subject: K1 }));
      expect(error.code).toBe("invalid_input");
      expect(error.message).not.toContain(K1);
      await kv.put(kvKeyFor(K1, "credential", ""), forged({ id: "f5", kind: "credential", subject: K1, observedAt: now, data: { state: "active" } }));
      await vigil.store.put(credential("compromised", now));
    },
    expected: "revoke",
  },
];

suite("hostile signal writes, judged over real gRPC", () => {
  let admin: NatsConnection | undefined;
  let vigil: TestVigil | undefined;
  let client: EnvoyClient | undefined;
  let bucket = "";

  beforeAll(async () => {
    admin = await connect({ servers: NATS_URL, name: "vigil-tests-hostile-signals" });
  });

  afterAll(async () => {
    await admin?.drain();
  });

  afterEach(async () => {
    client?.close();
    await vigil?.close();
    if (admin !== undefined && bucket !== "") await (await new Kvm(admin).open(bucket)).destroy().catch(() => undefined);
    client = undefined;
    vigil = undefined;
    bucket = "";
  });

  it.each(rows)("$attack: still $expected", async ({ given, attempt, expected }) => {
    const prefix = `vigiltest_hostile_${randomBytes(6).toString("hex")}`;
    bucket = signalsBucketName(prefix);
    vigil = await startTestVigil({ store: { bus: NATS_URL, bucketPrefix: prefix } });
    client = createEnvoyClient(vigil.grpcAddress);
    if (admin === undefined) throw new Error("no NATS connection");
    const kv = await new Kvm(admin).open(bucket);
    const ctx: Ctx = { vigil, kv, now: vigil.clock.now };
    const probe = async (): Promise<string> => outcomeOf(await client!.check({
      sourcePrincipal: DEPLOYER, host: "deploy-api", method: "GET", path: "/v1/deployments/12", apiKey: K1,
    }));

    await given(ctx);
    await attempt(ctx);
    // The watch applies the bucket in revision order: once a marker written after the attack is
    // seen, the instance has judged everything the attack put on the bus.
    const marker = "spiffe://example.org/ns/test/sa/marker";
    await kv.put(kvKeyFor(marker, "risk", ""), forged({ id: "marker", kind: "risk", subject: marker, observedAt: ctx.now, data: { level: "low" } }));
    const deadline = Date.now() + 5_000;
    while (vigil.store.get(marker, "risk") === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(vigil.store.get(marker, "risk")).toBeDefined();
    await vigil.effects.drain();
    expect(await probe()).toBe(expected);
    // And it stays so once Vigil's own revocation (if any) has landed.
    await vigil.effects.drain();
    expect(await probe()).toBe(expected);
  }, 20_000);
});
