// Policy documents are refused with messages naming file, document, path and line: schema
// problems, unknown fields, bad CEL, duplicate names.

import { describe, expect, it } from "vitest";
import { VigilError } from "../../src/errors/index.js";
import { compilePolicy, formatPolicyError, parsePolicyDocuments } from "../../src/policy/index.js";

const FILE = "policies/deploy.yaml";

const validDoc = `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata:
  name: first
spec:
  destinations: ["tickets"]
  rules:
    - name: read
      methods: [GET]
      outcome: allow
`;

/** A second document with one rule whose body is `rule` (YAML lines at rule indentation). */
function secondDoc(rule: string, name = "deploy-api"): string {
  const body = rule.trim().split("\n").map((line) => `      ${line}`).join("\n");
  return `${validDoc}---
apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata:
  name: ${name}
spec:
  destinations: ["deploy-api"]
  rules:
    - name: prod-deploy
${body}
`;
}

/** The message of the VigilError thrown while loading and compiling `text`. */
function refusal(text: string): string {
  try {
    compilePolicy(parsePolicyDocuments(text, FILE));
  } catch (error) {
    expect(error).toBeInstanceOf(VigilError);
    expect((error as VigilError).code).toBe("invalid_input");
    return formatPolicyError(error);
  }
  throw new Error("expected the policy to be refused");
}

describe("policy validation", () => {
  it("accepts a valid document", () => {
    const policy = compilePolicy(parsePolicyDocuments(secondDoc("outcome: allow"), FILE));
    expect(policy.ruleCount).toBe(2);
    expect(policy.version).toMatch(/^[0-9a-f]{16}$/);
  });

  it.each([
    {
      problem: "an unknown outcome",
      rule: "outcome: allw",
      message: `${FILE} doc 2: spec.rules[0].outcome: expected one of allow|deny|step_up|delay|revoke, got "allw" (line 20)`,
    },
    { problem: "an unknown field", rule: "outcome: allow\noutcom: allow", message: `${FILE} doc 2: spec.rules[0].outcom: unknown field (line 21)` },
    { problem: "a missing outcome", rule: "methods: [GET]", message: `${FILE} doc 2: spec.rules[0].outcome: required (line 19)` },
    { problem: "a wrong type", rule: "outcome: allow\nprivileged: \"yes\"", message: "spec.rules[0].privileged: expected boolean, got \"yes\"" },
    { problem: "step_up without its parameters", rule: "outcome: step_up", message: "spec.rules[0].stepUp: required when outcome is step_up" },
    { problem: "stepUp on an allow rule", rule: "outcome: allow\nstepUp: { approvers: [a] }", message: "spec.rules[0].stepUp: only allowed when outcome is step_up" },
    { problem: "an empty approver list", rule: "outcome: step_up\nstepUp: { approvers: [] }", message: "spec.rules[0].stepUp.approvers: must name at least one approver" },
    { problem: "delay without retryAfterSeconds", rule: "outcome: delay", message: "spec.rules[0].retryAfterSeconds: required when outcome is delay" },
    { problem: "a negative retryAfterSeconds", rule: "outcome: delay\nretryAfterSeconds: -5", message: "spec.rules[0].retryAfterSeconds: must be greater than 0" },
    { problem: "revoke without a target", rule: "outcome: revoke", message: "spec.rules[0].revoke: required when outcome is revoke" },
    { problem: "an unknown revocation target", rule: "outcome: deny\nrevoke: [token]", message: "spec.rules[0].revoke[0]: expected one of credential|identity" },
    {
      problem: "a change window on a deny rule",
      rule: "outcome: deny\nchangeWindow: { days: [mon], start: \"09:00\", end: \"17:00\" }",
      message: "spec.rules[0].changeWindow: only allowed when outcome is allow or step_up",
    },
    {
      problem: "an unknown time zone",
      rule: "outcome: allow\nchangeWindow: { timezone: Mars/Olympus, days: [mon], start: \"09:00\", end: \"17:00\" }",
      message: "spec.rules[0].changeWindow.timezone: unknown time zone \"Mars/Olympus\"",
    },
    {
      problem: "a malformed time of day",
      rule: "outcome: allow\nchangeWindow: { days: [mon], start: \"9am\", end: \"17:00\" }",
      message: "spec.rules[0].changeWindow.start: expected a time of day as HH:MM",
    },
    {
      problem: "an unknown weekday",
      rule: "outcome: allow\nchangeWindow: { days: [monday], start: \"09:00\", end: \"17:00\" }",
      message: "spec.rules[0].changeWindow.days[0]: expected one of mon|tue|wed|thu|fri|sat|sun, got \"monday\"",
    },
    { problem: "\"**\" inside a path", rule: "outcome: allow\npaths: [\"/v1/**/status\"]", message: "spec.rules[0].paths[0]: \"**\" is only allowed as the last segment" },
    { problem: "a relative path", rule: "outcome: allow\npaths: [\"v1/deploy\"]", message: "spec.rules[0].paths[0]: must start with \"/\"" },
    { problem: "a source that is not a SPIFFE ID", rule: "outcome: allow\nsources: [\"deployer\"]", message: "spec.rules[0].sources[0]: expected a SPIFFE ID pattern" },
    { problem: "an invalid CIDR", rule: "outcome: allow\nsourceCidrs: [\"10.20.0.0/33\"]", message: "spec.rules[0].sourceCidrs[0]: expected an IPv4 or IPv6 range" },
    { problem: "a context value that is not a string", rule: "outcome: allow\ncontext: { env: { name: prod } }", message: "spec.rules[0].context.env: expected a string or a list of strings" },
    { problem: "an uppercase rule name", rule: "outcome: allow", message: "spec.rules[0].name: must be lower-case", name: "Deploy_API" },
  ])("refuses $problem", ({ rule, message, name }) => {
    let text = secondDoc(rule);
    if (name !== undefined) text = text.replace("name: prod-deploy", `name: ${name}`);
    expect(refusal(text)).toContain(message);
  });

  it("refuses a wrong apiVersion and kind", () => {
    const text = validDoc.replace("vigil.dev/v1alpha1", "vigil.dev/v1").replace("kind: Policy", "kind: ConfigMap");
    const message = refusal(text);
    expect(message).toContain(`${FILE} doc 1: apiVersion: expected "vigil.dev/v1alpha1", got "vigil.dev/v1" (line 1)`);
    expect(message).toContain(`${FILE} doc 1: kind: expected "Policy", got "ConfigMap" (line 2)`);
  });

  it("refuses unknown fields at every level", () => {
    const text = validDoc
      .replace("kind: Policy", "kind: Policy\nstatus: {}")
      .replace("  name: first", "  name: first\n  namespace: default")
      .replace("  destinations:", "  default: deny\n  destinations:");
    const message = refusal(text);
    expect(message).toContain(`${FILE} doc 1: status: unknown field`);
    expect(message).toContain(`${FILE} doc 1: metadata.namespace: unknown field`);
    expect(message).toContain(`${FILE} doc 1: spec.default: unknown field`);
    expect(message).toMatch(/invalid policy \(3 problems\)/);
  });

  it("refuses duplicate rule names within a policy", () => {
    const text = validDoc.replace("      outcome: allow\n", "      outcome: allow\n    - name: read\n      outcome: deny\n");
    expect(refusal(text)).toContain(`${FILE} doc 1: spec.rules[1].name: duplicate rule name "read" (also spec.rules[0])`);
  });

  it("refuses two policies with the same name", () => {
    const text = secondDoc("outcome: allow", "first");
    expect(refusal(text)).toContain(`${FILE} doc 2: metadata.name: policy name "first" is already used by ${FILE} doc 1`);
  });

  it("reports YAML syntax errors with their line", () => {
    const message = refusal(`${validDoc}---\nspec: [1, 2\n`);
    expect(message).toMatch(new RegExp(`${FILE} doc 2: YAML: .*\\(line \\d+\\)`));
  });

  it("refuses duplicate keys", () => {
    expect(refusal(validDoc.replace("kind: Policy", "kind: Policy\nkind: Policy"))).toContain("Map keys must be unique");
  });

  it("skips empty documents but keeps counting them", () => {
    const message = refusal(`---\n# nothing here\n---\n${validDoc.replace("outcome: allow", "outcome: maybe")}`);
    expect(message).toContain(`${FILE} doc 2: spec.rules[0].outcome`);
  });

  describe("CEL conditions", () => {
    it.each([
      { problem: "a syntax error", when: "signals.risk ==", message: "Unexpected token" },
      { problem: "an unknown signal", when: "signals.rsk == \"low\"", message: "No such key: rsk" },
      { problem: "an unknown variable", when: "caller.id == \"x\"", message: "Unknown variable: caller" },
      { problem: "a type mismatch", when: "signals.risk == 1", message: "no such overload: string == int" },
      { problem: "a non-boolean result", when: "signals.risk", message: "must be a boolean expression, but it gives string" },
      { problem: "an invalid literal CIDR", when: "inCidr(request.source_ip, \"10.0.0.0/40\")", message: "inCidr: invalid CIDR \"10.0.0.0/40\"" },
      { problem: "an invalid CIDR in a list", when: "inCidr(request.source_ip, [\"10.0.0.0/8\", \"nope\"])", message: "inCidr: invalid CIDR \"nope\"" },
    ])("refuses $problem, naming file, document and path", ({ when, message }) => {
      const text = secondDoc(`outcome: allow\nwhen: '${when}'`);
      const refused = refusal(text);
      expect(refused).toContain(`${FILE} doc 2: spec.rules[0].when: `);
      expect(refused).toContain("(line 21)");
      expect(refused).toContain(message);
    });

    it("accepts the documented CEL surface", () => {
      const conditions = [
        "signals.risk in [\"none\", \"low\"] && signals.posture == \"compliant\"",
        "signals.fresh && !signals.revoked && !signals.credential_overdue",
        "signals.risk_age_seconds < 300 && size(signals.anomalies) == 0",
        "\"rate_spike\" in signals.anomalies || signals.posture_attributes[\"image\"] == \"x\"",
        "request.method == \"GET\" && request.path_only.startsWith(\"/api/\") && \"x-release-digest\" in request.headers",
        "source.trust_domain == \"example.org\" && source.credential_scheme != \"api_key\"",
        "has(context.env) && context.env == \"prod\"",
        "now.getHours(\"Europe/Berlin\") >= 9 && now.getDayOfWeek(\"UTC\") != 0",
        "now < timestamp(\"2030-01-01T00:00:00Z\")",
        "inCidr(request.source_ip, \"10.0.0.0/8\") || inCidr(request.source_ip, [\"fd00::/8\", \"192.168.0.0/16\"])",
        "signals.credential_owner != source.spiffe_id && signals.attestation_signer.endsWith(\"/release-pipeline\")",
      ];
      const rules = conditions.map((when, i) => `- name: r${i}\n  outcome: allow\n  when: '${when}'`).join("\n");
      const text = `${validDoc.replace("    - name: read\n      methods: [GET]\n      outcome: allow\n", "")}${rules.split("\n").map((line) => `    ${line}`).join("\n")}\n`;
      expect(compilePolicy(parsePolicyDocuments(text, FILE)).ruleCount).toBe(conditions.length);
    });
  });

  it("lists every problem of every document at once", () => {
    const text = `${validDoc.replace("outcome: allow", "outcome: nope")}---\n${validDoc.replace("name: first", "name: second").replace("destinations: [\"tickets\"]", "destinations: []")}`;
    const message = refusal(text);
    expect(message).toContain(`${FILE} doc 1: spec.rules[0].outcome`);
    expect(message).toContain(`${FILE} doc 2: spec.destinations: must name at least one destination`);
  });
});
