import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { identitySchema } from "../../src/config/schema.js";
import {
  createCallerResolver, parsePeerCertificate, parseSpiffeId, parseXfcc, splitSubjectAltNames,
} from "../../src/identity/index.js";

// Arbitrary text, biased towards the characters each parser gives meaning to.
const interesting = fc.constantFrom(
  "spiffe://", "/", "//", ".", "..", "%", "%2F", "?", "#", "@", ":", "[", "]", "=", ";", ",", "\"", "\\", " ",
  "URI=", "By=", "Subject=\"", "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----", "\n", "A", "a", "é", "\u0000",
);
const text = fc.oneof(
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.array(fc.oneof(interesting, fc.string({ maxLength: 4 })), { maxLength: 40 }).map((parts) => parts.join("")),
);

const lower = "abcdefghijklmnopqrstuvwxyz0123456789._-".split("");
const mixed = [...lower, ..."ABCDEFGHIJKLMNOPQRSTUVWXYZ".split("")];
const trustDomain = fc.string({ unit: fc.constantFrom(...lower), minLength: 1, maxLength: 40 });
const segment = fc.string({ unit: fc.constantFrom(...mixed), minLength: 1, maxLength: 20 })
  .filter((s) => s !== "." && s !== "..");
const spiffeId = fc.record({ td: trustDomain, segments: fc.array(segment, { maxLength: 8 }) })
  .map(({ td, segments }) => ({ td, path: segments.map((s) => "/" + s).join("") }));

describe("parsers never throw", () => {
  it("parseSpiffeId returns ok or a reason for any string", () => {
    fc.assert(fc.property(text, (s) => {
      const parsed = parseSpiffeId(s);
      if (!parsed.ok) expect(typeof parsed.reason).toBe("string");
    }), { numRuns: 2000 });
  });

  it("parseXfcc returns elements or a reason for any string", () => {
    fc.assert(fc.property(text, (s) => {
      const parsed = parseXfcc(s);
      if (parsed.ok) expect(parsed.elements.length).toBeGreaterThan(0);
    }), { numRuns: 2000 });
  });

  it("parsePeerCertificate and splitSubjectAltNames return a reason / null for any string", () => {
    fc.assert(fc.property(text, (s) => {
      expect(parsePeerCertificate(s).ok).toBe(false);
      splitSubjectAltNames(s);
    }), { numRuns: 1000 });
  });

  it("a resolver never throws, and never echoes a credential", () => {
    const resolve = createCallerResolver(identitySchema.parse({ xfccTrustedHops: 1 }));
    fc.assert(fc.property(text, text, text, fc.string({ minLength: 16, maxLength: 40, unit: fc.constantFrom(..."QWXZqwxz".split("")) }),
      (principal, certificate, xfcc, secret) => {
        const caller = resolve({
          principal, certificate, headers: { "x-forwarded-client-cert": xfcc, authorization: `Bearer ${secret}` },
        });
        expect(JSON.stringify(caller)).not.toContain(secret);
      }), { numRuns: 500 });
  });
});

describe("valid SPIFFE IDs", () => {
  it("round-trip: a generated ID parses to its own trust domain and path", () => {
    fc.assert(fc.property(spiffeId, ({ td, path }) => {
      const id = `spiffe://${td}${path}`;
      expect(parseSpiffeId(id)).toEqual({ ok: true, id, trustDomain: td, path });
    }), { numRuns: 2000 });
  });

  it("stop being valid when the trust domain gains an upper-case letter or the path a trailing slash", () => {
    fc.assert(fc.property(spiffeId, fc.constantFrom(..."ABCXYZ".split("")), ({ td, path }, upper) => {
      expect(parseSpiffeId(`spiffe://${td}${upper}${path}`).ok).toBe(false);
      expect(parseSpiffeId(`spiffe://${td}${path}/`).ok).toBe(false);
    }), { numRuns: 500 });
  });

  it("survive an XFCC round trip, quoted or not", () => {
    fc.assert(fc.property(spiffeId, fc.boolean(), ({ td, path }, quoted) => {
      const id = `spiffe://${td}${path}`;
      const value = quoted ? `"${id}"` : id;
      expect(parseXfcc(`By=spiffe://td/me;Hash=00;Subject="";URI=${value}`)).toMatchObject({ ok: true, elements: [{ uri: [id] }] });
    }), { numRuns: 500 });
  });
});
