import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { identitySchema, type IdentityConfig } from "../../src/config/schema.js";
import { VigilError } from "../../src/errors/index.js";
import { createCallerResolver, resolveCaller, type CallerInput } from "../../src/identity/index.js";

const config = (overrides: Partial<IdentityConfig> = {}): IdentityConfig => identitySchema.parse(overrides);
const certificate = (name: string): string =>
  encodeURIComponent(readFileSync(new URL(`../fixtures/certs/${name}`, import.meta.url), "utf8"));
const sha256 = (s: string): string => "sha256:" + createHash("sha256").update(s).digest("hex");

const TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ0b2tlbi1zdWJqZWN0In0.c2lnbmF0dXJlLWJ5dGVz";
const API_KEY = "vk_live_0123456789abcdef0123456789abcdef";
const PRINCIPAL = "spiffe://example.org/ns/ci/sa/deployer";
const XFCC = "x-forwarded-client-cert";
const ourXfcc = (uri: string): string => `By=spiffe://example.org/ns/app/sa/app;Hash=00ff;Subject="";URI=${uri}`;

const input = (fields: Partial<CallerInput>): CallerInput => ({ principal: "", certificate: "", headers: {}, ...fields });

describe("resolveCaller: where the identity comes from", () => {
  it("takes the SPIFFE ID Envoy gives as source.principal", () => {
    expect(resolveCaller(input({ principal: PRINCIPAL }), config())).toEqual({
      spiffeId: PRINCIPAL,
      trustDomain: "example.org",
      path: "/ns/ci/sa/deployer",
      source: "mtls_principal",
      credentials: [],
      problems: [],
      refused: false,
      headersToRemove: [],
    });
  });

  it("prefers source.principal over the certificate and the XFCC header", () => {
    const caller = resolveCaller(input({
      principal: "spiffe://example.org/ns/a/sa/a",
      certificate: certificate("svid.pem"),
      headers: { [XFCC]: ourXfcc("spiffe://example.org/ns/x/sa/x") },
    }), config({ xfccTrustedHops: 1 }));
    expect(caller).toMatchObject({ spiffeId: "spiffe://example.org/ns/a/sa/a", source: "mtls_principal", headersToRemove: [] });
  });

  it("falls back to the peer certificate's URI SAN when there is no principal", () => {
    expect(resolveCaller(input({ certificate: certificate("svid.pem") }), config())).toMatchObject({
      spiffeId: PRINCIPAL, trustDomain: "example.org", path: "/ns/ci/sa/deployer", source: "peer_certificate", problems: [],
    });
  });

  it("falls back to a trusted XFCC element when there is neither principal nor certificate", () => {
    const header = `${ourXfcc("spiffe://example.org/ns/client/sa/c")},${ourXfcc(PRINCIPAL)}`;
    expect(resolveCaller(input({ headers: { [XFCC]: header } }), config({ xfccTrustedHops: 1 }))).toMatchObject({
      spiffeId: PRINCIPAL, source: "xfcc", problems: [], headersToRemove: [],
    });
    expect(resolveCaller(input({ headers: { [XFCC]: header } }), config({ xfccTrustedHops: 2 }))).toMatchObject({
      spiffeId: "spiffe://example.org/ns/client/sa/c", source: "xfcc",
    });
  });

  it("yields no identity, and no problem, when nothing identifies the caller", () => {
    expect(resolveCaller(input({}), config({ xfccTrustedHops: 1 }))).toEqual({
      spiffeId: "", trustDomain: "", path: "", source: "none", credentials: [], problems: [], refused: false, headersToRemove: [],
    });
  });
});

describe("resolveCaller: what it refuses", () => {
  it("ignores and strips a forged XFCC header when no hop is trusted", () => {
    const caller = resolveCaller(input({ headers: { [XFCC]: ourXfcc("spiffe://example.org/ns/admin/sa/root") } }), config());
    expect(caller).toMatchObject({ spiffeId: "", source: "none", headersToRemove: [XFCC] });
  });

  it("strips an untrusted XFCC header even when the principal identifies the caller", () => {
    const caller = resolveCaller(input({ principal: PRINCIPAL, headers: { [XFCC]: ourXfcc("spiffe://example.org/ns/x/sa/x") } }), config());
    expect(caller).toMatchObject({ spiffeId: PRINCIPAL, source: "mtls_principal", headersToRemove: [XFCC] });
  });

  it("treats a non-SPIFFE principal (Envoy's DNS SAN / Subject fallback) as a problem that refuses the caller", () => {
    for (const principal of ["deployer.ci.svc", "O=Vigil test,CN=deployer", "spiffe://example.org", "spiffe://Example.org/a"]) {
      const caller = resolveCaller(input({ principal, certificate: certificate("svid.pem") }), config());
      expect(caller).toMatchObject({ spiffeId: "", trustDomain: "", path: "", source: "none", refused: true });
      expect(caller.problems).toHaveLength(1);
      expect(caller.problems[0]?.code).toBe("invalid_principal");
      expect(caller.problems[0]?.message).toMatch(/^source\.principal ".*" is not a workload SPIFFE ID: /);
    }
  });

  it("leaves problems to the policy when identity.onProblem is \"policy\"", () => {
    const caller = resolveCaller(input({ principal: "deployer.ci.svc" }), config({ onProblem: "policy" }));
    expect(caller).toMatchObject({ spiffeId: "", refused: false, problems: [{ code: "invalid_principal" }] });
  });

  it("does not let a rejected mTLS identity name itself through a trusted XFCC header", () => {
    const caller = resolveCaller(
      input({ principal: "gateway.example", headers: { [XFCC]: ourXfcc(PRINCIPAL) } }),
      config({ xfccTrustedHops: 1 }),
    );
    expect(caller).toMatchObject({ spiffeId: "", source: "none", refused: true });
  });

  it.each([
    ["two URI SANs", "two-uri-sans.pem", /2 URI SANs/],
    ["a CA", "ca.pem", /CA certificate/],
    ["no URI SAN", "dns-only.pem", /no URI SAN/],
    ["garbage", "garbage.pem", /could not be parsed/],
  ])("refuses a peer certificate with %s", (_name, file, problem) => {
    const caller = resolveCaller(input({ certificate: certificate(file) }), config());
    expect(caller).toMatchObject({ spiffeId: "", source: "none", refused: true });
    expect(caller.problems).toEqual([{ code: "invalid_certificate", message: expect.stringMatching(problem) as string }]);
  });

  it("refuses and strips a trusted XFCC header that is malformed or too short", () => {
    const resolver = createCallerResolver(config({ xfccTrustedHops: 2 }));
    for (const header of ['URI="unterminated', ourXfcc(PRINCIPAL)]) {
      const caller = resolver(input({ headers: { [XFCC]: header } }));
      expect(caller).toMatchObject({ spiffeId: "", source: "none", headersToRemove: [XFCC], refused: true });
      expect(caller.problems.map((p) => p.code)).toEqual(["invalid_xfcc"]);
    }
  });

  it("refuses IDs outside the configured trust domains, from any source", () => {
    const resolver = createCallerResolver(config({ trustDomains: ["prod.example.org"], xfccTrustedHops: 1 }));
    const inputs = [
      input({ principal: PRINCIPAL }),
      input({ certificate: certificate("svid.pem") }),
      input({ headers: { [XFCC]: ourXfcc(PRINCIPAL) } }),
    ];
    for (const request of inputs) {
      const caller = resolver(request);
      expect(caller).toMatchObject({ spiffeId: "", trustDomain: "", path: "", source: "none", refused: true });
      expect(caller.problems).toEqual([
        { code: "foreign_trust_domain", message: expect.stringMatching(/outside the trusted trust domains/) as string },
      ]);
    }
    expect(resolver(inputs[2]!).headersToRemove).toEqual([XFCC]);
    expect(resolver(input({ principal: "spiffe://prod.example.org/ns/a/sa/a" }))).toMatchObject({
      spiffeId: "spiffe://prod.example.org/ns/a/sa/a", trustDomain: "prod.example.org", problems: [],
    });
  });

  it.each(["Example.org", "spiffe://example.org", "example.org/path", ""])(
    "refuses to build a resolver with trust domain %j",
    (td) => {
      expect(() => createCallerResolver(config({ trustDomains: [td] }))).toThrow(VigilError);
    },
  );
});

describe("resolveCaller: credentials", () => {
  it("fingerprints a bearer token and never returns the token", () => {
    const caller = resolveCaller(input({ principal: PRINCIPAL, headers: { authorization: `Bearer ${TOKEN}` } }), config());
    expect(caller.credentials).toEqual([{ header: "authorization", scheme: "bearer", fingerprint: sha256(TOKEN) }]);
    expect(caller.headersToRemove).toEqual([]); // the upstream may need authorization
    expect(JSON.stringify(caller)).not.toContain(TOKEN);
  });

  it("fingerprints an API key", () => {
    const caller = resolveCaller(input({ headers: { "x-api-key": API_KEY } }), config());
    expect(caller.credentials).toEqual([{ header: "x-api-key", scheme: "api_key", fingerprint: sha256(API_KEY) }]);
    expect(JSON.stringify(caller)).not.toContain(API_KEY);
  });

  it("keeps secrets out of problems, whatever goes wrong", () => {
    const caller = resolveCaller(input({
      principal: "not-spiffe",
      headers: { authorization: `Bearer ${TOKEN}, Bearer ${API_KEY}`, "x-api-key": API_KEY },
    }), config());
    expect(caller.problems.map((p) => p.code)).toEqual(["invalid_principal", "ambiguous_credential"]);
    expect(caller.refused).toBe(true);
    expect(caller.credentials.map((c) => c.fingerprint)).toEqual([sha256(TOKEN), sha256(API_KEY)]);
    const text = JSON.stringify(caller);
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(API_KEY);
  });

  it("fingerprints every credential header, a decoy first or last", () => {
    for (const headers of [
      { authorization: "Bearer decoy", "x-api-key": API_KEY },
      { "x-api-key": API_KEY, authorization: "Bearer decoy" },
    ]) {
      const caller = resolveCaller(input({ principal: PRINCIPAL, headers }), config());
      expect(caller.credentials.map((c) => c.fingerprint)).toEqual([sha256("decoy"), sha256(API_KEY)]);
      expect(caller).toMatchObject({ problems: [], refused: false });
    }
  });

  it("refuses an empty or malformed credential even with a good identity", () => {
    for (const authorization of ["", "Bearer", "Bearer a b", `Bearer ${TOKEN},`]) {
      const caller = resolveCaller(input({ principal: PRINCIPAL, headers: { authorization } }), config());
      expect(caller).toMatchObject({ spiffeId: PRINCIPAL, refused: true });
      expect(caller.problems).toHaveLength(1);
    }
  });

  it("reads only the configured credential headers", () => {
    const caller = resolveCaller(
      input({ headers: { authorization: `Bearer ${TOKEN}`, "x-token": API_KEY } }),
      config({ credentialHeaders: ["x-token"] }),
    );
    expect(caller.credentials).toEqual([{ header: "x-token", scheme: "api_key", fingerprint: sha256(API_KEY) }]);
  });
});

describe("createCallerResolver", () => {
  it("gives the same answers with and without its caches, and fresh arrays every call", () => {
    const cached = createCallerResolver(config(), { principalCacheSize: 2, certificateCacheSize: 1 });
    const uncached = createCallerResolver(config(), { principalCacheSize: 0, certificateCacheSize: 0 });
    const requests = [
      input({ principal: PRINCIPAL }),
      input({ principal: "bad" }),
      input({ principal: "spiffe://example.org/ns/b/sa/b" }),
      input({ certificate: certificate("svid.pem") }),
      input({ certificate: certificate("ca.pem") }),
    ];
    for (let round = 0; round < 3; round++) {
      for (const request of [...requests, ...requests.toReversed()]) {
        const a = cached(request);
        // The same answer; only the cached resolver keeps hints (next test).
        const { hints, ...answer } = a;
        expect(answer).toEqual(uncached(request));
        expect(hints !== undefined).toBe(request.principal === PRINCIPAL || request.principal === "spiffe://example.org/ns/b/sa/b");
        a.problems.push({ code: "invalid_principal", message: "mutated by a caller" });
        a.headersToRemove.push("x-mutated");
      }
    }
  });

  it("keeps one hints object per memoised principal, and none for other sources, foreign IDs or without a memo", () => {
    const cached = createCallerResolver(config({ trustDomains: ["example.org"] }), { principalCacheSize: 2 });
    const first = cached(input({ principal: PRINCIPAL })).hints;
    expect(first).toMatchObject({ baselineBlock: -1, baselineIdentHigh: 0, baselineIdentLow: 0 });
    if (first === undefined) throw new Error("no hints");
    first.baselineBlock = 16;
    // The next Check from the same principal reads what the last one wrote.
    expect(cached(input({ principal: PRINCIPAL })).hints).toBe(first);
    expect(cached(input({ principal: "spiffe://example.org/ns/b/sa/b" })).hints).not.toBe(first);
    expect(cached(input({ principal: "spiffe://elsewhere.org/ns/b/sa/b" })).hints).toBeUndefined();
    expect(cached(input({ principal: "bad" })).hints).toBeUndefined();
    expect(cached(input({ certificate: certificate("svid.pem") })).hints).toBeUndefined();
    // Two more principals pushed PRINCIPAL out of the 2-entry memo: a new entry, with hints that hint nothing.
    expect(cached(input({ principal: PRINCIPAL })).hints).toMatchObject({ baselineBlock: -1 });
    const uncached = createCallerResolver(config(), { principalCacheSize: 0 });
    expect(uncached(input({ principal: PRINCIPAL })).hints).toBeUndefined();
  });
});
