import { describe, expect, it } from "vitest";
import { callerFromXfcc, parseXfcc, selectTrustedXfccElement, type XfccElement } from "../../src/identity/index.js";

const HASH = "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12";

const element = (fields: Partial<XfccElement>): XfccElement => ({
  by: [], hash: "", cert: "", chain: "", subject: "", uri: [], dns: [], ...fields,
});

describe("parseXfcc reads the header Envoy writes", () => {
  it("reads Envoy's own writer format (By, Hash, quoted empty Subject, URI)", () => {
    expect(parseXfcc(`By=spiffe://td/ns/b/sa/b;Hash=${HASH};Subject="";URI=spiffe://td/ns/a/sa/a`)).toEqual({
      ok: true,
      elements: [element({ by: ["spiffe://td/ns/b/sa/b"], hash: HASH, uri: ["spiffe://td/ns/a/sa/a"] })],
    });
  });

  it("reads the Istio shape with Subject, URI and DNS", () => {
    const header = `By=spiffe://cluster.local/ns/b/sa/b;Hash=${HASH};Subject="CN=a,O=Acme\\, Inc.;OU=x=y";URI=spiffe://cluster.local/ns/a/sa/a;DNS=a.example;DNS=b.example`;
    expect(parseXfcc(header)).toEqual({
      ok: true,
      elements: [element({
        by: ["spiffe://cluster.local/ns/b/sa/b"],
        hash: HASH,
        subject: "CN=a,O=Acme, Inc.;OU=x=y",
        uri: ["spiffe://cluster.local/ns/a/sa/a"],
        dns: ["a.example", "b.example"],
      })],
    });
  });

  it("unescapes \\\" inside quoted values", () => {
    expect(parseXfcc('Subject="CN=\\"quoted\\", O=x";URI=spiffe://td/a')).toMatchObject({
      ok: true,
      elements: [{ subject: 'CN="quoted", O=x', uri: ["spiffe://td/a"] }],
    });
  });

  it("keeps URL-encoded Cert and Chain values as they are", () => {
    const cert = "-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A";
    expect(parseXfcc(`By=spiffe://td/b;Hash=${HASH};Cert="${cert}";Chain="${cert}${cert}"`)).toMatchObject({
      ok: true,
      elements: [{ cert, chain: cert + cert }],
    });
  });

  it("treats keys case-insensitively, accepts any order and repeated By/URI/DNS", () => {
    expect(parseXfcc("uri=spiffe://td/a;BY=spiffe://td/b1;by=spiffe://td/b2;hAsH=00;Uri=spiffe://td/c")).toMatchObject({
      ok: true,
      elements: [{ by: ["spiffe://td/b1", "spiffe://td/b2"], hash: "00", uri: ["spiffe://td/a", "spiffe://td/c"] }],
    });
  });

  it("splits elements on commas outside quotes, oldest first", () => {
    const header = 'By=spiffe://td/gw;Subject="a,b";URI=spiffe://td/client,By=spiffe://td/me;URI=spiffe://td/gw';
    const parsed = parseXfcc(header);
    expect(parsed).toMatchObject({
      ok: true,
      elements: [
        { by: ["spiffe://td/gw"], subject: "a,b", uri: ["spiffe://td/client"] },
        { by: ["spiffe://td/me"], uri: ["spiffe://td/gw"] },
      ],
    });
  });

  it("tolerates spaces around separators (headers joined by other proxies)", () => {
    expect(parseXfcc(" URI = spiffe://td/a ; Hash=00 , URI=spiffe://td/b ")).toMatchObject({
      ok: true,
      elements: [{ uri: ["spiffe://td/a"], hash: "00" }, { uri: ["spiffe://td/b"] }],
    });
  });

  it("allows '=' inside an unquoted value (Envoy does not quote URI)", () => {
    expect(parseXfcc("URI=spiffe://td/a=b")).toMatchObject({ ok: true, elements: [{ uri: ["spiffe://td/a=b"] }] });
  });

  it("skips keys it does not know", () => {
    expect(parseXfcc("X-Future=1;URI=spiffe://td/a")).toMatchObject({ ok: true, elements: [{ uri: ["spiffe://td/a"] }] });
  });
});

describe("parseXfcc refuses malformed headers, with a reason", () => {
  it.each([
    ["", /empty header/],
    ["   ", /key was expected/],
    ["URI=spiffe://td/a;", /key was expected/],
    ["URI=spiffe://td/a,", /key was expected/],
    [",URI=spiffe://td/a", /empty element/],
    ["URI=spiffe://td/a,,URI=spiffe://td/b", /empty element/],
    ["URI=spiffe://td/a;;Hash=00", /empty element/],
    ["URI", /no '='/],
    ["URI spiffe://td/a", /no '='/],
    ["=spiffe://td/a", /invalid key/],
    ['Subject="unterminated', /unterminated/],
    ['Subject="ends in escape\\"', /unterminated/],
    ['Subject="a"b;URI=spiffe://td/a', /after quoted value/],
    ['URI=spiffe://td/"a"', /stray quote/],
    ["Hash=00;Hash=11", /repeated/],
    ['Subject="";subject="x"', /repeated/],
  ])("%j", (header, reason) => {
    const parsed = parseXfcc(header);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toMatch(reason);
  });

  it("allows a single-valued key once per element, not once per header", () => {
    expect(parseXfcc("Hash=00,Hash=11").ok).toBe(true);
  });
});

describe("selectTrustedXfccElement applies the trusted-hops rule", () => {
  const gateway = `By=spiffe://td/ns/gw/sa/gw;Hash=${HASH};URI=spiffe://td/ns/client/sa/client`;
  const ours = `By=spiffe://td/ns/app/sa/app;Hash=${HASH};Subject="";URI=spiffe://td/ns/gw/sa/gw`;

  it("with 1 trusted hop takes the last element, written by our own Envoy", () => {
    expect(callerFromXfcc(`${gateway},${ours}`, 1)).toMatchObject({ ok: true, spiffe: { id: "spiffe://td/ns/gw/sa/gw" } });
  });

  it("with 2 trusted hops takes the element before it", () => {
    expect(callerFromXfcc(`${gateway},${ours}`, 2)).toMatchObject({ ok: true, spiffe: { id: "spiffe://td/ns/client/sa/client" } });
  });

  it("ignores what earlier, untrusted hops claim", () => {
    const forged = "URI=spiffe://td/ns/admin/sa/root";
    expect(callerFromXfcc(`${forged},${gateway},${ours}`, 2)).toMatchObject({
      ok: true, spiffe: { id: "spiffe://td/ns/client/sa/client" },
    });
  });

  it("refuses when fewer elements are present than trusted hops", () => {
    expect(callerFromXfcc(ours, 2)).toMatchObject({ ok: false, reason: expect.stringMatching(/1 element\(s\) but xfccTrustedHops is 2/) as unknown });
  });

  it("trusts nothing with 0 hops, whatever the header says", () => {
    expect(callerFromXfcc(ours, 0)).toMatchObject({ ok: false, reason: expect.stringMatching(/not trusted/) as unknown });
    expect(selectTrustedXfccElement([element({ uri: ["spiffe://td/a"] })], 0).ok).toBe(false);
  });

  it.each([
    ["no URI", element({ dns: ["a.example"] }), /no URI/],
    ["two URIs", element({ uri: ["spiffe://td/a", "spiffe://td/b"] }), /2 URIs/],
    ["a non-SPIFFE URI", element({ uri: ["https://td/a"] }), /not a valid SPIFFE ID/],
    ["a trust-domain ID", element({ uri: ["spiffe://td"] }), /no path/],
    ["an upper-case trust domain", element({ uri: ["spiffe://TD/a"] }), /lower-case/],
  ])("refuses a trusted element with %s", (_name, el, reason) => {
    const selected = selectTrustedXfccElement([el], 1);
    expect(selected.ok).toBe(false);
    if (!selected.ok) expect(selected.reason).toMatch(reason);
  });

  it("reports a malformed header as malformed", () => {
    expect(callerFromXfcc('URI="x', 1)).toMatchObject({ ok: false, reason: expect.stringMatching(/malformed: unterminated/) as unknown });
  });
});
