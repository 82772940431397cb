// Rules name the controls they enforce from a closed catalogue; decisions carry them; a refusal
// is explained by every rule that matched.

import { describe, expect, it } from "vitest";
import { compilePolicy, controlProblem, CONTROLS, EvidenceCollector, parsePolicyDocuments } from "../../src/policy/index.js";
import { policyInput } from "./policy-input.js";

const policy = (controls: string): string => `
apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: p }
spec:
  destinations: [svc]
  rules:
    - { name: read, methods: [GET], outcome: allow, controls: ${controls} }
    - { name: risky, methods: [GET], when: 'signals.risk == "high"', outcome: deny, controls: [SP800-207:2.1.4] }
    - { name: leaked, when: 'signals.credential == "leaked"', outcome: revoke, revoke: [credential], controls: [NHI2] }
`;

describe("controls", () => {
  it("knows the frameworks' real identifiers", () => {
    const ids = CONTROLS.map((c) => c.id);
    for (const id of ["NHI1", "NHI2", "NHI4", "NHI5", "NHI7", "NHI8", "SP800-207:2.1.1", "SP800-207:2.1.7", "SP800-207:3.3", "PR.AA-05"]) expect(ids).toContain(id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it.each([
    ["[NHI11]", /unknown control "NHI11"/],
    ["[nhi2]", /did you mean NHI2\?/],
    ["[PR.AC-4]", /did you mean PR\.AA-05\? CSF 2\.0 replaced CSF 1\.1's PR\.AC-4/],
    ["[NHI2, NHI2]", /lists the same control twice/],
    ["[]", /must not be empty/],
  ])("refuses controls %s at load, naming file, document and path", (controls, message) => {
    expect(() => parsePolicyDocuments(policy(controls), "p.yaml")).toThrow(/p\.yaml doc 1: spec\.rules\[0\]\.controls/);
    expect(() => parsePolicyDocuments(policy(controls), "p.yaml")).toThrow(message);
  });

  it("gives the deciding rule's controls, and explains a refusal by every rule that matched", () => {
    const compiled = compilePolicy(parsePolicyDocuments(policy("[PR.AA-05, NHI5]")));
    expect(compiled.evaluate(policyInput("svc", "GET", "/x")).controls).toEqual(["PR.AA-05", "NHI5"]);
    const risky = policyInput("svc", "GET", "/x", { signals: { risk: "high", credential: "leaked" } });
    const result = compiled.evaluate(risky);
    expect(result).toMatchObject({ outcome: "revoke", rule: "p/leaked", controls: ["NHI2"] });
    expect(compiled.explain?.(risky)).toEqual(["p/leaked", "p/risky", "p/read"]);
    expect(compiled.explain?.(policyInput("svc", "POST", "/x"))).toEqual([]);
    expect(controlProblem("NHI5")).toBeUndefined();
  });
});

describe("evidence collector", () => {
  const line = (fields: Record<string, unknown>): string => JSON.stringify({ level: "info", time: "2026-11-25T12:00:00.000Z", msg: "decision", outcome: "deny", decision_id: "d-1", controls: ["NHI2"], ...fields });
  it.each([
    ["not JSON", "{"],
    ["not a decision", line({ msg: "policy loaded" })],
    ["an unknown outcome", line({ outcome: "maybe" })],
    ["an id with markup", line({ decision_id: "<b>" })],
    ["controls that are not strings", line({ controls: [1] })],
    ["no time", line({ time: "yesterday" })],
    ["a JSON array", "[1,2]"],
  ])("skips a line with %s", (_what, text) => {
    const collector = new EvidenceCollector();
    collector.add(text);
    expect(collector.report()).toMatchObject({ lines: 1, decisions: 0, skipped: 1, controls: [] });
  });

  it("counts only the period asked for", () => {
    const collector = new EvidenceCollector({ since: Date.parse("2026-11-25T00:00:00Z"), until: Date.parse("2026-11-26T00:00:00Z") });
    collector.add(line({ time: "2026-11-24T23:59:59.999Z", decision_id: "before" }));
    collector.add(line({ decision_id: "inside", outcome: "revoke" }));
    collector.add(line({ time: "2026-11-26T00:00:00.000Z", decision_id: "after" }));
    expect(collector.report()).toMatchObject({ decisions: 1, controls: [{ id: "NHI2", decisions: 1, outcomes: { revoke: 1 }, sampleDecisionIds: ["inside"] }] });
  });
});
