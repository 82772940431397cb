// One 1,000-rule policy written twice, for Vigil and for Cerbos, so the two can be compared on
// the same decision (issue #9): 50 destinations (Cerbos resource kinds) × 20 rules. Rule r of
// every destination: callers under spiffe://example.org/ns/ns<r%10>/sa/*, one method on
// /api/v<r>/items, a CEL condition on the caller's risk and posture; every seventh rule denies.
// Vigil reads risk and posture from its signal store; Cerbos has no signal store, so the same
// values travel as principal attributes. Both answer the same request the same way (allow), and
// a request no rule matches the same way (deny / no match) — cerbos.bench.ts checks both.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const DESTINATIONS = 50;
export const RULES_PER_DESTINATION = 20;
export const METHODS = ["GET", "POST", "PUT", "DELETE"] as const;

const method = (r: number): string => METHODS[r % METHODS.length] ?? "GET";
const isDeny = (r: number): boolean => r % 7 === 6;

/** The caller and target of the bench request: destination 25, rule 12 (GET, allow). */
export const BENCH_CALL = {
  caller: "spiffe://example.org/ns/ns2/sa/w17",
  destination: "svc25",
  method: method(12),
  path: "/api/v12/items",
  /** A path no rule of svc25 names: Vigil denies, Cerbos answers "no match" (a denial). */
  unmatchedPath: "/api/v99/items",
} as const;

export function vigilPolicyYaml(): string {
  const docs: string[] = [];
  for (let d = 0; d < DESTINATIONS; d++) {
    const rules: string[] = [];
    for (let r = 0; r < RULES_PER_DESTINATION; r++) {
      rules.push(`    - name: r${r}
      sources: ["spiffe://example.org/ns/ns${r % 10}/sa/*"]
      methods: [${method(r)}]
      paths: ["/api/v${r}/items"]
      when: 'signals.risk in ["none", "low"] && signals.posture != "non_compliant"'
      outcome: ${isDeny(r) ? "deny" : "allow"}`);
    }
    docs.push(`apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: svc${d} }
spec:
  destinations: ["svc${d}"]
  rules:
${rules.join("\n")}`);
  }
  return `${docs.join("\n---\n")}\n`;
}

/** Seed signals for the bench caller: low risk, compliant posture. */
export function vigilSignalsYaml(): string {
  const at = "2026-11-01T00:00:00Z";
  return `- { id: bench-risk, kind: risk, subject: "${BENCH_CALL.caller}", source: seed, observedAt: "${at}", data: { level: low } }
- { id: bench-posture, kind: posture, subject: "${BENCH_CALL.caller}", source: seed, observedAt: "${at}", data: { status: compliant } }
`;
}

/** One Cerbos resource policy per destination, the same 20 rules in Cerbos's terms. */
export function cerbosPolicyYaml(d: number): string {
  const rules: string[] = [];
  for (let r = 0; r < RULES_PER_DESTINATION; r++) {
    rules.push(`    - name: r${r}
      actions: ["${method(r)} /api/v${r}/items"]
      effect: ${isDeny(r) ? "EFFECT_DENY" : "EFFECT_ALLOW"}
      roles: ["*"]
      condition:
        match:
          expr: >-
            request.principal.id.startsWith("spiffe://example.org/ns/ns${r % 10}/sa/")
            && request.principal.attr.risk in ["none", "low"]
            && request.principal.attr.posture != "non_compliant"`);
  }
  return `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  version: default
  resource: svc${d}
  rules:
${rules.join("\n")}
`;
}

/** Writes both policies under dir; returns the folders. */
export function writeThousandRules(dir: string): { vigilPolicyDir: string; vigilSignalsFile: string; cerbosPolicyDir: string } {
  const vigilPolicyDir = join(dir, "vigil-policies");
  const cerbosPolicyDir = join(dir, "cerbos-policies");
  mkdirSync(vigilPolicyDir, { recursive: true });
  mkdirSync(cerbosPolicyDir, { recursive: true });
  writeFileSync(join(vigilPolicyDir, "thousand.yaml"), vigilPolicyYaml());
  const vigilSignalsFile = join(dir, "signals.yaml");
  writeFileSync(vigilSignalsFile, vigilSignalsYaml());
  for (let d = 0; d < DESTINATIONS; d++) writeFileSync(join(cerbosPolicyDir, `svc${d}.yaml`), cerbosPolicyYaml(d));
  return { vigilPolicyDir, vigilSignalsFile, cerbosPolicyDir };
}
