// upstreamHeaders, the one place that decides what an allowed request's upstream sees of Vigil:
// which identity headers are set and which request headers are removed, row by row.

import { describe, expect, it } from "vitest";
import type { Decision } from "../../../src/model/index.js";
import { upstreamHeaders } from "../../../src/transport/envoy/upstream-headers.js";

const CALLER = "spiffe://example.org/ns/ci/sa/deployer";
const IDENTITY = ["x-vigil-decision-id", "x-vigil-caller", "x-vigil-trust-domain", "x-vigil-credential-fingerprint"];

function decision(overrides: Partial<Decision> = {}): Decision {
  return {
    id: "d-1", outcome: "allow", rule: "r", reason: "", caller: CALLER, trustDomain: "example.org",
    credentialFingerprint: "sha256:ab", headersToRemove: [], durationNs: 0, ...overrides,
  };
}

describe("upstreamHeaders", () => {
  it.each([
    {
      name: "a fully identified caller: every identity header set, none removed",
      decision: decision(), headers: {},
      set: [["x-vigil-decision-id", "d-1"], ["x-vigil-caller", CALLER], ["x-vigil-trust-domain", "example.org"], ["x-vigil-credential-fingerprint", "sha256:ab"]],
      remove: [],
    },
    {
      name: "no caller, no credential: those identity headers removed, so a client copy cannot pass",
      decision: decision({ caller: "", trustDomain: "", credentialFingerprint: "" }), headers: {},
      set: [["x-vigil-decision-id", "d-1"]],
      remove: ["x-vigil-caller", "x-vigil-trust-domain", "x-vigil-credential-fingerprint"],
    },
    {
      name: "what identity did not believe (an XFCC) is removed first, lower-cased",
      decision: decision({ headersToRemove: ["X-Forwarded-Client-Cert"] }), headers: {},
      set: 4, remove: ["x-forwarded-client-cert"],
    },
    {
      name: "every x-vigil-* header the client sent is removed, except the ones set this time",
      decision: decision({ credentialFingerprint: "" }),
      headers: { "x-vigil-approval-id": "apr_1", "x-vigil-caller": "spiffe://evil/x", "x-vigil-step-up": "approval", "x-other": "1" },
      set: 3, remove: ["x-vigil-approval-id", "x-vigil-step-up", "x-vigil-credential-fingerprint"],
    },
    {
      name: "a value Envoy would refuse is not sent; the client's copy of that header is removed instead",
      decision: decision({ caller: "spiffe://example.org/a\nb" }), headers: {},
      set: [["x-vigil-decision-id", "d-1"], ["x-vigil-trust-domain", "example.org"], ["x-vigil-credential-fingerprint", "sha256:ab"]],
      remove: ["x-vigil-caller"],
    },
    {
      name: "a tab is a valid field value",
      decision: decision({ id: "d\t1" }), headers: {},
      set: 4, remove: [],
    },
    {
      name: "names Envoy cannot remove are dropped: pseudo-headers, host, non-tokens",
      decision: decision({ headersToRemove: [":path", "host", "bad name", "authorization", "x-vigil-caller"] }), headers: {},
      set: 4, remove: ["authorization"],
    },
    {
      name: "duplicates are removed once",
      decision: decision({ caller: "", headersToRemove: ["x-vigil-caller", "X-VIGIL-CALLER"] }), headers: { "x-vigil-caller": "forged" },
      set: 3, remove: ["x-vigil-caller"],
    },
  ])("$name", ({ decision: d, headers, set, remove }) => {
    const result = upstreamHeaders(d, headers as Record<string, string>);
    if (typeof set === "number") expect(result.set).toHaveLength(set);
    else expect(result.set).toEqual(set);
    expect(result.remove).toEqual(remove);
    // Envoy applies set before remove: nothing set may also be removed.
    for (const [name] of result.set) expect(result.remove).not.toContain(name);
    for (const [name] of result.set) expect(IDENTITY).toContain(name);
  });

  it("reads request headers with a null prototype (as the decoder builds them) without tripping on inherited names", () => {
    const headers = Object.assign(Object.create(null) as Record<string, string>, { "x-vigil-forged": "1", "__proto__": "x" });
    expect(upstreamHeaders(decision(), headers).remove).toEqual(["x-vigil-forged"]);
  });
});
