import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parsePeerCertificate, splitSubjectAltNames } from "../../src/identity/index.js";

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/certs/${name}`, import.meta.url), "utf8");

/** What Envoy puts in source.certificate: the leaf PEM, URL-encoded. */
const envoyEncoded = (pem: string): string => encodeURIComponent(pem);

describe("parsePeerCertificate reads the SPIFFE ID of an X.509-SVID leaf", () => {
  it("accepts a leaf with one URI SAN (and a DNS SAN beside it)", () => {
    const parsed = parsePeerCertificate(envoyEncoded(fixture("svid.pem")));
    expect(parsed).toMatchObject({
      ok: true,
      spiffe: { ok: true, id: "spiffe://example.org/ns/ci/sa/deployer", trustDomain: "example.org", path: "/ns/ci/sa/deployer" },
      subjectAltNames: [
        { type: "URI", value: "spiffe://example.org/ns/ci/sa/deployer" },
        { type: "DNS", value: "deployer.ci.svc" },
      ],
    });
  });

  it("accepts plain (not URL-encoded) PEM too", () => {
    expect(parsePeerCertificate(fixture("svid.pem")).ok).toBe(true);
  });

  it("accepts Envoy's older encoding that escapes only newline, space, '+', '/' and '='", () => {
    const pem = fixture("svid.pem");
    const encoded = pem.replace(/[\n +/=]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`);
    expect(parsePeerCertificate(encoded)).toMatchObject({ ok: true, spiffe: { id: "spiffe://example.org/ns/ci/sa/deployer" } });
  });
});

describe("parsePeerCertificate refuses what is not an SVID leaf, with a reason", () => {
  const garbageDer = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  it.each([
    ["two URI SANs", envoyEncoded(fixture("two-uri-sans.pem")), /2 URI SANs/],
    ["only a DNS SAN", envoyEncoded(fixture("dns-only.pem")), /no URI SAN/],
    ["an upper-case trust domain", envoyEncoded(fixture("uppercase-trust-domain.pem")), /lower-case/],
    ["a URI SAN with a comma that Node quotes", envoyEncoded(fixture("comma-in-uri.pem")), /not a valid SPIFFE ID/],
    ["a CA certificate", envoyEncoded(fixture("ca.pem")), /CA certificate/],
    ["PEM armour around garbage", envoyEncoded(fixture("garbage.pem")), /could not be parsed/],
    ["PEM armour around a few bytes", envoyEncoded(garbageDer), /could not be parsed/],
    ["a leaf followed by its CA", envoyEncoded(fixture("svid.pem") + fixture("ca.pem")), /more than one certificate/],
    ["broken URL-encoding", "%E0%A4%A" + envoyEncoded(fixture("svid.pem")), /URL-encoding/],
    ["a lone percent sign", "-----BEGIN CERTIFICATE-----%", /URL-encoding/],
    ["text that is not PEM", "hello", /not a PEM certificate/],
    ["nothing", "", /no peer certificate/],
  ])("%s", (_name, input, reason) => {
    const parsed = parsePeerCertificate(input);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toMatch(reason);
  });

  it("does not mistake one quoted SAN holding ', URI:' for two SANs", () => {
    const parsed = parsePeerCertificate(fixture("comma-in-uri.pem"));
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).not.toMatch(/URI SANs/);
  });
});

describe("splitSubjectAltNames reads Node's subjectAltName string", () => {
  it.each([
    ["URI:spiffe://a/b", [{ type: "URI", value: "spiffe://a/b" }]],
    ["URI:spiffe://a/b, DNS:x.example, IP Address:10.0.0.1", [
      { type: "URI", value: "spiffe://a/b" },
      { type: "DNS", value: "x.example" },
      { type: "IP Address", value: "10.0.0.1" },
    ]],
    ["URI:\"spiffe://example.org/a\\u002c URI:spiffe://evil.org/b\"", [
      { type: "URI", value: "spiffe://example.org/a, URI:spiffe://evil.org/b" },
    ]],
    ["DNS:\"a\\\"b\", URI:spiffe://a/b", [{ type: "DNS", value: "a\"b" }, { type: "URI", value: "spiffe://a/b" }]],
    ["email:\"x\\\\\", URI:u", [{ type: "email", value: "x\\" }, { type: "URI", value: "u" }]],
  ])("%j", (text, expected) => {
    expect(splitSubjectAltNames(text)).toEqual(expected);
  });

  it.each([
    "no-colon",
    ":empty type",
    "URI:\"unterminated",
    "URI:\"bad\\escape\"",
    "URI:\"x\"garbage",
    "URI:a, ",
    "URI:a,DNS:b",
  ])("returns null for %j", (text) => {
    expect(splitSubjectAltNames(text)).toBeNull();
  });
});
