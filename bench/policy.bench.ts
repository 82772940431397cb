// Policy evaluation alone (no identity, signals or transport): 1,000 rules over 50 destinations
// plus the example guards; also how long parsing and compiling that policy takes.
// Run: npx tsx bench/policy.bench.ts

import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { compilePolicy, parsePolicyDocuments } from "../src/policy/index.js";
import type { CompiledPolicy, PolicyInput } from "../src/policy/index.js";
import { policyInput } from "../test/policy/policy-input.js";
import { round, type BenchResult } from "./lib.js";

const GUARDS = fileURLToPath(new URL("../examples/policies/guards.yaml", import.meta.url));
const DESTINATIONS = 50;
const RULES_PER_DESTINATION = 20;
const METHODS = ["GET", "POST", "PUT", "DELETE"];

function largePolicyYaml(): string {
  const docs: string[] = [];
  for (let d = 0; d < DESTINATIONS; d++) {
    const rules: string[] = [];
    for (let r = 0; r < RULES_PER_DESTINATION; r++) {
      const method = METHODS[r % METHODS.length] ?? "GET";
      const lines = [
        `- name: rule-${r}`,
        `  sources: ["spiffe://example.org/ns/team-${r % 5}/sa/*"]`,
        `  methods: [${method}]`,
        `  paths: ["/api/v${r % 3}/items/*", "/api/v${r % 3}/items/*/details/**"]`,
      ];
      if (r % 2 === 0) lines.push("  when: signals.risk in [\"none\", \"low\"] && signals.posture == \"compliant\"");
      if (r % 7 === 0) lines.push("  context: { env: prod }");
      if (r % 5 === 4) lines.push("  privileged: true");
      if (r % 9 === 8) lines.push("  outcome: step_up", "  stepUp: { approvers: [ops] }");
      else lines.push("  outcome: allow");
      rules.push(lines.map((line) => `    ${line}`).join("\n"));
    }
    docs.push(`apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata:
  name: svc-${d}
spec:
  destinations: ["svc-${d}.example.internal"]
  rules:
${rules.join("\n")}
`);
  }
  return docs.join("---\n");
}

function measure(policy: CompiledPolicy, input: PolicyInput): { p50: number; p99: number; mean: number } {
  for (let i = 0; i < 20_000; i++) policy.evaluate(input);
  const samples: number[] = [];
  const batch = 50;
  for (let s = 0; s < 2_000; s++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) policy.evaluate(input);
    samples.push(Number(process.hrtime.bigint() - start) / batch);
  }
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? Number.NaN;
  return { p50: at(0.5), p99: at(0.99), mean: samples.reduce((a, b) => a + b, 0) / samples.length };
}

export async function runPolicyBench(): Promise<BenchResult> {
  {
    const guards = await readFile(GUARDS, "utf8");
    const started = performance.now();
    const documents = [...parsePolicyDocuments(largePolicyYaml(), "large.yaml"), ...parsePolicyDocuments(guards, "guards.yaml")];
    const parsed = performance.now();
    const policy = compilePolicy(documents);
    const parseMs = parsed - started;
    const compileMs = performance.now() - parsed;
    if (policy.ruleCount !== DESTINATIONS * RULES_PER_DESTINATION + 8) throw new Error(`compiled ${policy.ruleCount} rules`);

    const caller = "spiffe://example.org/ns/team-0/sa/api";
    const cases: { name: string; input: PolicyInput; outcome: string }[] = [
      { name: "allow (guards + CEL rule)", input: policyInput("svc-17.example.internal", "GET", "/api/v0/items/42", { caller, context: { env: "prod" } }), outcome: "allow" },
      { name: "deny, nothing matched", input: policyInput("svc-17.example.internal", "PUT", "/api/v9/other", { caller }), outcome: "deny" },
      { name: "deny by a guard", input: policyInput("svc-17.example.internal", "GET", "/api/v0/items/42", { caller, signals: { revoked: true } }), outcome: "deny" },
      { name: "unknown destination", input: policyInput("elsewhere", "GET", "/", { caller }), outcome: "deny" },
    ];
    const figures: Record<string, number> = { rules: policy.ruleCount, parse_validate_ms: Math.round(parseMs), compile_ms: Math.round(compileMs) };
    for (const { name, input, outcome } of cases) {
      const got = policy.evaluate(input).outcome;
      if (got !== outcome) throw new Error(`${name}: expected ${outcome}, got ${got}`);
      const { p50, p99 } = measure(policy, input);
      figures[`${name} p50_us`] = round(p50 / 1000);
      figures[`${name} p99_us`] = round(p99 / 1000);
    }
    return { name: "policy evaluation only (1,008 rules)", command: "npx tsx bench/policy.bench.ts", figures };
  }
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  process.stdout.write(`${JSON.stringify(await runPolicyBench(), null, 2)}\n`);
}
