import { writeFile } from "node:fs/promises";
import { CompactSign, base64url, exportSPKI, generateKeyPair, type FetchImplementation } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SsfConfig } from "../../../src/config/schema.js";
import { VigilError } from "../../../src/errors/index.js";
import { CAEP, RISC, SSF_MAX_BODY_BYTES, createSsfReceiver } from "../../../src/signals/ssf/index.js";
import {
  AUDIENCE, NOW, NOW_S, PUSH_TOKEN, WORKLOAD, InTestStore, capturingLogger, errOf, makeConfig, makeHarness,
  makeTransmitter, setClaims, signSet, writeJwksFile, type Transmitter,
} from "./set-fixtures.js";

let rsa: Transmitter;
let ec: Transmitter;
/** Same kid as rsa, different key: what an attacker without the transmitter's key can sign. */
let impostor: Transmitter;
let stranger: Transmitter;
let rsaPublicPem: string;
let jwks: { path: string; remove: () => Promise<void> };

beforeAll(async () => {
  rsa = await makeTransmitter("RS256", "rsa-1");
  ec = await makeTransmitter("ES256", "ec-1");
  impostor = await makeTransmitter("RS256", "rsa-1");
  stranger = await makeTransmitter("RS256", "rsa-unknown");
  const { publicKey } = await generateKeyPair("RS256", { extractable: true });
  rsaPublicPem = await exportSPKI(publicKey);
  jwks = await writeJwksFile([rsa, ec]);
});
afterAll(async () => {
  await jwks.remove();
});

const revoke = (extra: Record<string, unknown> = {}): Record<string, unknown> => setClaims(CAEP.sessionRevoked, {}, extra);

function unsigned(claims: Record<string, unknown>, header: Record<string, unknown> = { alg: "none", typ: "secevent+jwt" }): string {
  const encode = (value: unknown): string => base64url.encode(JSON.stringify(value));
  return `${encode(header)}.${encode(claims)}.`;
}

describe("SSF receiver: valid SETs", () => {
  it("accepts an RS256 SET with 202 and an empty body", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    expect(await h.post(await signSet(revoke(), rsa))).toEqual({ status: 202, headers: {}, body: "" });
    expect(h.store.written).toHaveLength(1);
    expect(await h.count("written", "session-revoked")).toBe(1);
  });

  it("accepts an ES256 SET, a typ with the application/ prefix and a content type with parameters", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    const token = await signSet(revoke({ aud: ["other", AUDIENCE] }), ec, { typ: "application/secevent+jwt" });
    const response = await h.post(`${token}\r\n`, { "content-type": "Application/SecEvent+JWT; charset=utf-8" });
    expect(response.status).toBe(202);
    expect(h.store.written).toHaveLength(1);
  });

  it("accepts an iat up to five minutes ahead of its clock", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    expect((await h.post(await signSet(revoke({ iat: NOW_S + 240 }), rsa))).status).toBe(202);
  });
});

interface Refusal {
  name: string;
  token: () => Promise<string> | string;
  err: string;
  description?: RegExp;
}

const refusals: Refusal[] = [
  { name: "a SET signed by another key under the transmitter's kid", token: () => signSet(revoke(), impostor), err: "invalid_key", description: /signature/ },
  { name: "a SET naming a kid the transmitter does not have", token: () => signSet(revoke(), stranger), err: "invalid_key", description: /no key/ },
  { name: "an unsigned SET (alg none)", token: () => unsigned(revoke()), err: "invalid_key", description: /alg none/ },
  { name: "an unsigned SET whose alg is spelled None", token: () => unsigned(revoke(), { alg: "None", typ: "secevent+jwt" }), err: "invalid_key" },
  {
    name: "an HS256 SET keyed with the transmitter's public key (algorithm confusion)",
    token: () => new CompactSign(new TextEncoder().encode(JSON.stringify(revoke())))
      .setProtectedHeader({ alg: "HS256", kid: "rsa-1", typ: "secevent+jwt" })
      .sign(new TextEncoder().encode(rsaPublicPem)),
    err: "invalid_key", description: /not an allowed/,
  },
  { name: "a SET for another audience", token: () => signSet(revoke({ aud: "https://other.example.com/" }), rsa), err: "invalid_audience" },
  { name: "a SET with no audience", token: () => signSet(revoke({ aud: undefined }), rsa), err: "invalid_audience" },
  { name: "a SET from another issuer", token: () => signSet(revoke({ iss: "https://evil.example.com/" }), rsa), err: "invalid_issuer" },
  { name: "a garbage body", token: () => "this is not a JWT", err: "invalid_request" },
  { name: "a JWS whose header is not JSON", token: () => `${base64url.encode("nope")}.${base64url.encode("{}")}.c2ln`, err: "invalid_request" },
  { name: "an encrypted SET (JWE)", token: () => "a.b.c.d.e", err: "invalid_request", description: /JWE/ },
  { name: "a SET typed JWT", token: () => signSet(revoke(), rsa, { typ: "JWT" }), err: "invalid_request", description: /typ/ },
  { name: "a SET without typ", token: () => signSet(revoke(), rsa, { typ: undefined }), err: "invalid_request", description: /typ/ },
  { name: "a payload that is not JSON", token: () => new CompactSign(new TextEncoder().encode("not json")).setProtectedHeader({ alg: "RS256", kid: "rsa-1", typ: "secevent+jwt" }).sign(rsa.privateKey), err: "invalid_request" },
  { name: "a payload that is a JSON array", token: () => new CompactSign(new TextEncoder().encode("[1]")).setProtectedHeader({ alg: "RS256", kid: "rsa-1", typ: "secevent+jwt" }).sign(rsa.privateKey), err: "invalid_request" },
  { name: "a SET without events", token: () => signSet(revoke({ events: undefined }), rsa), err: "invalid_request", description: /events/ },
  { name: "a SET with empty events", token: () => signSet(revoke({ events: {} }), rsa), err: "invalid_request", description: /events/ },
  {
    name: "a SET with two events",
    token: () => signSet(revoke({ events: { [CAEP.sessionRevoked]: {}, [RISC.accountPurged]: {} } }), rsa),
    err: "invalid_request", description: /exactly one/,
  },
  { name: "an event payload that is not an object", token: () => signSet(revoke({ events: { [CAEP.sessionRevoked]: "revoke" } }), rsa), err: "invalid_request" },
  { name: "a SET with exp", token: () => signSet(revoke({ exp: NOW_S + 3600 }), rsa), err: "invalid_request", description: /exp/ },
  { name: "a SET with a top-level sub", token: () => signSet(revoke({ sub: WORKLOAD }), rsa), err: "invalid_request", description: /sub_id/ },
  { name: "a SET without sub_id", token: () => signSet(revoke({ sub_id: undefined }), rsa), err: "invalid_request", description: /sub_id/ },
  { name: "a sub_id without format", token: () => signSet(revoke({ sub_id: { uri: WORKLOAD } }), rsa), err: "invalid_request" },
  { name: "an opaque sub_id without id", token: () => signSet(revoke({ sub_id: { format: "opaque" } }), rsa), err: "invalid_request" },
  { name: "nested aliases", token: () => signSet(revoke({ sub_id: { format: "aliases", identifiers: [{ format: "aliases", identifiers: [] }] } }), rsa), err: "invalid_request" },
  { name: "a SET without jti", token: () => signSet(revoke({ jti: undefined }), rsa), err: "invalid_request", description: /jti/ },
  { name: "a SET without iat", token: () => signSet(revoke({ iat: undefined }), rsa), err: "invalid_request", description: /iat/ },
  { name: "a SET issued ten minutes in the future", token: () => signSet(revoke({ iat: NOW_S + 600 }), rsa), err: "invalid_request", description: /future/ },
  { name: "a SET older than the replay window", token: () => signSet(revoke({ iat: NOW_S - 25 * 3600 }), rsa), err: "invalid_request", description: /replay window/ },
  { name: "an event time in the future", token: () => signSet(setClaims(RISC.accountPurged, { event_timestamp: NOW_S + 3600 }), rsa), err: "invalid_request", description: /future/ },
  { name: "a credential-change without change_type", token: () => signSet(setClaims(CAEP.credentialChange, { credential_type: "x509" }), rsa), err: "invalid_request", description: /change_type/ },
  { name: "a risk-level-change to an undefined level", token: () => signSet(setClaims(CAEP.riskLevelChange, { principal: "USER", current_level: "EXTREME" }), rsa), err: "invalid_request" },
  { name: "a device-compliance-change to an undefined status", token: () => signSet(setClaims(CAEP.deviceComplianceChange, { current_status: "meh" }), rsa), err: "invalid_request" },
  { name: "a token-claims-change without claims", token: () => signSet(setClaims(CAEP.tokenClaimsChange, {}), rsa), err: "invalid_request" },
];

const badSpiffeIds = [
  "spiffe://Prod.example.com/ns/a",
  "SPIFFE://prod.example.com/ns/a",
  "spiffe://prod.example.com",
  "spiffe://prod.example.com/",
  "spiffe://prod.example.com/ns//a",
  "spiffe://prod.example.com/ns/a/",
  "spiffe://prod.example.com/ns/../a",
  "spiffe://prod.example.com:8443/ns/a",
  "spiffe://user@prod.example.com/ns/a",
  "spiffe://prod.example.com/ns/a?x=1",
  "spiffe://prod.example.com/ns/a#frag",
  "spiffe://prod.example.com/ns/%41",
  "spiffe:///ns/a",
  `spiffe://prod.example.com/${"a".repeat(2040)}`,
];

describe("SSF receiver: refused SETs write nothing", () => {
  it.each(refusals)("answers 400 to $name", async ({ token, err, description }) => {
    const h = makeHarness({ jwksFile: jwks.path, algorithms: ["RS256", "ES256"] });
    const response = await h.post(await token());
    expect(response.status).toBe(400);
    expect(response.headers["content-type"]).toBe("application/json");
    const body = errOf(response);
    expect(body.err).toBe(err);
    if (description !== undefined) expect(body.description).toMatch(description);
    expect(h.store.written).toEqual([]);
    expect(await h.total("rejected")).toBe(1);
  });

  it.each(badSpiffeIds)("answers 400 invalid_request to the uri subject %s", async (uri) => {
    const h = makeHarness({ jwksFile: jwks.path });
    const response = await h.post(await signSet(revoke({ sub_id: { format: "uri", uri } }), rsa));
    expect(response.status).toBe(400);
    expect(errOf(response)).toMatchObject({ err: "invalid_request", description: expect.stringMatching(/SPIFFE/) as unknown });
    expect(h.store.written).toEqual([]);
  });

  it("refuses an ES256 SET when only RS256 is allowed", async () => {
    const h = makeHarness({ jwksFile: jwks.path, algorithms: ["RS256"] });
    const response = await h.post(await signSet(revoke(), ec));
    expect(response.status).toBe(400);
    expect(errOf(response).err).toBe("invalid_key");
    expect(h.store.written).toEqual([]);
  });

  it("acknowledges an identical re-delivery with 202 and writes once (RFC 8935 retry after a lost 202)", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    const token = await signSet(revoke(), rsa);
    expect((await h.post(token)).status).toBe(202);
    const again = await h.post(token);
    expect(again).toMatchObject({ status: 202, body: "" });
    expect(h.store.written).toHaveLength(1);
    expect(await h.count("duplicate", "session-revoked")).toBe(1);
  });

  it("refuses the same jti carrying a different SET, after the first was taken", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    const claims = revoke();
    expect((await h.post(await signSet(claims, rsa))).status).toBe(202);
    const other = await h.post(await signSet({ ...claims, events: { [RISC.accountDisabled]: {} } }, rsa));
    expect(other.status).toBe(400);
    expect(errOf(other)).toMatchObject({ err: "invalid_request", description: expect.stringMatching(/^replayed jti/) as unknown });
    expect(h.store.written).toHaveLength(1);
  });

  it("refuses a jti replayed under a new signature", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    const claims = revoke();
    expect((await h.post(await signSet(claims, rsa))).status).toBe(202);
    const again = await h.post(await signSet(claims, ec));
    expect(again.status).toBe(400);
    expect(errOf(again).description).toMatch(/^replayed jti/);
  });

  it("asks a copy that arrives while the first is being stored to retry, and writes once", async () => {
    const store = new InTestStore();
    const put = store.put.bind(store);
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => { release = resolve; });
    store.put = async (input) => { await held; return put(input); };
    const h = makeHarness({ jwksFile: jwks.path }, { store });
    const token = await signSet(revoke(), rsa);
    const first = h.post(token);
    // Let the first copy reach the store before the second arrives.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const second = await h.post(token);
    expect(second.status).toBe(503);
    expect(second.headers["retry-after"]).toBe("5");
    expect(errOf(second).err).toBe("invalid_request");
    release();
    expect((await first).status).toBe(202);
    expect((await h.post(token)).status).toBe(202);
    expect(store.written).toHaveLength(1);
  });

  it("remembers an ignored SET too", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    const claims = setClaims("https://example.com/custom", {});
    expect((await h.post(await signSet(claims, rsa))).status).toBe(202);
    expect((await h.post(await signSet(claims, rsa))).status).toBe(202);
    expect((await h.post(await signSet({ ...claims, events: { "https://example.com/other": {} } }, rsa))).status).toBe(400);
  });

  it("answers a replay after a restart 202 without a second write (the store's idempotency)", async () => {
    const store = new InTestStore();
    const token = await signSet(revoke(), rsa);
    expect((await makeHarness({ jwksFile: jwks.path }, { store }).post(token)).status).toBe(202);
    const restarted = makeHarness({ jwksFile: jwks.path }, { store });
    expect((await restarted.post(token)).status).toBe(202);
    expect(store.written).toHaveLength(1);
    expect(await restarted.count("duplicate", "session-revoked")).toBe(1);
  });
});

describe("SSF receiver: HTTP-level answers", () => {
  it("answers 405 to anything but POST", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    const response = await h.receiver.handle({ method: "GET", headers: {}, body: Buffer.alloc(0) });
    expect(response.status).toBe(405);
    expect(response.headers.allow).toBe("POST");
  });

  it("answers 415 invalid_request to a wrong content type and writes nothing", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    for (const contentType of ["application/json", "application/jwt", undefined]) {
      const response = await h.post(await signSet(revoke(), rsa), { "content-type": contentType });
      expect(response.status).toBe(415);
      expect(errOf(response).err).toBe("invalid_request");
    }
    expect(h.store.written).toEqual([]);
  });

  it("answers 413 to a body over the limit", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    const response = await h.post(Buffer.alloc(SSF_MAX_BODY_BYTES + 1, 0x61));
    expect(response.status).toBe(413);
    expect(response.headers["content-type"]).toBe("application/json");
    expect(Object.keys(JSON.parse(response.body) as object).sort()).toEqual(["description", "err"]);
    expect(errOf(response).err).toBe("invalid_request");
  });

  it("answers 404 when no issuer is configured", async () => {
    const h = makeHarness({ issuer: "" });
    expect(h.receiver.enabled).toBe(false);
    expect((await h.post("x")).status).toBe(404);
  });

  it("answers 503 once closed", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    h.receiver.close();
    const response = await h.post(await signSet(revoke(), rsa));
    expect(response.status).toBe(503);
    expect(errOf(response).err).toBe("invalid_request");
    expect(h.store.written).toEqual([]);
  });
});

describe("SSF receiver: push authorization", () => {
  const config = (): { jwksFile: string; pushTokens: string[] } => ({ jwksFile: jwks.path, pushTokens: ["another-token-abcdef", PUSH_TOKEN] });

  it("answers 401 with WWW-Authenticate when the Bearer token is missing", async () => {
    const h = makeHarness(config());
    const response = await h.post(await signSet(revoke(), rsa));
    expect(response.status).toBe(401);
    expect(response.headers["www-authenticate"]).toBe("Bearer realm=\"vigil-ssf\"");
    expect(errOf(response).err).toBe("authentication_failed");
    expect(h.store.written).toEqual([]);
    expect(await h.count("unauthorized", "none")).toBe(1);
  });

  it.each([
    ["a wrong token", `Bearer ${PUSH_TOKEN}x`],
    ["a token prefix", `Bearer ${PUSH_TOKEN.slice(0, 10)}`],
    ["another scheme", `Basic ${PUSH_TOKEN}`],
    ["an empty bearer", "Bearer "],
  ])("answers 401 to %s and never logs it", async (_name, authorization) => {
    const h = makeHarness(config());
    const response = await h.post(await signSet(revoke(), rsa), { authorization });
    expect(response.status).toBe(401);
    expect(response.headers["www-authenticate"]).toMatch(/^Bearer realm="vigil-ssf"/);
    expect(h.store.written).toEqual([]);
    expect(h.logs.join("")).not.toContain(PUSH_TOKEN.slice(0, 10));
  });

  it("accepts any configured token, scheme case-insensitively", async () => {
    const h = makeHarness(config());
    expect((await h.post(await signSet(revoke(), rsa), { Authorization: `bearer ${PUSH_TOKEN}` })).status).toBe(202);
    expect((await h.post(await signSet(revoke(), rsa), { authorization: "Bearer another-token-abcdef" })).status).toBe(202);
    expect(h.store.written).toHaveLength(2);
  });
});

describe("SSF receiver: store failures", () => {
  it("answers 503 with Retry-After when the store is unavailable, then accepts the retry", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    h.store.failWith = new VigilError("unavailable", "journal fsync failed");
    const token = await signSet(revoke(), rsa);
    const response = await h.post(token);
    expect(response.status).toBe(503);
    expect(response.headers["retry-after"]).toBe("5");
    // RFC 8935 shape, and the jti stays free: the retry below is taken, not called a replay.
    expect(errOf(response)).toEqual({ err: "invalid_request", description: expect.stringMatching(/retry later/) as unknown });
    expect(h.store.written).toEqual([]);
    expect(await h.count("failed", "session-revoked")).toBe(1);
    h.store.failWith = undefined;
    expect((await h.post(token)).status).toBe(202);
    expect(h.store.written).toHaveLength(1);
  });

  it("answers 400 invalid_request when the store refuses the signal as invalid", async () => {
    const h = makeHarness({ jwksFile: jwks.path });
    h.store.failWith = new VigilError("invalid_input", `subject ${WORKLOAD} is not what its kind says`);
    const response = await h.post(await signSet(revoke(), rsa));
    expect(response.status).toBe(400);
    expect(errOf(response).err).toBe("invalid_request");
    // A refused subject is neither echoed nor logged.
    expect(response.body).not.toContain(WORKLOAD);
    expect(h.logs.join("")).not.toContain(WORKLOAD);
  });

  it("answers 503 when the store throws something unexpected", async () => {
    const store = new InTestStore();
    store.put = () => Promise.reject(new Error("boom"));
    const h = makeHarness({ jwksFile: jwks.path }, { store });
    expect((await h.post(await signSet(revoke(), rsa))).status).toBe(503);
  });
});

describe("SSF receiver: transmitter keys", () => {
  function jwksFetch(keys: () => unknown[], calls: { n: number }, fail = false): FetchImplementation {
    return (url) => {
      calls.n += 1;
      expect(url).toBe("https://transmitter.example.com/jwks.json");
      if (fail) return Promise.reject(new TypeError("fetch failed"));
      return Promise.resolve(new Response(JSON.stringify({ keys: keys() }), { status: 200, headers: { "content-type": "application/json" } }));
    };
  }

  it("fetches jwksUrl once and caches it", async () => {
    const calls = { n: 0 };
    const h = makeHarness({ jwksUrl: "https://transmitter.example.com/jwks.json" }, { fetchJwks: jwksFetch(() => [rsa.publicJwk], calls) });
    expect((await h.post(await signSet(revoke(), rsa))).status).toBe(202);
    expect((await h.post(await signSet(revoke(), rsa))).status).toBe(202);
    expect(calls.n).toBe(1);
  });

  it("answers invalid_key for a kid the remote set lacks, without refetching inside the cooldown", async () => {
    const calls = { n: 0 };
    const h = makeHarness({ jwksUrl: "https://transmitter.example.com/jwks.json" }, { fetchJwks: jwksFetch(() => [rsa.publicJwk], calls) });
    expect((await h.post(await signSet(revoke(), rsa))).status).toBe(202);
    const response = await h.post(await signSet(revoke(), stranger));
    expect(errOf(response).err).toBe("invalid_key");
    expect(calls.n).toBe(1);
  });

  it("answers 503 when the remote JWKS cannot be fetched", async () => {
    const calls = { n: 0 };
    const h = makeHarness({ jwksUrl: "https://transmitter.example.com/jwks.json" }, { fetchJwks: jwksFetch(() => [], calls, true) });
    const response = await h.post(await signSet(revoke(), rsa));
    expect(response.status).toBe(503);
    expect(h.store.written).toEqual([]);
  });

  it("answers 503 when the remote JWKS answers an error status", async () => {
    const fetchJwks: FetchImplementation = () => Promise.resolve(new Response("down", { status: 502 }));
    const h = makeHarness({ jwksUrl: "https://transmitter.example.com/jwks.json" }, { fetchJwks });
    expect((await h.post(await signSet(revoke(), rsa))).status).toBe(503);
  });

  it("re-reads the JWK Set file for an unknown kid once the cooldown has passed", async () => {
    const file = await writeJwksFile([rsa]);
    try {
      const h = makeHarness({ jwksFile: file.path });
      await writeFile(file.path, JSON.stringify({ keys: [rsa.publicJwk, stranger.publicJwk] }));
      expect(errOf(await h.post(await signSet(revoke(), stranger))).err).toBe("invalid_key");
      h.clock.now = NOW + 31_000;
      expect((await h.post(await signSet(revoke({ iat: NOW_S + 31 }), stranger))).status).toBe(202);
    } finally {
      await file.remove();
    }
  });

  it("tries each key when a SET has no kid and several keys could match", async () => {
    const other = await makeTransmitter("RS256", "rsa-2");
    const file = await writeJwksFile([other, rsa]);
    try {
      const h = makeHarness({ jwksFile: file.path });
      expect((await h.post(await signSet(revoke(), rsa, { kid: undefined }))).status).toBe(202);
      expect(errOf(await h.post(await signSet(revoke(), impostor, { kid: undefined }))).err).toBe("invalid_key");
    } finally {
      await file.remove();
    }
  });
});

describe("SSF receiver: settings refused at start", () => {
  const build = (overrides: Partial<SsfConfig>): void => {
    createSsfReceiver({ config: makeConfig(overrides), store: new InTestStore(), logger: capturingLogger([]) });
  };

  const refusedSettings: [string, Partial<SsfConfig>, RegExp][] = [
    ["alg none allowed", { jwksFile: "x", algorithms: ["RS256", "none"] }, /none/],
    ["HS256 allowed", { jwksFile: "x", algorithms: ["HS256"] }, /HS256/],
    ["no algorithm", { jwksFile: "x", algorithms: [] }, /algorithms/],
    ["no audience", { jwksFile: "x", audience: [] }, /audience/],
    ["no key source", {}, /jwksFile/],
    ["two key sources", { jwksFile: "x", jwksUrl: "https://t.example.com/jwks" }, /not both/],
    ["an unreadable JWK Set file", { jwksFile: "/nonexistent/jwks.json" }, /cannot be read/],
    ["a plain-http jwksUrl", { jwksUrl: "http://t.example.com/jwks" }, /https/],
    ["an empty push token", { jwksFile: "x", pushTokens: [""] }, /empty/],
  ];

  it.each(refusedSettings)("throws invalid_input for %s", (_name, overrides, message) => {
    expect(() => { build(overrides); }).toThrow(message);
    expect(() => { build(overrides); }).toThrow(VigilError);
  });

  it("refuses a JWK Set file that is not a JWK Set", async () => {
    const file = await writeJwksFile([]);
    try {
      await writeFile(file.path, "{\"kid\":\"x\"}");
      expect(() => { build({ jwksFile: file.path }); }).toThrow(/JWK Set/);
    } finally {
      await file.remove();
    }
  });
});
