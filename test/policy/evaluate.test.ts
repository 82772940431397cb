// How a compiled policy decides: matchers, most restrictive wins, nothing matched → deny,
// failing conditions → deny, appliesTo: privileged, and the destination/method index.

import { describe, expect, it, vi } from "vitest";
import { compilePolicy, parsePolicyDocuments } from "../../src/policy/index.js";
import type { CompileOptions, CompiledPolicy, PolicyInput } from "../../src/policy/index.js";
import { mcpToolCall, policyInput } from "./policy-input.js";

const CALLER = "spiffe://example.org/ns/apps/sa/web";

/** One policy document per entry: [destinations, rules YAML (list items at column 0)]. */
function policy(documents: [string[], string][], options?: CompileOptions): CompiledPolicy {
  const text = documents.map(([destinations, rules], index) => {
    const body = rules.trim().split("\n").map((line) => `    ${line}`).join("\n");
    return `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata:
  name: p${index}
spec:
  destinations: ${JSON.stringify(destinations)}
  rules:
${body}
`;
  }).join("---\n");
  return compilePolicy(parsePolicyDocuments(text, "test.yaml"), options);
}

const get = (destination: string, path: string, overrides: Parameters<typeof policyInput>[3] = {}): PolicyInput =>
  policyInput(destination, "GET", path, { caller: CALLER, ...overrides });

describe("policy evaluation", () => {
  describe("combining rules", () => {
    const allOutcomes = policy([[["svc"], `
- name: allow
  outcome: allow
- name: delay
  paths: ["/delay/**", "/step/**", "/deny/**", "/revoke/**"]
  outcome: delay
  retryAfterSeconds: 30
- name: step
  paths: ["/step/**", "/deny/**", "/revoke/**"]
  outcome: step_up
  stepUp: { approvers: [ops] }
- name: deny
  paths: ["/deny/**", "/revoke/**"]
  outcome: deny
  reason: no
- name: revoke
  paths: ["/revoke/**"]
  outcome: revoke
  revoke: [identity, credential]
`]]);

    it.each([
      { path: "/plain", outcome: "allow", rule: "p0/allow" },
      { path: "/delay/x", outcome: "delay", rule: "p0/delay", retryAfterSeconds: 30 },
      { path: "/step/x", outcome: "step_up", rule: "p0/step", stepUp: { approvers: ["ops"], grantTtlSeconds: 900, grantUses: 1 } },
      { path: "/deny/x", outcome: "deny", rule: "p0/deny", reason: "no" },
      { path: "/revoke/x", outcome: "revoke", rule: "p0/revoke", revoke: ["identity", "credential"] },
    ])("the most restrictive matching rule decides: $path → $outcome", ({ path, ...expected }) => {
      expect(allOutcomes.evaluate(get("svc", path))).toMatchObject(expected);
    });

    it("prefers the first declared rule among equally restrictive ones", () => {
      const twoDenies = policy([
        [["svc"], "- name: first\n  outcome: deny\n  reason: first\n- name: second\n  outcome: deny\n  reason: second"],
        [["*"], "- name: third\n  outcome: deny\n  reason: third"],
      ]);
      expect(twoDenies.evaluate(get("svc", "/"))).toMatchObject({ rule: "p0/first", reason: "first" });
    });

    it("prefers the first loaded rule even when a later one is checked first", () => {
      const twoAllows = policy([[["svc"], "- name: plain\n  outcome: allow\n- name: conditional\n  when: signals.fresh\n  outcome: allow"]]);
      expect(twoAllows.evaluate(get("svc", "/")).rule).toBe("p0/plain");
    });

    it("prefers a result that also starts revocations", () => {
      const denies = policy([[["*"], `
- name: revoked
  when: signals.revoked
  outcome: deny
- name: overdue
  when: signals.credential_overdue
  outcome: deny
  revoke: [credential]
`]]);
      const both = get("svc", "/", { signals: { revoked: true, credential_overdue: true } });
      expect(denies.evaluate(both)).toMatchObject({ outcome: "deny", rule: "p0/overdue", revoke: ["credential"] });
    });

    it("prefers a rule's own deny over a deny from a failing condition", () => {
      const denies = policy([[["svc"], `
- name: broken
  when: context.env == "prod"
  outcome: allow
- name: real
  outcome: deny
  reason: the real reason
`]]);
      expect(denies.evaluate(get("svc", "/"))).toMatchObject({ outcome: "deny", rule: "p0/real", reason: "the real reason" });
    });

    it("denies when nothing matched", () => {
      const result = allOutcomes.evaluate(get("other", "/plain"));
      expect(result).toEqual({ outcome: "deny", rule: "", reason: "no rule allows this request", revoke: [], privileged: false });
    });

    it("hands out results the caller may change without affecting later decisions", () => {
      const first = allOutcomes.evaluate(get("svc", "/revoke/x"));
      first.revoke.push("identity");
      first.outcome = "allow";
      expect(allOutcomes.evaluate(get("svc", "/revoke/x"))).toMatchObject({ outcome: "revoke", revoke: ["identity", "credential"] });
    });
  });

  describe("conditions", () => {
    it("denies, naming the rule, when a condition fails to evaluate", () => {
      const onConditionError = vi.fn();
      const guarded = policy([[["svc"], `
- name: open
  outcome: allow
- name: prod-only
  when: context.env == "prod"
  outcome: allow
`]], { onConditionError });
      const result = guarded.evaluate(get("svc", "/"));
      expect(result).toEqual({ outcome: "deny", rule: "p0/prod-only", reason: "a policy condition could not be evaluated", revoke: [], privileged: false });
      expect(onConditionError).toHaveBeenCalledOnce();
      expect(onConditionError.mock.calls[0]?.[0]).toBe("p0/prod-only");
      expect(guarded.evaluate(get("svc", "/", { context: { env: "prod" } }))).toMatchObject({ outcome: "allow" });
      expect(guarded.evaluate(get("svc", "/", { context: { env: "dev" } }))).toMatchObject({ outcome: "allow", rule: "p0/open" });
    });

    it("keeps deciding when the error hook throws", () => {
      const broken = policy([[["svc"], "- name: r\n  when: request.headers[\"x\"] == \"1\"\n  outcome: allow"]], {
        onConditionError: () => {
          throw new Error("logger down");
        },
      });
      expect(broken.evaluate(get("svc", "/")).outcome).toBe("deny");
    });

    it("sees request, source, context, signals and now", () => {
      const rich = policy([[["svc"], `
- name: everything
  when: >-
    request.method == "GET" && request.path_only == "/x" && request.headers["x-team"] == "a"
    && source.trust_domain == "example.org" && context.env == "prod"
    && signals.risk == "low" && "rate_spike" in signals.anomalies && signals.risk_age_seconds < 60
    && now.getDayOfWeek("UTC") == 3 && now.getHours("UTC") == 10
    && inCidr(request.source_ip, ["10.0.0.0/8"])
  outcome: allow
`]]);
      const input = get("svc", "/x?debug=1", {
        request: { headers: { "x-team": "a" } },
        context: { env: "prod" },
        signals: { risk: "low", anomalies: ["rate_spike"], risk_age_seconds: 12.5 },
      });
      expect(rich.evaluate(input)).toMatchObject({ outcome: "allow", rule: "p0/everything" });
      expect(rich.evaluate({ ...input, now: input.now + 3600_000 }).outcome).toBe("deny");
    });

    it("never throws, even for malformed input", () => {
      const p = policy([[["svc"], "- name: r\n  when: signals.fresh\n  outcome: allow"]]);
      expect(p.evaluate({} as PolicyInput)).toMatchObject({ outcome: "deny", rule: "", reason: "policy evaluation failed" });
      const noSignals = { ...get("svc", "/"), signals: undefined } as unknown as PolicyInput;
      expect(p.evaluate(noSignals).outcome).toBe("deny");
    });
  });

  describe("matchers", () => {
    const matchers = policy([[["svc"], `
- name: by-source
  sources: ["spiffe://example.org/ns/apps/**"]
  paths: ["/source"]
  outcome: allow
- name: by-method
  methods: [get, HEAD]
  paths: ["/method"]
  outcome: allow
- name: by-grpc
  grpc: { service: "pkg.Orders", methods: ["Get"] }
  outcome: allow
- name: by-grpc-service
  grpc: { service: "pkg.Health" }
  outcome: allow
- name: by-tool
  mcpTools: ["read_*"]
  outcome: allow
- name: by-context
  paths: ["/context"]
  context: { env: [staging, dev], action: read }
  outcome: allow
- name: by-network
  paths: ["/network"]
  sourceCidrs: ["10.0.0.0/8", "fd00::/8"]
  outcome: allow
`]]);

    it.each([
      { name: "source glob", input: get("svc", "/source"), rule: "p0/by-source" },
      { name: "source outside the glob", input: get("svc", "/source", { caller: "spiffe://example.org/ns/other/sa/x" }), rule: "" },
      { name: "no identity", input: get("svc", "/source", { caller: "" }), rule: "" },
      { name: "method (written lower-case in the policy)", input: get("svc", "/method"), rule: "p0/by-method" },
      { name: "other method", input: policyInput("svc", "POST", "/method", { caller: CALLER }), rule: "" },
      { name: "gRPC service and method", input: policyInput("svc", "POST", "/pkg.Orders/Get", { request: { grpc_service: "pkg.Orders", grpc_method: "Get" } }), rule: "p0/by-grpc" },
      { name: "gRPC other method", input: policyInput("svc", "POST", "/pkg.Orders/Delete", { request: { grpc_service: "pkg.Orders", grpc_method: "Delete" } }), rule: "" },
      { name: "gRPC any method of a service", input: policyInput("svc", "POST", "/pkg.Health/Check", { request: { grpc_service: "pkg.Health", grpc_method: "Check" } }), rule: "p0/by-grpc-service" },
      { name: "MCP tool glob", input: policyInput("svc", "POST", "/mcp", { request: mcpToolCall("read_file") }), rule: "p0/by-tool" },
      { name: "MCP other tool", input: policyInput("svc", "POST", "/mcp", { request: mcpToolCall("write_file") }), rule: "" },
      { name: "MCP tool name outside tools/call", input: policyInput("svc", "POST", "/mcp", { request: { mcp_method: "tools/list", mcp_tool: "read_file" } }), rule: "" },
      { name: "context, one of several values", input: get("svc", "/context", { context: { env: "dev", action: "read" } }), rule: "p0/by-context" },
      { name: "context, a key missing", input: get("svc", "/context", { context: { env: "dev" } }), rule: "" },
      { name: "context, other value", input: get("svc", "/context", { context: { env: "prod", action: "read" } }), rule: "" },
      { name: "source network IPv4", input: get("svc", "/network", { request: { source_ip: "10.9.8.7" } }), rule: "p0/by-network" },
      { name: "source network IPv6", input: get("svc", "/network", { request: { source_ip: "fd00::7" } }), rule: "p0/by-network" },
      { name: "outside the source network", input: get("svc", "/network", { request: { source_ip: "192.0.2.1" } }), rule: "" },
      { name: "unknown source address", input: get("svc", "/network", { request: { source_ip: "" } }), rule: "" },
      { name: "path with a query", input: get("svc", "/source?x=/method"), rule: "p0/by-source" },
      { name: "path not in normal form", input: get("svc", "/x/../source"), rule: "" },
    ])("$name", ({ input, rule }) => {
      const result = matchers.evaluate(input);
      expect(result.rule).toBe(rule);
      expect(result.outcome).toBe(rule === "" ? "deny" : "allow");
    });
  });

  describe("destinations and the index", () => {
    const routed = policy([
      [["*"], "- name: everywhere\n  methods: [DELETE]\n  outcome: deny"],
      [["Orders", "billing"], "- name: read\n  methods: [GET]\n  outcome: allow\n- name: any-method\n  paths: [\"/any\"]\n  outcome: allow"],
      [["*.internal"], "- name: internal\n  outcome: step_up\n  stepUp: { approvers: [ops] }"],
      [["spiffe://example.org/ns/db/sa/*"], "- name: db\n  outcome: allow"],
    ]);

    it.each([
      { name: "an exact destination (host names are case-insensitive)", input: get("orders", "/x"), outcome: "allow", rule: "p1/read" },
      { name: "the second destination of a policy", input: get("billing", "/x"), outcome: "allow", rule: "p1/read" },
      { name: "a method no rule names", input: policyInput("orders", "PURGE", "/any"), outcome: "allow", rule: "p1/any-method" },
      { name: "a method only a method-less rule covers", input: policyInput("orders", "PUT", "/x"), outcome: "deny", rule: "" },
      { name: "a wildcard rule on an indexed destination", input: policyInput("orders", "DELETE", "/x"), outcome: "deny", rule: "p0/everywhere" },
      { name: "a wildcard rule on an unknown destination", input: policyInput("nowhere", "DELETE", "/x"), outcome: "deny", rule: "p0/everywhere" },
      { name: "a glob destination", input: get("ledger.internal", "/x"), outcome: "step_up", rule: "p2/internal" },
      { name: "outside a glob destination", input: get("ledger.external", "/x"), outcome: "deny", rule: "" },
      { name: "a destination principal glob", input: get("spiffe://example.org/ns/db/sa/pg", "/x"), outcome: "allow", rule: "p3/db" },
      { name: "an unknown destination", input: get("nowhere", "/x"), outcome: "deny", rule: "" },
    ])("$name", ({ input, outcome, rule }) => {
      expect(routed.evaluate(input)).toMatchObject({ outcome, rule });
    });
  });

  describe("privileged actions", () => {
    const guarded = policy([
      [["*"], `
- name: stale
  appliesTo: privileged
  when: "!signals.fresh"
  outcome: deny
`],
      [["svc"], `
- name: read
  methods: [GET]
  outcome: allow
- name: write
  privileged: true
  methods: [POST]
  outcome: allow
- name: write-review
  methods: [POST]
  paths: ["/review"]
  outcome: step_up
  stepUp: { approvers: [ops] }
`],
      [["vault"], "- name: open\n  outcome: allow"],
    ]);
    const stale = { signals: { fresh: false } };

    it("marks results of privileged rules", () => {
      expect(guarded.evaluate(get("svc", "/"))).toMatchObject({ outcome: "allow", rule: "p1/read", privileged: false });
      expect(guarded.evaluate(policyInput("svc", "POST", "/"))).toMatchObject({ outcome: "allow", rule: "p1/write", privileged: true });
    });

    it("applies appliesTo: privileged rules only to privileged actions", () => {
      expect(guarded.evaluate(get("svc", "/", stale))).toMatchObject({ outcome: "allow", rule: "p1/read" });
      expect(guarded.evaluate(policyInput("svc", "POST", "/", stale))).toMatchObject({ outcome: "deny", rule: "p0/stale", privileged: true });
      expect(guarded.evaluate(get("vault", "/", stale))).toMatchObject({ outcome: "allow", rule: "p2/open" });
    });

    it("still learns that an action is privileged when a more restrictive rule matched first", () => {
      // write-review (step_up) outranks write (allow), but write makes the request privileged.
      expect(guarded.evaluate(policyInput("svc", "POST", "/review"))).toMatchObject({ outcome: "step_up", rule: "p1/write-review" });
      expect(guarded.evaluate(policyInput("svc", "POST", "/review", stale))).toMatchObject({ outcome: "deny", rule: "p0/stale" });
    });

    it("takes the policy-wide privileged default", () => {
      const crownJewel = compilePolicy(parsePolicyDocuments(`apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: vault }
spec:
  destinations: [vault]
  privileged: true
  rules:
    - { name: read, outcome: allow }
    - { name: health, privileged: false, paths: ["/healthz"], outcome: allow }
`));
      expect(crownJewel.evaluate(get("vault", "/secret")).privileged).toBe(true);
      expect(crownJewel.evaluate(get("vault", "/healthz"))).toMatchObject({ rule: "vault/read", privileged: true });
    });
  });

  describe("change windows", () => {
    const windowed = policy([[["svc"], `
- name: deploy
  paths: ["/"]
  changeWindow: { days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00" }
  outcome: allow
- name: approve
  paths: ["/approve"]
  changeWindow: { timezone: America/New_York, days: [sat], start: "10:00", end: "12:00" }
  outcome: step_up
  stepUp: { approvers: [ops] }
`]]);

    it("keeps the outcome inside the window and delays outside it", () => {
      expect(windowed.evaluate(get("svc", "/", { now: Date.parse("2025-06-11T12:00:00Z") }))).toMatchObject({ outcome: "allow" });
      const outside = windowed.evaluate(get("svc", "/", { now: Date.parse("2025-06-11T18:00:00Z") }));
      expect(outside).toMatchObject({ outcome: "delay", rule: "p0/deploy", retryAfterSeconds: 15 * 3600 });
      expect(outside.reason).toBe("outside the change window (mon,tue,wed,thu,fri 09:00-17:00 UTC)");
    });

    it("delays a step_up rule outside its window, in its own time zone", () => {
      // Saturday 2025-06-14 10:30 EDT = 14:30 UTC: inside; 09:30 EDT: 30 minutes to go.
      expect(windowed.evaluate(get("svc", "/approve", { now: Date.parse("2025-06-14T14:30:00Z") })).outcome).toBe("step_up");
      expect(windowed.evaluate(get("svc", "/approve", { now: Date.parse("2025-06-14T13:30:00Z") }))).toMatchObject({ outcome: "delay", retryAfterSeconds: 1800 });
    });
  });
});
