import { describe, expect, expectTypeOf, it } from "vitest";
import { MAX_SPIFFE_ID_BYTES, parseSpiffeId, parseWorkloadSpiffeId } from "../../src/identity/index.js";

/** A valid ID of exactly `bytes` bytes: spiffe://example.org/ then 9-byte segments, then a tail. */
function idOfLength(bytes: number): string {
  let id = "spiffe://example.org";
  while (bytes - id.length > 10) id += "/segment1";
  return id + "/" + "z".repeat(bytes - id.length - 1);
}

describe("parseSpiffeId accepts what the SPIFFE-ID standard allows", () => {
  it.each([
    ["spiffe://example.org/ns/ci/sa/deployer", "example.org", "/ns/ci/sa/deployer"],
    ["spiffe://example.org", "example.org", ""],
    ["spiffe://cluster.local/ns/default/sa/sleep", "cluster.local", "/ns/default/sa/sleep"],
    ["spiffe://td-with_under.score/Path/With-MIXED_case.v1", "td-with_under.score", "/Path/With-MIXED_case.v1"],
    ["spiffe://192.168.1.10/workload", "192.168.1.10", "/workload"],
    ["spiffe://a/b", "a", "/b"],
    ["spiffe://example.org/...", "example.org", "/..."],
    ["spiffe://example.org/.hidden/..x", "example.org", "/.hidden/..x"],
  ])("%s", (id, trustDomain, path) => {
    expect(parseSpiffeId(id)).toEqual({ ok: true, id, trustDomain, path });
  });

  it("accepts an ID of exactly 2048 bytes and a 255-byte trust domain", () => {
    const id = idOfLength(MAX_SPIFFE_ID_BYTES);
    expect(id).toHaveLength(2048);
    expect(parseSpiffeId(id).ok).toBe(true);
    const td = "a".repeat(255);
    expect(parseSpiffeId(`spiffe://${td}/x`)).toMatchObject({ ok: true, trustDomain: td });
  });
});

describe("parseSpiffeId rejects, with a reason, what the standard forbids", () => {
  it.each([
    ["", /empty/],
    ["example.org/ns/a", /scheme/],
    ["https://example.org/ns/a", /scheme/],
    ["spiffe:example.org/ns/a", /scheme/],
    ["spiffe:/example.org/ns/a", /scheme/],
    ["SPIFFE://example.org/ns/a", /lower case/],
    ["Spiffe://example.org/ns/a", /lower case/],
    ["spiffe://", /trust domain is empty/],
    ["spiffe:///ns/a", /trust domain is empty/],
    ["spiffe://Example.org/ns/a", /lower-case/],
    ["spiffe://EXAMPLE.ORG", /lower-case/],
    ["spiffe://example.org:8443/ns/a", /port/],
    ["spiffe://example.org:/ns/a", /port/],
    ["spiffe://user@example.org/ns/a", /userinfo/],
    ["spiffe://user:pw@example.org/ns/a", /port|userinfo/],
    ["spiffe://[::1]/ns/a", /IPv6/],
    ["spiffe://[2001:db8::1]/ns/a", /IPv6/],
    ["spiffe://example.org?x=1", /query/],
    ["spiffe://example.org/ns/a?x=1", /query/],
    ["spiffe://example.org#frag", /fragment/],
    ["spiffe://example.org/ns/a#frag", /fragment/],
    ["spiffe://example%2Eorg/ns/a", /percent/],
    ["spiffe://example.org/ns%2Fa", /percent/],
    ["spiffe://example.org/ns/%61", /percent/],
    ["spiffe://example.org/", /trailing/],
    ["spiffe://example.org/ns/a/", /trailing/],
    ["spiffe://example.org//ns/a", /empty path segment/],
    ["spiffe://example.org/ns//a", /empty path segment/],
    ["spiffe://example.org/.", /'\.' and '\.\.'/],
    ["spiffe://example.org/./a", /'\.' and '\.\.'/],
    ["spiffe://example.org/ns/..", /'\.' and '\.\.'/],
    ["spiffe://example.org/ns/../a", /'\.' and '\.\.'/],
    ["spiffe://example.org/ns/a b", /path segments may contain only/],
    ["spiffe://example.org/ns/a+b", /path segments may contain only/],
    ["spiffe://example.org/ns/é", /path segments may contain only/],
    ["spiffe://exa mple.org/ns/a", /trust domain may contain only/],
    ["spiffe://exämple.org/ns/a", /trust domain may contain only/],
    ["spiffe://example.org/ns/a\n", /path segments may contain only/],
    [" spiffe://example.org/ns/a", /scheme/],
  ])("%j", (id, reason) => {
    const parsed = parseSpiffeId(id);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toMatch(reason);
  });

  it("rejects an ID of 2049 bytes and a 256-byte trust domain", () => {
    const id = idOfLength(MAX_SPIFFE_ID_BYTES + 1);
    expect(id).toHaveLength(2049);
    expect(parseSpiffeId(id)).toMatchObject({ ok: false, reason: expect.stringMatching(/longer than 2048/) as unknown });
    expect(parseSpiffeId(`spiffe://${"a".repeat(256)}/x`)).toMatchObject({ ok: false, reason: expect.stringMatching(/longer than 255/) as unknown });
  });

  it("never echoes the rejected input in its reason", () => {
    const parsed = parseSpiffeId("spiffe://example.org/secret-looking%20thing");
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).not.toContain("secret-looking");
  });
});

describe("parseWorkloadSpiffeId", () => {
  it("requires a path: a trust-domain ID names no workload", () => {
    expect(parseWorkloadSpiffeId("spiffe://example.org")).toMatchObject({ ok: false, reason: expect.stringMatching(/no path/) as unknown });
    expect(parseWorkloadSpiffeId("spiffe://example.org/ns/a")).toMatchObject({ ok: true, path: "/ns/a" });
  });

  it("passes on the underlying rejection", () => {
    expect(parseWorkloadSpiffeId("spiffe://Example.org/a")).toMatchObject({ ok: false, reason: expect.stringMatching(/lower-case/) as unknown });
  });
});

describe("public types", () => {
  it("parseSpiffeId keeps the signature other modules build on", () => {
    expectTypeOf(parseSpiffeId).parameters.toEqualTypeOf<[string]>();
    expectTypeOf(parseSpiffeId).returns.toEqualTypeOf<
      { ok: true; id: string; trustDomain: string; path: string } | { ok: false; reason: string }
    >();
  });
});
