// Properties of credential header reading and of the resolver as a whole on hostile input: no
// crash, never a fingerprint of a value that was not presented, every presented value counted,
// and garbage never yields an identity.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { identitySchema } from "../../src/config/schema.js";
import {
  MAX_CREDENTIALS, createCallerResolver, fingerprintSecret, parseSpiffeId, readCredential,
} from "../../src/identity/index.js";

// Text biased towards what the credential reader gives meaning to.
const piece = fc.oneof(
  fc.constantFrom("Bearer", "bearer ", "BEARER\t", "Basic ", ",", ", ", " ", "\t", "=", "ab", "K1", "tok.en", "é", "\u0000"),
  fc.string({ maxLength: 6 }),
);
const headerText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 120 }),
  fc.array(piece, { maxLength: 24 }).map((parts) => parts.join("")),
);
const header = fc.constantFrom("authorization", "x-api-key", "x-token");

const isSpace = (c: string): boolean => c === " " || c === "\t";
function trim(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isSpace(s.charAt(a))) a++;
  while (b > a && isSpace(s.charAt(b - 1))) b--;
  return s.slice(a, b);
}

/** Every string a presented header value could honestly be read as a credential. */
function presented(name: string, value: string): Set<string> {
  const out = new Set<string>();
  for (const part of value.split(",")) {
    const v = trim(part);
    out.add(fingerprintSecret(v));
    if (name === "authorization" && /^bearer[ \t]/i.test(v)) out.add(fingerprintSecret(trim(v.slice(7))));
  }
  return out;
}

const secret = fc.string({ unit: fc.constantFrom(..."abcdefXYZ0123456789._~+/-".split("")), minLength: 1, maxLength: 24 });

describe("credential headers (properties)", () => {
  it("never throw, and never fingerprint a value that was not presented", () => {
    fc.assert(fc.property(header, headerText, (name, value) => {
      const read = readCredential(name, value);
      const honest = presented(name, value);
      for (const c of read.credentials) expect(honest.has(c.fingerprint)).toBe(true);
      expect(new Set(read.credentials.map((c) => c.fingerprint)).size).toBe(read.credentials.length);
      expect(read.credentials.length).toBeLessThanOrEqual(MAX_CREDENTIALS);
      for (const p of read.problems) expect(p.message.length).toBeLessThan(200);
    }), { numRuns: 3000 });
  });

  it("count every value of a repeated header, and call differing values ambiguous", () => {
    fc.assert(fc.property(
      fc.array(secret, { minLength: 1, maxLength: MAX_CREDENTIALS }), fc.boolean(), fc.constantFrom(",", ", ", " ,"),
      (secrets, bearer, joiner) => {
        const name = bearer ? "authorization" : "x-api-key";
        const value = secrets.map((s) => (bearer ? `Bearer ${s}` : s)).join(joiner);
        const read = readCredential(name, value);
        const distinct = [...new Set(secrets)];
        expect(read.credentials.map((c) => c.fingerprint)).toEqual(distinct.map(fingerprintSecret));
        expect(read.problems.map((p) => p.code)).toEqual(distinct.length > 1 ? ["ambiguous_credential"] : []);
      },
    ), { numRuns: 1000 });
  });
});

describe("the resolver on garbage (properties)", () => {
  const text = fc.oneof(
    fc.string({ unit: "binary", maxLength: 160 }),
    fc.array(fc.oneof(
      fc.constantFrom("spiffe://", "example.org", "/ns/a/sa/b", "URI=", "By=", ";", ",", "\"", "%", "-----BEGIN CERTIFICATE-----\n", "\n"),
      fc.string({ maxLength: 4 }),
    ), { maxLength: 30 }).map((parts) => parts.join("")),
  );

  it("yields an identity only from a valid SPIFFE ID the request holds, and refuses whatever it rejects", () => {
    const resolvers = [0, 1, 2].map((hops) => createCallerResolver(identitySchema.parse({ xfccTrustedHops: hops })));
    fc.assert(fc.property(fc.nat(2), text, text, text, headerText, (hops, principal, certificate, xfcc, authorization) => {
      const caller = resolvers[hops]!({
        principal, certificate, headers: { "x-forwarded-client-cert": xfcc, authorization },
      });
      if (caller.spiffeId !== "") {
        expect(parseSpiffeId(caller.spiffeId).ok).toBe(true);
        expect(principal === caller.spiffeId || xfcc.includes(caller.spiffeId)).toBe(true);
      }
      // Garbage is never a certificate, and an untrusted XFCC never names anyone.
      expect(caller.source).not.toBe("peer_certificate");
      if (hops === 0) {
        expect(caller.source).not.toBe("xfcc");
        expect(caller.headersToRemove).toContain("x-forwarded-client-cert");
      }
      expect(caller.refused).toBe(caller.problems.length > 0);
      if (caller.spiffeId === "" && principal !== "") expect(caller.refused).toBe(true);
    }), { numRuns: 1500 });
  });
});
