import { Environment } from "@marcbachmann/cel-js";
import { describe, expect, it } from "vitest";
import { headerReferences, readsEntities } from "../../src/policy/cel-refs.js";
import { compilePolicy, parsePolicyDocuments } from "../../src/policy/index.js";

const env = new Environment()
  .registerVariable("request", "dyn").registerVariable("signals", "dyn").registerVariable("context", "dyn").registerVariable("source", "dyn")
  .registerVariable("subject", "dyn").registerVariable("action", "dyn").registerVariable("resource", "dyn");

const refs = (expression: string): { all: boolean; names: string[] } => {
  const found = headerReferences(env.parse(expression).ast);
  return { all: found.all, names: [...found.names].sort() };
};

describe("headerReferences", () => {
  // [expression, every header?, the names when not every one]
  const table: [string, boolean, string[]][] = [
    ['request.method == "GET"', false, []],
    ['signals.risk == "low" && context.env == "prod"', false, []],
    ['request.headers["x-tenant"] == "a"', false, ["x-tenant"]],
    ['request.headers.tenant == "a"', false, ["tenant"]],
    ['"x-debug" in request.headers', false, ["x-debug"]],
    ["has(request.headers.xb)", false, ["xb"]],
    ['request["headers"]["x-e"] == "1"', false, ["x-e"]],
    ['request.headers["a"] == "1" || request.headers["b"].startsWith("x") || "c" in request.headers', false, ["a", "b", "c"]],
    ['request.headers["x-a"].matches("^[a-z]+$")', false, ["x-a"]],
    ['request.path_only.startsWith("/v1") && request["method"] == "GET"', false, []],
    // Anything not pinned to constant names reads every header.
    ['request.headers[request.method] == "1"', true, []],
    ["request.method in request.headers", true, []],
    ['request.headers.exists(k, k == "a")', true, []],
    ["size(request.headers) > 3", true, []],
    ["has(request.headers)", true, []],
    ['[request.headers].exists(h, h["x"] == "1")', true, []],
    ['request[request.method] == "1"', true, []],
    ['request["head" + "ers"]["x"] == "1"', true, []],
    ['request.exists(k, k == "headers")', true, []],
    ['[request].exists(r, r.headers["x"] == "1")', true, []],
    ["request == {}", true, []],
  ];
  for (const [expression, all, names] of table) {
    it(expression, () => {
      expect(refs(expression)).toEqual({ all, names });
    });
  }
});

describe("CompiledPolicy.headers", () => {
  const policy = (when: string[], shadow = false): string => `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: p }
spec:
  destinations: ["*"]
  rules:
${when.map((w, i) => `    - name: r${i}
      when: '${w}'
      outcome: allow${shadow && i === when.length - 1 ? "\n      shadow: true" : ""}`).join("\n")}
`;
  const headersOf = (yaml: string): { all: boolean; names: string[] } => {
    const compiled = compilePolicy(parsePolicyDocuments(yaml, "p.yaml"));
    return { all: compiled.headers?.all ?? true, names: [...compiled.headers?.names ?? []].sort() };
  };

  it("is the union over every rule's condition, shadow rules included", () => {
    expect(headersOf(policy(['request.headers["x-a"] == "1"', '"x-b" in request.headers', 'request.headers["x-c"] == "1"'], true)))
      .toEqual({ all: false, names: ["x-a", "x-b", "x-c"] });
  });

  it("is every header as soon as one condition reads the map whole", () => {
    expect(headersOf(policy(['request.headers["x-a"] == "1"', "size(request.headers) > 1"]))).toEqual({ all: true, names: [] });
  });

  it("is no header for conditions that read none", () => {
    expect(headersOf(policy(['request.method == "GET"']))).toEqual({ all: false, names: [] });
  });
});

describe("readsEntities", () => {
  // A condition that can read subject, action or resource in any way makes the pipeline build the
  // entity views; one that cannot lets it pass placeholders.
  it.each([
    ['request.method == "GET"', false],
    ['signals.risk == "low" && context.env == "prod" && source.spiffe_id.startsWith("spiffe://")', false],
    ['"subject" in request.headers && request.headers["resource"] == "action"', false],
    ['subject.type == "workload"', true],
    ['"admin" in subject.roles', true],
    ['action.name == "tools/call"', true],
    ['resource.id.startsWith("/v1")', true],
    ["has(resource.attributes.owner)", true],
    ["[1].exists(x, subject.known)", true],
    ["size(resource) > 0", true],
    ['request.method == "GET" || action.properties.tool == "x"', true],
    ["[subject][0].known", true],
  ])("%s → %s", (expression, reads) => {
    expect(readsEntities(env.parse(expression).ast)).toBe(reads);
  });

  const yaml = (when: string, shadow: boolean): string => `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: p }
spec:
  destinations: ["*"]
  rules:
    - { name: plain, when: 'request.method == "GET"', outcome: allow }
    - name: other
      when: '${when}'
      outcome: deny${shadow ? "\n      shadow: true" : ""}
`;
  it("is any condition's, shadow rules included, on the compiled policy", () => {
    expect(compilePolicy(parsePolicyDocuments(yaml('request.path_only == "/x"', false), "p.yaml")).readsEntities).toBe(false);
    expect(compilePolicy(parsePolicyDocuments(yaml('"ops" in subject.roles', false), "p.yaml")).readsEntities).toBe(true);
    expect(compilePolicy(parsePolicyDocuments(yaml('"ops" in subject.roles', true), "p.yaml")).readsEntities).toBe(true);
  });
});
