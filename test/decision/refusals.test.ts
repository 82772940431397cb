// The refusals phase, table by table: what overrides the policy's answer after it was given.
// Each row is one policy result and one set of facts; the expected row is the final result.

import { describe, expect, it } from "vitest";
import { applyRefusals, BACKLOG_FULL_REASON, IDENTITY_RULE, pathProblem, type RefusalFacts } from "../../src/decision/index.js";
import type { Caller } from "../../src/identity/index.js";
import type { Outcome } from "../../src/model/index.js";
import type { PolicyResult } from "../../src/policy/types.js";

const ALICE = "spiffe://example.org/ns/ci/sa/alice";

function caller(overrides: Partial<Caller> = {}): Caller {
  return {
    spiffeId: ALICE, trustDomain: "example.org", path: "/ns/ci/sa/alice", source: "mtls_principal",
    credentials: [], problems: [], refused: false, headersToRemove: [], ...overrides,
  };
}

const REFUSED = caller({ refused: true, problems: [{ code: "invalid_principal", message: "principal is not a SPIFFE ID" }], spiffeId: "" });
const ANONYMOUS = caller({ spiffeId: "", trustDomain: "", path: "", source: "none" });
const KEY_ONLY = caller({ spiffeId: "", source: "none", credentials: [{ header: "x-api-key", scheme: "api_key", fingerprint: `sha256:${"a".repeat(64)}` }] });

function result(outcome: Outcome, rule = "p/r", revoke: PolicyResult["revoke"] = []): PolicyResult {
  return { outcome, rule, reason: `${rule} said ${outcome}`, revoke, privileged: false };
}

function facts(overrides: Partial<RefusalFacts> = {}): RefusalFacts {
  return { caller: caller(), destinationProblem: undefined, pathProblem: undefined, rpcProblem: undefined, backlogFull: false, ...overrides };
}

describe("refusals override the policy after it answered", () => {
  it.each([
    // Nothing to refuse: the policy's result stands as it is.
    { name: "clean allow stays", given: result("allow"), facts: facts(), outcome: "allow", rule: "p/r", reason: "p/r said allow" },
    { name: "clean no-match deny stays", given: result("deny", ""), facts: facts(), outcome: "deny", rule: "", reason: " said deny" },
    // 1. Identity problems.
    { name: "identity refused turns allow into deny", given: result("allow"), facts: facts({ caller: REFUSED }), outcome: "deny", rule: IDENTITY_RULE, reason: "identity refused: principal is not a SPIFFE ID" },
    { name: "identity refused turns step_up into deny", given: result("step_up"), facts: facts({ caller: REFUSED }), outcome: "deny", rule: IDENTITY_RULE, reason: "identity refused: principal is not a SPIFFE ID" },
    { name: "identity refused turns delay into deny", given: result("delay"), facts: facts({ caller: REFUSED }), outcome: "deny", rule: IDENTITY_RULE, reason: "identity refused: principal is not a SPIFFE ID" },
    { name: "identity refused turns no-match into deny", given: result("deny", ""), facts: facts({ caller: REFUSED }), outcome: "deny", rule: IDENTITY_RULE, reason: "identity refused: principal is not a SPIFFE ID" },
    { name: "identity refused keeps a rule's deny", given: result("deny"), facts: facts({ caller: REFUSED }), outcome: "deny", rule: "p/r", reason: "p/r said deny" },
    { name: "identity refused keeps a revoke", given: result("revoke"), facts: facts({ caller: REFUSED }), outcome: "revoke", rule: "p/r", reason: "p/r said revoke" },
    { name: "problems without refusal (onProblem: policy) leave it to the policy", given: result("allow"), facts: facts({ caller: { ...REFUSED, refused: false } }), outcome: "allow", rule: "p/r", reason: "p/r said allow" },
    // 2. Destination, path, batch.
    { name: "no destination denies an allow", given: result("allow"), facts: facts({ destinationProblem: "no destination: x" }), outcome: "deny", rule: "", reason: "no destination: x" },
    { name: "no destination replaces a no-match reason", given: result("deny", ""), facts: facts({ destinationProblem: "no destination: x" }), outcome: "deny", rule: "", reason: "no destination: x" },
    { name: "no destination keeps a rule's deny", given: result("deny"), facts: facts({ destinationProblem: "no destination: x" }), outcome: "deny", rule: "p/r", reason: "p/r said deny" },
    { name: "no destination keeps a revoke", given: result("revoke"), facts: facts({ destinationProblem: "no destination: x" }), outcome: "revoke", rule: "p/r", reason: "p/r said revoke" },
    { name: "dot segment denies an allow", given: result("allow"), facts: facts({ pathProblem: pathProblem("/v1/../admin") }), outcome: "deny", rule: "", reason: "path has a dot segment (. or ..)" },
    { name: "encoded slash denies a step_up", given: result("step_up"), facts: facts({ pathProblem: pathProblem("/v1/a%2Fb") }), outcome: "deny", rule: "", reason: "path has an encoded slash or backslash (%2F, %5C)" },
    { name: "a body that cannot be judged denies an allow", given: result("allow"), facts: facts({ rpcProblem: "MCP route: the body is not JSON-RPC 2.0" }), outcome: "deny", rule: "", reason: "MCP route: the body is not JSON-RPC 2.0" },
    { name: "a body that cannot be judged keeps a rule's deny", given: result("deny"), facts: facts({ rpcProblem: "MCP route: the body is not JSON-RPC 2.0" }), outcome: "deny", rule: "p/r", reason: "p/r said deny" },
    { name: "the destination problem is named before the path's", given: result("allow"), facts: facts({ destinationProblem: "no destination: x", pathProblem: pathProblem("//x") }), outcome: "deny", rule: "", reason: "no destination: x" },
    // 3. Revocation backlog overflow.
    { name: "backlog full denies an identified caller", given: result("allow"), facts: facts({ backlogFull: true }), outcome: "deny", rule: "", reason: BACKLOG_FULL_REASON },
    { name: "backlog full denies a caller known by key only", given: result("delay"), facts: facts({ backlogFull: true, caller: KEY_ONLY }), outcome: "deny", rule: "", reason: BACKLOG_FULL_REASON },
    { name: "backlog full leaves an anonymous caller to the policy", given: result("allow"), facts: facts({ backlogFull: true, caller: ANONYMOUS }), outcome: "allow", rule: "p/r", reason: "p/r said allow" },
    { name: "backlog full keeps a rule's deny", given: result("deny"), facts: facts({ backlogFull: true }), outcome: "deny", rule: "p/r", reason: "p/r said deny" },
    { name: "backlog full keeps a revoke", given: result("revoke"), facts: facts({ backlogFull: true }), outcome: "revoke", rule: "p/r", reason: "p/r said revoke" },
    // Several at once: the first refusal that applies names the deny.
    { name: "identity before path", given: result("allow"), facts: facts({ caller: REFUSED, pathProblem: pathProblem("/a/./b") }), outcome: "deny", rule: IDENTITY_RULE, reason: "identity refused: principal is not a SPIFFE ID" },
  ])("$name", ({ given, facts: f, outcome, rule, reason }) => {
    const out = applyRefusals(given, f);
    expect({ outcome: out.outcome, rule: out.rule, reason: out.reason }).toEqual({ outcome, rule, reason });
  });

  it("keeps a rule's revoke list through an identity refusal, and drops it for a transport-level deny", () => {
    const withRevoke = result("allow", "p/r", ["credential"]);
    expect(applyRefusals(withRevoke, facts({ caller: REFUSED })).revoke).toEqual(["credential"]);
    expect(applyRefusals(withRevoke, facts({ destinationProblem: "no destination: x" })).revoke).toEqual([]);
  });

  it("returns the policy's own result object when nothing applies", () => {
    const given = result("allow");
    expect(applyRefusals(given, facts())).toBe(given);
  });
});
