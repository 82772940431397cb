// The pipeline's phases one by one, each against a table: identify (who is calling, as policies
// see it), describe the request (requestView, resourceOf), and how `judge` and `record` divide a
// Check (judging counts and logs nothing; recording does, once).

import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApprovalBook } from "../../src/approvals/index.js";
import { parseConfig } from "../../src/config/index.js";
import { identitySchema } from "../../src/config/schema.js";
import { createPipeline, Effects, identify, requestView, resourceOf, type AccessRequest } from "../../src/decision/index.js";
import { createCallerResolver, fingerprintSecret } from "../../src/identity/index.js";
import { compilePolicy, parsePolicyDocuments } from "../../src/policy/index.js";
import { createEmbeddedStore, type EmbeddedSignalStore } from "../../src/signals/index.js";
import type { DecisionLine } from "../../src/telemetry/decision-log.js";
import { createMetrics } from "../../src/telemetry/index.js";

const ALICE = "spiffe://example.org/ns/ci/sa/alice";
const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);

function request(overrides: Partial<AccessRequest> = {}, headers: Record<string, string> = {}): AccessRequest {
  return {
    receivedAt: NOW,
    source: { principal: ALICE, certificate: "", address: "10.0.0.7", port: 40000 },
    destination: { principal: "spiffe://example.org/ns/prod/sa/api", certificate: "", address: "10.0.0.8", port: 8443 },
    requestId: "r", method: "GET", path: "/v1/things?x=1", host: "api.example.org:8443", scheme: "https", protocol: "HTTP/2",
    headers: { ":authority": "api.example.org:8443", ...headers }, body: "", contextExtensions: {}, sni: "", malformed: [],
    ...overrides,
  };
}

describe("identify: the caller and the policy's view of it, built once", () => {
  const resolve = createCallerResolver(identitySchema.parse({ trustDomains: ["example.org"] }));
  const key = fingerprintSecret("key-0001");
  const key2 = fingerprintSecret("key-0002");
  it.each([
    {
      name: "a SPIFFE principal, no credential",
      req: request(),
      source: { spiffe_id: ALICE, trust_domain: "example.org", path: "/ns/ci/sa/alice", identity_source: "mtls_principal", credential_fingerprint: "", credential_scheme: "", credential_fingerprints: [], problems: [] },
      refused: false,
    },
    {
      name: "a bearer token, reduced to its fingerprint",
      req: request({}, { authorization: "Bearer key-0001" }),
      source: { spiffe_id: ALICE, trust_domain: "example.org", path: "/ns/ci/sa/alice", identity_source: "mtls_principal", credential_fingerprint: key, credential_scheme: "bearer", credential_fingerprints: [key], problems: [] },
      refused: false,
    },
    {
      name: "two credentials: the first named, both listed",
      req: request({}, { "authorization": "Bearer key-0001", "x-api-key": "key-0002" }),
      source: { spiffe_id: ALICE, trust_domain: "example.org", path: "/ns/ci/sa/alice", identity_source: "mtls_principal", credential_fingerprint: key, credential_scheme: "bearer", credential_fingerprints: [key, key2], problems: [] },
      refused: false,
    },
    {
      name: "a principal that is no SPIFFE ID: refused, the problem code shown",
      req: request({ source: { principal: "alice", certificate: "", address: "", port: 0 } }),
      source: { spiffe_id: "", trust_domain: "", path: "", identity_source: "none", credential_fingerprint: "", credential_scheme: "", credential_fingerprints: [], problems: ["invalid_principal"] },
      refused: true,
    },
    {
      name: "a foreign trust domain",
      req: request({ source: { principal: "spiffe://evil.example/ns/x/sa/y", certificate: "", address: "", port: 0 } }),
      source: { spiffe_id: "", trust_domain: "", path: "", identity_source: "none", credential_fingerprint: "", credential_scheme: "", credential_fingerprints: [], problems: ["foreign_trust_domain"] },
      refused: true,
    },
  ])("$name", ({ req, source, refused }) => {
    const identified = identify(resolve, req);
    expect(identified.source).toEqual(source);
    expect(identified.caller.refused).toBe(refused);
    // The view is the caller, not a second opinion of it.
    expect(identified.source.spiffe_id).toBe(identified.caller.spiffeId);
    expect(identified.source.credential_fingerprints).toEqual(identified.caller.credentials.map((c) => c.fingerprint));
  });
});

describe("describe the request: what policies see of it, and what an approval scope names", () => {
  it.each([
    { name: "HTTP: host without port, path without query", req: request(), host: "api.example.org", pathOnly: "/v1/things", grpc: "", mcp: ["", ""], resource: "GET /v1/things" },
    { name: "the :authority when host is empty", req: request({ host: "" }), host: "api.example.org", pathOnly: "/v1/things", grpc: "", mcp: ["", ""], resource: "GET /v1/things" },
    { name: "an IPv6 host keeps its brackets", req: request({ host: "[::1]:8443" }), host: "[::1]", pathOnly: "/v1/things", grpc: "", mcp: ["", ""], resource: "GET /v1/things" },
    {
      name: "gRPC: service and method from the path",
      req: request({ method: "POST", path: "/pkg.Deployer/Rollout" }, { "content-type": "application/grpc+proto" }),
      host: "api.example.org", pathOnly: "/pkg.Deployer/Rollout", grpc: "pkg.Deployer/Rollout", mcp: ["", ""], resource: "grpc:pkg.Deployer/Rollout",
    },
    {
      name: "MCP tools/call behind whitespace",
      req: request({ method: "POST", path: "/mcp", body: '\n {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all"}}' }),
      host: "api.example.org", pathOnly: "/mcp", grpc: "", mcp: ["tools/call", "delete_all"], resource: "mcp:delete_all",
    },
    {
      name: "JSON-RPC that is not a tool call",
      req: request({ method: "POST", path: "/mcp", body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' }),
      host: "api.example.org", pathOnly: "/mcp", grpc: "", mcp: ["tools/list", ""], resource: "POST /mcp",
    },
    { name: "a body that is not JSON", req: request({ method: "POST", body: "{not json" }), host: "api.example.org", pathOnly: "/v1/things", grpc: "", mcp: ["", ""], resource: "POST /v1/things" },
  ])("$name", ({ req, host, pathOnly, grpc, mcp, resource }) => {
    const view = requestView(req, "spiffe://example.org/ns/prod/sa/api");
    expect({
      host: view.host, pathOnly: view.path_only, grpc: view.grpc_service === "" ? "" : `${view.grpc_service}/${view.grpc_method}`,
      mcp: [view.mcp_method, view.mcp_tool], resource: resourceOf(view),
    }).toEqual({ host, pathOnly, grpc, mcp, resource });
    expect(view.destination).toBe("spiffe://example.org/ns/prod/sa/api");
    expect(view.path).toBe(req.path);
    expect(view.headers).toBe(req.headers);
  });
});

/** A policy "p" for every destination with these rules (YAML flow mappings, one per line). */
const policyOf = (...rules: string[]): string => `
apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: p }
spec:
  destinations: ["*"]
  rules:
${rules.map((rule) => `    - ${rule}`).join("\n")}
`;

const POLICY = policyOf(
  "{ name: reads, methods: [GET], outcome: allow }",
  "{ name: risky, methods: [DELETE], outcome: revoke, revoke: [identity] }",
);

const PATH_POLICY = policyOf(
  "{ name: reads, methods: [GET], paths: [\"/v1/**\"], outcome: allow }",
  "{ name: no-admin, paths: [\"/admin/**\"], outcome: deny }",
  "{ name: burn, paths: [\"/burn/**\"], outcome: revoke, revoke: [identity] }",
);

// One store for the pipelines below (each test's pipeline writes nothing to it that another reads).
let store: EmbeddedSignalStore;
beforeAll(async () => {
  store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: pino({ level: "silent" }), now: () => NOW });
  await store.ready();
});
afterAll(async () => {
  await store.close();
});

describe("judge runs the phases and records nothing; record counts and logs it once", () => {
  function world(policy = POLICY) {
    const metrics = createMetrics({ defaultMetrics: false });
    const logger = pino({ level: "silent" });
    const effects = new Effects({ store, logger, metrics });
    const lines: DecisionLine[] = [];
    const decisionLog = Object.assign((line: DecisionLine) => { lines.push(line); }, { close: () => Promise.resolve() });
    let n = 0;
    const pipeline = createPipeline({
      policy: () => compilePolicy(parsePolicyDocuments(policy, "p.yaml")),
      resolveCaller: createCallerResolver(identitySchema.parse({ trustDomains: ["example.org"] })),
      store, approvals: new ApprovalBook({ store, now: () => NOW }), effects, metrics, decisionLog,
      now: () => NOW, newId: () => `d-${String(++n)}`,
    });
    const counted = async (outcome: string): Promise<number> => {
      const text = await metrics.registry.metrics();
      const match = new RegExp(`^vigil_decisions_total\\{outcome="${outcome}"\\} (\\d+)$`, "m").exec(text);
      return Number(match?.[1] ?? "0");
    };
    return { pipeline, lines, counted, effects };
  }

  it.each([
    { name: "an allow", req: request(), outcome: "allow", rule: "p/reads", path: "/v1/things", problems: [] },
    { name: "a malformed request: no phase past decoding", req: request({ malformed: ["header too large"] }), outcome: "deny", rule: "", path: "", problems: [] },
    { name: "a refused identity", req: request({ source: { principal: "alice", certificate: "", address: "", port: 0 } }), outcome: "deny", rule: "vigil/identity", path: "/v1/things", problems: ["invalid_principal"] },
  ])("$name", async ({ req, outcome, rule, path, problems }) => {
    const { pipeline, lines, counted } = world();
    const judged = pipeline.judge(req);
    expect({ outcome: judged.decision.outcome, rule: judged.decision.rule }).toEqual({ outcome, rule });
    expect(lines).toEqual([]);
    expect(await counted(outcome)).toBe(0);
    pipeline.record(judged);
    expect(await counted(outcome)).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ decision_id: judged.decision.id, outcome, rule, path, identity_problems: problems });
    expect(req.malformed.length > 0 ? judged.view : judged.view?.path_only).toBe(req.malformed.length > 0 ? undefined : path);
  });

  it("keeps what `vigil check` explains: the signals as the policy saw them, before this decision's revocation", () => {
    const { pipeline, effects } = world();
    const judged = pipeline.judge(request({ method: "DELETE" }));
    expect(judged.decision.outcome).toBe("revoke");
    expect(judged.signals?.revoked).toBe(false);
    expect(effects.pendingRevoked(ALICE)).toBe(true);
    expect(judged.policy?.ruleCount).toBe(2);
    expect(judged.destination).toEqual({ name: "spiffe://example.org/ns/prod/sa/api" });
  });

  // ";" is refused by the pipeline (pathProblem) but is normal to the policy (isNormalPath): a
  // rule's own deny or revoke on such a path keeps its name and effects, as before the check moved.
  it.each([
    { name: "a normal path with a hostile query", path: "/v1/things?next=/../admin", outcome: "allow", rule: "p/reads", reason: "" },
    { name: "a semicolon under an allow: refused", path: "/v1/a;b", outcome: "deny", rule: "", reason: "path has a semicolon (path parameters)" },
    { name: "a semicolon under a deny rule: the rule's deny", path: "/admin/x;y?q=1", outcome: "deny", rule: "p/no-admin", reason: "" },
    { name: "a semicolon under a revoke rule: still a revoke", path: "/burn/a;b", outcome: "revoke", rule: "p/burn", reason: "" },
    { name: "a dot segment matches no path rule", path: "/admin/../v1/x", outcome: "deny", rule: "", reason: "path has a dot segment (. or ..)" },
    { name: "an encoded slash matches no path rule", path: "/admin%2F..%2Fv1", outcome: "deny", rule: "", reason: "path has an encoded slash or backslash (%2F, %5C)" },
  ])("the path is checked once, and path rules still see what the policy's own check lets through: $name", ({ path, outcome, rule, reason }) => {
    const { decision } = world(PATH_POLICY).pipeline.judge(request({ path }));
    expect({ outcome: decision.outcome, rule: decision.rule }).toEqual({ outcome, rule });
    if (reason !== "") expect(decision.reason).toBe(reason);
  });
});
