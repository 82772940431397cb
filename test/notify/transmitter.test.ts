import { generateKeyPairSync } from "node:crypto";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { Transmitter, loadSigningKey, type RevocationChange } from "../../src/notify/index.js";
import { CAEP, RISC } from "../../src/signals/ssf/index.js";

const SPIFFE = "spiffe://example.org/ns/agents/sa/planner";
const FP = "sha256:6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b";

function pem(type: "rsa" | "ec" | "ed25519", bits = 2048): string {
  const pair = type === "rsa"
    ? generateKeyPairSync("rsa", { modulusLength: bits })
    : type === "ec" ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : generateKeyPairSync("ed25519");
  return pair.privateKey.export({ format: "pem", type: "pkcs8" }).toString();
}

const RSA = pem("rsa");

async function transmitter(key = RSA): Promise<Transmitter> {
  return Transmitter.fromConfig({
    issuer: "https://vigil.example.com/",
    signingKeyFile: "/keys/set.pem",
    receivers: [
      { name: "idp", url: "https://idp.example.com/ssf/push", audience: "https://idp.example.com", authorizationFile: "/keys/idp-token" },
      { name: "vault", url: "https://vault.example.com/caep", audience: "vault", authorizationFile: "" },
    ],
  }, (path) => path === "/keys/set.pem" ? key : "Bearer idp-push-token-0123");
}

const change = (over: Partial<RevocationChange>): RevocationChange => ({
  change: "revoke", subject: FP, target: "credential", reason: "leaked key seen in a public repository",
  eventId: "dec_123", caller: SPIFFE, rule: "payments/leaked-key", by: "vigil:payments/leaked-key", at: Date.UTC(2026, 10, 25, 12), ...over,
});

describe("the CAEP transmitter", () => {
  const table: { name: string; change: Partial<RevocationChange>; event: string; subId: unknown; payload: Record<string, unknown> }[] = [
    {
      name: "a revoked credential is a credential-change revoke on an opaque subject",
      change: {}, event: CAEP.credentialChange, subId: { format: "opaque", id: FP },
      payload: { change_type: "revoke", credential_type: "api-key", initiating_entity: "policy", reason_admin: { en: "leaked key seen in a public repository" } },
    },
    {
      name: "a revoked identity is a session-revoked on its SPIFFE ID",
      change: { subject: SPIFFE, target: "identity" }, event: CAEP.sessionRevoked, subId: { format: "uri", uri: SPIFFE },
      payload: { initiating_entity: "policy" },
    },
    {
      name: "a reinstated credential is a credential-change update by an admin",
      change: { change: "reinstate", reason: "rotated and verified", by: "ops-admin" }, event: CAEP.credentialChange, subId: { format: "opaque", id: FP },
      payload: { change_type: "update", initiating_entity: "admin", reason_admin: { en: "rotated and verified" } },
    },
    {
      name: "a reinstated identity is a RISC account-enabled",
      change: { change: "reinstate", subject: SPIFFE, target: "identity" }, event: RISC.accountEnabled, subId: { format: "uri", uri: SPIFFE }, payload: {},
    },
  ];

  for (const c of table) {
    it(c.name, async () => {
      const t = await transmitter();
      const notices = await t.notices(change(c.change));
      expect(notices.map((n) => n.receiver)).toEqual(["idp", "vault"]);
      const keys = createLocalJWKSet(t.jwks());
      for (const [i, n] of notices.entries()) {
        expect(n.contentType).toBe("application/secevent+jwt");
        expect(decodeProtectedHeader(n.body)).toMatchObject({ typ: "secevent+jwt", alg: "RS256", kid: t.kid });
        const { payload } = await jwtVerify(n.body, keys, {
          issuer: "https://vigil.example.com", audience: i === 0 ? "https://idp.example.com" : "vault", typ: "secevent+jwt",
        });
        expect(payload.sub_id).toEqual(c.subId);
        expect(payload.txn).toBe("dec_123");
        expect(payload.iat).toBe(Date.UTC(2026, 10, 25, 12) / 1000);
        // SSF: no exp and no sub; exactly one event.
        expect(payload).not.toHaveProperty("exp");
        expect(payload).not.toHaveProperty("sub");
        const events = payload.events as Record<string, Record<string, unknown>>;
        expect(Object.keys(events)).toEqual([c.event]);
        expect(events[c.event]).toMatchObject(c.payload);
      }
      expect(notices[0]?.body).not.toBe(notices[1]?.body);
    });
  }

  it("gives every SET its own jti and names each notice by receiver and event", async () => {
    const t = await transmitter();
    const a = await t.notices(change({}));
    const b = await t.notices(change({}));
    const jti = (body: string): unknown => (JSON.parse(Buffer.from(body.split(".")[1] ?? "", "base64url").toString()) as { jti: unknown }).jti;
    expect(new Set([...a, ...b].map((n) => jti(n.body))).size).toBe(4);
    // The same event for the same receiver has the same notice id: the outbox queues it once.
    expect(a.map((n) => n.id)).toEqual(b.map((n) => n.id));
  });

  it("pushes with the receiver's authorization header and asks for JSON answers", async () => {
    const t = await transmitter();
    const destinations = t.destinations();
    const idp = destinations.get("caep/idp");
    expect(idp?.url).toBe("https://idp.example.com/ssf/push");
    expect(idp?.headers({} as never, 0)).toEqual({ accept: "application/json", authorization: "Bearer idp-push-token-0123" });
    expect(destinations.get("caep/vault")?.headers({} as never, 0)).toEqual({ accept: "application/json" });
  });

  it("publishes SSF metadata pointing at its JWKS, and only public key material", async () => {
    const t = await transmitter();
    expect(t.configuration()).toMatchObject({
      spec_version: "1_0", issuer: "https://vigil.example.com", jwks_uri: "https://vigil.example.com/.well-known/jwks.json",
      delivery_methods_supported: ["urn:ietf:rfc:8935"],
    });
    const [key] = t.jwks().keys;
    expect(key).toMatchObject({ kty: "RSA", use: "sig", alg: "RS256", kid: t.kid });
    for (const secret of ["d", "p", "q", "dp", "dq", "qi"]) expect(key).not.toHaveProperty(secret);
  });

  it("signs with EC P-256 and Ed25519 keys too", async () => {
    for (const [type, alg] of [["ec", "ES256"], ["ed25519", "EdDSA"]] as const) {
      const t = await transmitter(pem(type));
      const [n] = await t.notices(change({}));
      expect(decodeProtectedHeader(n?.body ?? "").alg).toBe(alg);
      await jwtVerify(n?.body ?? "", createLocalJWKSet(t.jwks()), { audience: "https://idp.example.com" });
    }
  });

  it("refuses an RSA key under 2048 bits, and a file that is no key, without quoting the file", async () => {
    await expect(loadSigningKey("/k", () => pem("rsa", 1024))).rejects.toThrow(/shorter than 2048 bits/);
    const secretish = "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n";
    const failure = loadSigningKey("/k", () => secretish);
    await expect(failure).rejects.toThrow(/does not hold a private key/);
    await expect(failure).rejects.not.toThrow(/TOPSECRET/);
  });

  it("refuses an authorization file with more than one line (header injection)", async () => {
    await expect(Transmitter.fromConfig({
      issuer: "https://vigil.example.com", signingKeyFile: "/k",
      receivers: [{ name: "idp", url: "https://idp.example.com/push", audience: "idp", authorizationFile: "/t" }],
    }, (p) => p === "/k" ? RSA : "Bearer a\r\nX-Injected: 1")).rejects.toThrow(/one non-empty line/);
  });
});
