// SSF push delivery end to end: a transmitter POSTs signed SETs to the real HTTP port; a valid
// CAEP event changes the next Check, bad ones get RFC 8935 errors and write nothing.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CAEP, RISC } from "../../src/signals/ssf/index.js";
import { createEnvoyClient, type EnvoyClient } from "../support/envoy-client.js";
import { startTestVigil, type TestVigil } from "../support/vigil.js";

const ISSUER = "https://idp.example.org/";
const AUDIENCE = "https://vigil.example.org/ssf";
const CRM = "spiffe://example.org/ns/crm/sa/sync";
const BOT = "spiffe://example.org/ns/agents/sa/support-bot";

describe("SSF push receiver on the HTTP port", () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-ssf-"));
  let key: CryptoKey;
  let otherKey: CryptoKey;
  let vigil: TestVigil;
  let client: EnvoyClient;
  let jti = 0;

  beforeAll(async () => {
    const pair = await generateKeyPair("ES256");
    key = pair.privateKey;
    otherKey = (await generateKeyPair("ES256")).privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: "t1", alg: "ES256", use: "sig" };
    const jwksFile = join(dir, "jwks.json");
    writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
    vigil = await startTestVigil({ ssf: { issuer: ISSUER, audience: [AUDIENCE], jwksFile } }, Date.now());
    vigil.clock.now = Date.now();
    client = createEnvoyClient(vigil.grpcAddress);
  });

  afterAll(async () => {
    client.close();
    await vigil.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function set(events: Record<string, unknown>, subject: string, options: { aud?: string; iss?: string; signWith?: CryptoKey; id?: string } = {}): Promise<string> {
    jti += 1;
    return new SignJWT({ events, sub_id: { format: "uri", uri: subject } })
      .setProtectedHeader({ alg: "ES256", kid: "t1", typ: "secevent+jwt" })
      .setIssuer(options.iss ?? ISSUER)
      .setAudience(options.aud ?? AUDIENCE)
      .setIssuedAt()
      .setJti(options.id ?? `set-${jti}`)
      .sign(options.signWith ?? key);
  }

  async function push(body: string, contentType = "application/secevent+jwt"): Promise<{ status: number; json: unknown }> {
    const res = await fetch(`${vigil.httpUrl}/ssf/events`, { method: "POST", headers: { "content-type": contentType, accept: "application/json" }, body });
    const text = await res.text();
    return { status: res.status, json: text === "" ? undefined : JSON.parse(text) };
  }

  it("applies a CAEP risk-level-change to the very next Check", async () => {
    const read = { sourcePrincipal: CRM, host: "payments", method: "GET", path: "/v1/payments/7" };
    expect((await client.check(read)).status?.code ?? 0).toBe(0);
    const token = await set({ [CAEP.riskLevelChange]: { principal: "SERVICE", current_level: "HIGH", risk_reason: "rate spike", event_timestamp: Math.floor(Date.now() / 1000) } }, CRM);
    expect(await push(token)).toEqual({ status: 202, json: undefined });
    const after = await client.check(read);
    expect(after.status?.code).toBe(7);
  });

  it("refuses bad SETs with the RFC's errors and writes nothing", async () => {
    const before = vigil.store.list(BOT).length;
    const event = { [RISC.accountDisabled]: { reason: "hijacking" } };
    const replayed = await set(event, BOT, { id: "replay-me" });
    const cases: [string, Promise<string> | string, number, string | undefined][] = [
      ["bad signature", set(event, BOT, { signWith: otherKey }), 400, "invalid_key"],
      ["wrong audience", set(event, BOT, { aud: "https://someone-else.example.org" }), 400, "invalid_audience"],
      ["wrong issuer", set(event, BOT, { iss: "https://evil.example.org/" }), 400, "invalid_issuer"],
      ["alg none", `${Buffer.from(JSON.stringify({ alg: "none", typ: "secevent+jwt" })).toString("base64url")}.${Buffer.from(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, jti: "n1", iat: 1, events: event, sub_id: { format: "uri", uri: BOT } })).toString("base64url")}.`, 400, "invalid_key"],
      ["garbage body", "this is not a jwt", 400, "invalid_request"],
    ];
    for (const [name, token, status, err] of cases) {
      const res = await push(await token);
      expect({ name, status: res.status, err: (res.json as { err?: string } | undefined)?.err }).toEqual({ name, status, err });
    }
    expect(vigil.store.list(BOT).length).toBe(before);

    // The first delivery is applied; the identical SET again (a retry after a lost 202) is
    // acknowledged without a second write; the same jti with other content is a replay.
    expect((await push(replayed)).status).toBe(202);
    const held = vigil.store.get(BOT, "revocation");
    expect(held?.data.revoked).toBe(true);
    expect(await push(replayed)).toEqual({ status: 202, json: undefined });
    expect(vigil.store.get(BOT, "revocation")).toEqual(held);
    const forged = await push(await set({ [RISC.accountPurged]: {} }, BOT, { id: "replay-me" }));
    expect(forged.status).toBe(400);
    expect(forged.json).toMatchObject({ err: "invalid_request" });
  });

  it("answers a body over 64 KiB 413 in RFC 8935 form and writes nothing", async () => {
    const before = vigil.store.list(BOT).length;
    for (const size of [64 * 1024 + 1, 3 * 1024 * 1024]) {
      const res = await push("a".repeat(size));
      expect(res.status).toBe(413);
      expect(res.json).toEqual({ err: "invalid_request", description: expect.stringMatching(/at most 65536 bytes/) as unknown });
    }
    expect(vigil.store.list(BOT).length).toBe(before);
  });
});
