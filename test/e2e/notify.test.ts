// Vigil as a CAEP transmitter, end to end: a real gRPC Check revokes a leaked key, and the
// receiver (a real HTTP server on loopback) gets a SET it can verify with the JWKS Vigil serves;
// an admin reinstate is told too; a receiver that is down during the revocation still gets it
// after Vigil restarts, from the outbox file beside the journal.

import { createHmac, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { outboxStreamName } from "../../src/outbox/index.js";
import { CAEP } from "../../src/signals/ssf/index.js";
import { canConnect } from "../signals/tcp-proxy.js";
import { createEnvoyClient, type EnvoyLikeRequest } from "../support/envoy-client.js";
import { DEPLOYER, K1, K1_FP, SUPPORT_BOT } from "../support/example-world.js";
import { deleteStreamsOf } from "../support/nats-cleanup.js";
import { APPROVER_TOKEN, startTestVigil, type TestVigil } from "../support/vigil.js";
import { startReceiver, type TestReceiver } from "../outbox/receiver.js";
import { eventually } from "../signals/support.js";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const natsTarget = new URL(NATS_URL.replace(/^nats:/, "http:"));
const natsUp = await canConnect(natsTarget.hostname, Number(natsTarget.port || "4222"));
if (!natsUp) console.warn(`the cluster-mode notice test is skipped: no NATS at ${NATS_URL}${process.env.CI === "true" ? " (CI: it runs and fails)" : ""}`);

const sidecar: EnvoyLikeRequest = { host: "deploy-api", destination: "deploy-api", destinationPrincipal: "spiffe://example.org/ns/vigil-demo/sa/deploy-api" };
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

function files(): { dir: string; key: string; token: string } {
  const dir = mkdtempSync(join(tmpdir(), "vigil-notify-"));
  const key = join(dir, "set-signing.pem");
  writeFileSync(key, generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "pem", type: "pkcs8" }));
  const token = join(dir, "idp-token");
  writeFileSync(token, "Bearer idp-push-token-0123456789\n");
  return { dir, key, token };
}

async function start(receiver: TestReceiver, f: ReturnType<typeof files>, issuer: string, journal = ""): Promise<TestVigil> {
  const vigil = await startTestVigil({
    store: { journalPath: journal },
    transmitter: {
      issuer, signingKeyFile: f.key,
      receivers: [{ name: "idp", url: `${receiver.url}/ssf/push`, audience: "https://idp.example.com", authorizationFile: f.token }],
    },
    revocationHookUrl: `${receiver.url}/hook`,
    outbox: { retryDelaysMs: [50, 100] },
  });
  return vigil;
}

async function revokeK1(vigil: TestVigil): Promise<void> {
  const put = await vigil.admin("POST", "/v1/signals", { kind: "credential", subject: K1_FP, data: { state: "leaked", owner: DEPLOYER } });
  expect(put.status).toBe(201);
  const client = createEnvoyClient(vigil.grpcAddress);
  try {
    await client.check({ sourcePrincipal: DEPLOYER, ...sidecar, method: "POST", path: "/v1/release", apiKey: K1 });
  } finally {
    client.close();
  }
  await vigil.effects.drain();
}

describe("Vigil as a CAEP transmitter", () => {
  it("pushes a verifiable credential-change SET and the revocation hook when a Check revokes a key, and tells of the reinstate", async () => {
    const receiver = await startReceiver();
    cleanup.push(() => receiver.close());
    const f = files();
    // The issuer is where receivers reach Vigil's ops port: known only once it listens, so a
    // first instance finds the port and the real one takes it over.
    let vigil = await start(receiver, f, "http://127.0.0.1:1");
    const port = vigil.httpPort;
    await vigil.close();
    vigil = await startTestVigil({
      http: { port },
      transmitter: {
        issuer: `http://127.0.0.1:${String(port)}`, signingKeyFile: f.key,
        receivers: [{ name: "idp", url: `${receiver.url}/ssf/push`, audience: "https://idp.example.com", authorizationFile: f.token }],
      },
      revocationHookUrl: `${receiver.url}/hook`,
    });
    const v = vigil;
    cleanup.push(() => v.close());

    await revokeK1(vigil);
    await vigil.notifications?.idle();
    const pushes = receiver.received.filter((r) => r.path === "/ssf/push");
    expect(pushes).toHaveLength(1);
    expect(pushes[0]?.headers["content-type"]).toBe("application/secevent+jwt");
    expect(pushes[0]?.headers.authorization).toBe("Bearer idp-push-token-0123456789");
    expect(receiver.received.filter((r) => r.path === "/hook").map((r) => JSON.parse(r.body) as unknown))
      .toEqual([expect.objectContaining({ type: "vigil.revocation", subject: K1_FP, target: "credential" })]);

    // What a receiver does: discover the transmitter, fetch its keys, verify the SET.
    const discovery = await (await fetch(`${vigil.httpUrl}/.well-known/ssf-configuration`)).json() as { issuer: string; jwks_uri: string };
    expect(discovery.issuer).toBe(`http://127.0.0.1:${String(port)}`);
    const { payload } = await jwtVerify(pushes[0]?.body ?? "", createRemoteJWKSet(new URL(discovery.jwks_uri)), {
      issuer: discovery.issuer, audience: "https://idp.example.com", typ: "secevent+jwt",
    });
    expect(payload.sub_id).toEqual({ format: "opaque", id: K1_FP });
    expect((payload.events as Record<string, unknown>)[CAEP.credentialChange]).toMatchObject({ change_type: "revoke" });
    // The key itself never leaves Vigil.
    expect(JSON.stringify(receiver.received)).not.toContain(K1);

    const lifted = await vigil.admin("POST", "/v1/signals/reinstate", { subject: K1_FP, reason: "rotated; the old key is gone" });
    expect(lifted.status).toBe(200);
    await vigil.notifications?.idle();
    const after = receiver.received.filter((r) => r.path === "/ssf/push");
    expect(after).toHaveLength(2);
    const reinstated = await jwtVerify(after[1]?.body ?? "", createRemoteJWKSet(new URL(discovery.jwks_uri)), { audience: "https://idp.example.com" });
    expect((reinstated.payload.events as Record<string, unknown>)[CAEP.credentialChange])
      .toMatchObject({ change_type: "update", initiating_entity: "admin", reason_admin: { en: "rotated; the old key is gone" } });
    // The hook has only ever been told of revocations.
    expect(receiver.received.filter((r) => r.path === "/hook")).toHaveLength(1);
  });

  it("serves no transmitter metadata when no issuer is configured", async () => {
    const vigil = await startTestVigil();
    cleanup.push(() => vigil.close());
    expect((await fetch(`${vigil.httpUrl}/.well-known/jwks.json`)).status).toBe(404);
    expect((await fetch(`${vigil.httpUrl}/.well-known/ssf-configuration`)).status).toBe(404);
    expect(vigil.notifications).toBeUndefined();
  });

  it("keeps a notice the receiver never took across a restart, and sends it then", async () => {
    const receiver = await startReceiver({ status: 503 });
    cleanup.push(() => receiver.close());
    const f = files();
    const journal = join(f.dir, "journal.jsonl");
    const first = await start(receiver, f, "https://vigil.example.com", journal);
    await revokeK1(first);
    await eventually(() => receiver.received.filter((r) => r.path === "/ssf/push").length >= 2, 5_000, "two refused pushes");
    await first.close();
    expect(readFileSync(join(f.dir, "outbox.jsonl"), "utf8")).toContain("caep/idp/");

    receiver.fallback = { status: 202 };
    const delivered = receiver.received.length;
    const second = await start(receiver, f, "https://vigil.example.com", journal);
    cleanup.push(() => second.close());
    await second.notifications?.idle();
    const resent = receiver.received.slice(delivered);
    expect(resent.map((r) => r.path).sort()).toEqual(["/hook", "/ssf/push"]);
    // The same SET as before: signed once, when the revocation became durable.
    expect(resent.find((r) => r.path === "/ssf/push")?.body).toBe(receiver.received.find((r) => r.path === "/ssf/push")?.body);
  });

  it("tells the approval webhook, signed, when a step-up opens an approval and when it is approved", async () => {
    const receiver = await startReceiver({ status: 204 });
    cleanup.push(() => receiver.close());
    const f = files();
    const secretFile = join(f.dir, "webhook-secret");
    writeFileSync(secretFile, "a-webhook-secret-of-32-bytes-000\n");
    const vigil = await startTestVigil({
      approvalWebhooks: [{ name: "chatops", url: `${receiver.url}/hooks/vigil`, secretFile }],
      consoleUrl: "https://vigil.example.com",
    });
    cleanup.push(() => vigil.close());
    const client = createEnvoyClient(vigil.grpcAddress);
    cleanup.push(() => { client.close(); return Promise.resolve(); });
    const call: EnvoyLikeRequest = {
      sourcePrincipal: SUPPORT_BOT, host: "change-mgmt", destination: "change-mgmt",
      destinationPrincipal: "spiffe://example.org/ns/vigil-demo/sa/change-mgmt", method: "POST", path: "/mcp",
      headers: { "content-type": "application/json" }, contextExtensions: { env: "prod" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "create_change", arguments: { title: "restart api" } } }),
    };
    await client.check(call);
    await eventually(() => receiver.received.length >= 1, 5_000, "the opened event");
    const opened = receiver.received[0];
    const event = JSON.parse(opened?.body ?? "{}") as { type: string; specversion: string; data: Record<string, unknown> };
    expect(opened?.headers["content-type"]).toMatch(/^application\/cloudevents\+json/);
    expect(event).toMatchObject({ specversion: "1.0", type: "vigil.approval.opened" });
    const id = String(event.data.approval_id);
    expect(id).toMatch(/^apr_/);
    expect(event.data).toMatchObject({
      caller: SUPPORT_BOT, status: "pending", console_url: `https://vigil.example.com/console/approvals/${id}`,
      commands: { approve: `vigil approvals approve ${id}`, deny: `vigil approvals deny ${id}` },
    });
    expect(String(event.data.rule)).not.toBe("");
    // What the receiver checks: the HMAC over id, timestamp and body with the shared secret.
    const signed = `${String(opened?.headers["webhook-id"])}.${String(opened?.headers["webhook-timestamp"])}.${opened?.body ?? ""}`;
    const expected = createHmac("sha256", "a-webhook-secret-of-32-bytes-000").update(signed).digest("base64");
    expect(opened?.headers["webhook-signature"]).toBe(`v1,${expected}`);

    expect((await vigil.admin("POST", `/v1/approvals/${id}/approve`, {}, APPROVER_TOKEN)).status).toBe(200);
    await eventually(() => receiver.received.length >= 2, 5_000, "the decided event");
    const decided = JSON.parse(receiver.received[1]?.body ?? "{}") as { type: string; data: Record<string, unknown> };
    expect(decided).toMatchObject({ type: "vigil.approval.decided", data: { approval_id: id, status: "approved" } });
    expect(String(decided.data.decided_by)).toContain("change-approver");
  });

  it.skipIf(!natsUp && process.env.CI !== "true")("in cluster mode sends each revocation once, from the shared stream, whichever replica revoked", async () => {
    const receiver = await startReceiver();
    cleanup.push(() => receiver.close());
    const f = files();
    const prefix = `vigilnotify_${randomBytes(4).toString("hex")}`;
    const settings = {
      store: { bus: NATS_URL, bucketPrefix: prefix },
      transmitter: {
        issuer: "https://vigil.example.com", signingKeyFile: f.key,
        receivers: [{ name: "idp", url: `${receiver.url}/ssf/push`, audience: "https://idp.example.com", authorizationFile: f.token }],
      },
    };
    const a = await startTestVigil(settings, Date.now());
    const b = await startTestVigil(settings, Date.now());
    cleanup.push(async () => {
      await a.close();
      await b.close();
      expect(await deleteStreamsOf(NATS_URL, prefix)).toContain(outboxStreamName(prefix));
    });
    expect(a.notifications?.outbox.kind).toBe("jetstream");
    await revokeK1(a);
    await eventually(() => receiver.received.length >= 1, 10_000, "the SET");
    // Both replicas consume the same stream; give the other one time to (wrongly) send it again.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(receiver.received.map((r) => r.path)).toEqual(["/ssf/push"]);
    const { payload } = await jwtVerify(receiver.received[0]?.body ?? "", createLocalJWKSet(b.notifications?.transmitter?.jwks() ?? { keys: [] }), { audience: "https://idp.example.com" });
    expect(payload.sub_id).toEqual({ format: "opaque", id: K1_FP });
  });
});
