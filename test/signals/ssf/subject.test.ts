import { describe, expect, it } from "vitest";
import { spiffeIdProblem } from "../../../src/identity/index.js";
import { CAEP, RISC, SSF_EVENTS, eventShortName } from "../../../src/signals/ssf/index.js";
import { ReplayGuard } from "../../../src/signals/ssf/replay.js";
import { resolveSubjectId } from "../../../src/signals/ssf/subject.js";

describe("SPIFFE IDs in SET subjects", () => {
  it.each([
    "spiffe://prod.example.com/ns/payments/sa/api",
    "spiffe://10.0.0.1/workload",
    "spiffe://my_td-1.example/a.b/c-d/E_F",
    "spiffe://td/..a/a..",
    `spiffe://td/${"a".repeat(2048 - "spiffe://td/".length)}`,
  ])("accepts %s", (uri) => {
    expect(spiffeIdProblem(uri)).toBeUndefined();
  });

  it.each([
    ["spiffe://td", /no path/],
    ["spiffe://TD/a", /trust domain/],
    ["spiffe://[::1]/a", /trust domain/],
    ["spiffe://td/a b", /path segments/],
    ["spiffe://td/.", /relative/],
    ["https://td/a", /scheme/],
    [`spiffe://td/${"a".repeat(2049 - "spiffe://td/".length)}`, /2048/],
    [`spiffe://${"a".repeat(256)}/a`, /255/],
  ])("refuses %s", (uri, why) => {
    expect(spiffeIdProblem(uri)).toMatch(why);
  });
});

describe("sub_id resolution", () => {
  it("maps the formats Vigil keys signals by", () => {
    expect(resolveSubjectId({ format: "uri", uri: "spiffe://td/a" })).toEqual({ mapped: true, kind: "spiffe", subject: "spiffe://td/a" });
    expect(resolveSubjectId({ format: "opaque", id: `sha256:${"F".repeat(64)}` }))
      .toEqual({ mapped: true, kind: "credential", subject: `sha256:${"f".repeat(64)}` });
    expect(resolveSubjectId({ format: "iss_sub", iss: "https://idp/", sub: "42" }))
      .toEqual({ mapped: true, kind: "iss_sub", subject: "iss_sub:https://idp/#42" });
  });

  it("tolerates members it does not know and reports other formats as unmapped", () => {
    expect(resolveSubjectId({ format: "uri", uri: "spiffe://td/a", extra: 1 })).toMatchObject({ mapped: true });
    expect(resolveSubjectId({ format: "jwt_id", iss: "https://idp/", jti: "x" })).toEqual({ mapped: false, format: "jwt_id" });
    expect(resolveSubjectId({ format: "aliases", identifiers: [{ format: "email", email: "a@b" }] })).toEqual({ mapped: false, format: "email" });
  });

  it("refuses an iss_sub subject longer than a signal subject may be", () => {
    expect(() => resolveSubjectId({ format: "iss_sub", iss: "https://idp/", sub: "x".repeat(2100) })).toThrow(/longer/);
  });
});

describe("event short names", () => {
  it("names defined events by their last segment and everything else unknown", () => {
    expect(eventShortName(CAEP.riskLevelChange)).toBe("risk-level-change");
    expect(eventShortName(RISC.credentialCompromise)).toBe("credential-compromise");
    expect(eventShortName(SSF_EVENTS.verification)).toBe("verification");
    expect(eventShortName("https://schemas.openid.net/secevent/caep/event-type/made-up")).toBe("unknown");
  });
});

describe("replay memory", () => {
  it("forgets a pair after the window and the oldest pairs past its limit", () => {
    const guard = new ReplayGuard(1_000, 2);
    expect(guard.reserve("i", "a", "d1", 0)).toBe("new");
    guard.commit("i", "a", 0);
    expect(guard.reserve("i", "a", "d2", 999)).toBe("replay");
    expect(guard.reserve("i", "a", "d2", 1_000)).toBe("new");
    guard.commit("i", "a", 1_000);
    for (const jti of ["b", "c"]) {
      guard.reserve("i", jti, "d", 1_500);
      guard.commit("i", jti, 1_500);
    }
    expect(guard.size).toBe(2);
    expect(guard.reserve("i", "a", "d2", 1_600)).toBe("new");
    expect(guard.reserve("i", "b", "x", 1_600)).toBe("replay");
  });

  it("tells an identical re-delivery from a replay with other content", () => {
    const guard = new ReplayGuard(1_000);
    expect(guard.reserve("i", "a", "d1", 0)).toBe("new");
    expect(guard.reserve("i", "a", "d1", 0)).toBe("busy");
    expect(guard.reserve("i", "a", "d2", 0)).toBe("replay");
    guard.commit("i", "a", 0);
    expect(guard.reserve("i", "a", "d1", 10)).toBe("repeat");
    expect(guard.reserve("i", "a", "d2", 10)).toBe("replay");
    expect(guard.reserve("other-issuer", "a", "d2", 10)).toBe("new");
  });

  it("lets a released pair through again and remembers nothing of it", () => {
    const guard = new ReplayGuard(1_000);
    expect(guard.reserve("i", "a", "d1", 0)).toBe("new");
    guard.release("i", "a");
    guard.commit("i", "a", 0);
    expect(guard.size).toBe(0);
    expect(guard.reserve("i", "a", "d2", 0)).toBe("new");
  });
});
