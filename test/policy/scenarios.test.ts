// The acceptance scenarios of shared/scenarios.md, decided by the example policy in
// examples/policies: one row per scenario (plus the variants the table mentions).

import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { compilePolicy, loadPolicyDir } from "../../src/policy/index.js";
import type { CompiledPolicy, PolicyInput, PolicyResult } from "../../src/policy/index.js";
import { WEDNESDAY_10_UTC, mcpToolCall, policyInput } from "./policy-input.js";
import { CRM_SYNC, DEPLOYER, ETL, IR_BOT, RELEASE_PIPELINE, SUPPORT_BOT } from "../support/example-world.js";

const EXAMPLES = fileURLToPath(new URL("../../examples/policies", import.meta.url));

const SATURDAY_10_UTC = Date.UTC(2025, 5, 14, 10, 0, 0);
const WEDNESDAY_1730_UTC = Date.UTC(2025, 5, 11, 17, 30, 0);

const attested = { attested: true, attestation_signer: RELEASE_PIPELINE };
const releaseDigest = { headers: { "x-release-digest": "sha256:9f2c7e1d4b" } };
const apiKey = (fingerprint: string) => ({ credential_fingerprint: fingerprint, credential_scheme: "api_key" });

interface Row {
  scenario: string;
  name: string;
  input: PolicyInput;
  expected: Partial<PolicyResult>;
}

const prodDeploy = (overrides: { now?: number; signals?: PolicyInput["signals"] | Partial<PolicyInput["signals"]> } = {}) =>
  policyInput("deploy-api", "POST", "/v1/deploy", {
    caller: DEPLOYER,
    context: { env: "prod" },
    request: releaseDigest,
    signals: { risk: "low", ...attested, ...overrides.signals },
    ...(overrides.now === undefined ? {} : { now: overrides.now }),
  });

const rows: Row[] = [
  {
    scenario: "1",
    name: "allows the CI deployer's staging deploy",
    input: policyInput("deploy-api", "POST", "/v1/deploy", { caller: DEPLOYER, context: { env: "staging" }, signals: { risk: "low" } }),
    expected: { outcome: "allow", rule: "deploy-api/staging-deploy", privileged: false },
  },
  {
    scenario: "2",
    name: "allows a production deploy inside the change window with an attested release",
    input: prodDeploy(),
    expected: { outcome: "allow", rule: "deploy-api/prod-deploy", privileged: true },
  },
  {
    scenario: "2",
    name: "denies a production deploy inside the window without an attestation",
    input: prodDeploy({ signals: { attested: false, attestation_signer: "" } }),
    expected: { outcome: "deny", rule: "deploy-api/prod-deploy-unattested" },
  },
  {
    scenario: "2",
    name: "denies a production deploy attested by someone other than the release pipeline",
    input: prodDeploy({ signals: { attestation_signer: DEPLOYER } }),
    expected: { outcome: "deny", rule: "deploy-api/prod-deploy-unattested" },
  },
  {
    scenario: "3",
    name: "delays a production deploy on Saturday until Monday 09:00 UTC",
    input: prodDeploy({ now: SATURDAY_10_UTC }),
    expected: { outcome: "delay", rule: "deploy-api/prod-deploy", retryAfterSeconds: 47 * 3600 },
  },
  {
    scenario: "3",
    name: "delays a production deploy after 17:00 until 09:00 the next day",
    input: prodDeploy({ now: WEDNESDAY_1730_UTC }),
    expected: { outcome: "delay", rule: "deploy-api/prod-deploy", retryAfterSeconds: 15.5 * 3600 },
  },
  {
    scenario: "4",
    name: "revokes a leaked API key on its first use",
    input: policyInput("deploy-api", "POST", "/v1/release", {
      caller: DEPLOYER,
      source: apiKey("sha256:k1"),
      signals: { risk: "low", credential: "leaked" },
    }),
    expected: { outcome: "revoke", rule: "guards/compromised-credential", revoke: ["credential"] },
  },
  {
    scenario: "4",
    name: "denies the revoked key on every later request",
    input: policyInput("deploy-api", "POST", "/v1/release", {
      caller: DEPLOYER,
      source: apiKey("sha256:k1"),
      signals: { risk: "low", credential: "revoked", revoked: true },
    }),
    expected: { outcome: "deny", rule: "guards/revoked", revoke: [] },
  },
  {
    scenario: "5",
    name: "denies a key past its rotate-by deadline and starts its revocation",
    input: policyInput("deploy-api", "GET", "/v1/deployments/d-17", {
      caller: "spiffe://example.org/ns/ci/sa/builder",
      source: apiKey("sha256:k2"),
      signals: { credential: "active", credential_overdue: true },
    }),
    expected: { outcome: "deny", rule: "guards/overdue-credential", revoke: ["credential"] },
  },
  {
    scenario: "6",
    name: "allows the support agent to read a ticket",
    input: policyInput("tickets", "GET", "/api/tickets/T-1042", { caller: SUPPORT_BOT, signals: { risk: "low" } }),
    expected: { outcome: "allow", rule: "tickets/support-bot-read" },
  },
  {
    scenario: "7",
    name: "steps up the agent's create_change tool call in production",
    input: policyInput("change-mgmt", "POST", "/mcp", { caller: SUPPORT_BOT, context: { env: "prod" }, request: mcpToolCall("create_change") }),
    expected: {
      outcome: "step_up",
      rule: "change-mgmt/agent-create-change-prod",
      stepUp: { approvers: ["spiffe://example.org/ns/ops/sa/change-approver"], grantTtlSeconds: 900, grantUses: 1 },
      privileged: true,
    },
  },
  {
    scenario: "8",
    name: "denies the agent's tool call when its posture is non-compliant",
    input: policyInput("change-mgmt", "POST", "/mcp", {
      caller: SUPPORT_BOT,
      context: { env: "prod" },
      request: mcpToolCall("create_change"),
      signals: { posture: "non_compliant" },
    }),
    expected: { outcome: "deny", rule: "guards/agent-posture" },
  },
  {
    scenario: "9",
    name: "allows the ETL job to read the reports bucket",
    input: policyInput("storage", "GET", "/reports/2025/q2.csv", { caller: ETL }),
    expected: { outcome: "allow", rule: "storage/etl-read-reports" },
  },
  {
    scenario: "10",
    name: "denies the finance ledger to the ETL job from outside the data network",
    input: policyInput("storage", "GET", "/finance-ledger/2025-06.csv", { caller: ETL, request: { source_ip: "192.0.2.44" } }),
    expected: { outcome: "deny", rule: "storage/finance-ledger-outside-data-network" },
  },
  {
    scenario: "10",
    name: "allows the finance ledger to the ETL job from the data network",
    input: policyInput("storage", "GET", "/finance-ledger/2025-06.csv", { caller: ETL, request: { source_ip: "10.20.7.9" } }),
    expected: { outcome: "allow", rule: "storage/etl-read-finance-ledger" },
  },
  {
    scenario: "11",
    name: "allows the IR bot to quarantine a host",
    input: policyInput("edr", "POST", "/v1/hosts/h-42/quarantine", { caller: IR_BOT, signals: { risk: "low" } }),
    expected: { outcome: "allow", rule: "edr/ir-quarantine" },
  },
  {
    scenario: "12",
    name: "steps up the IR bot's deletion of forensic evidence",
    input: policyInput("edr", "DELETE", "/v1/forensics/F-7", { caller: IR_BOT, signals: { risk: "low" } }),
    expected: {
      outcome: "step_up",
      rule: "edr/ir-delete-forensics",
      stepUp: { approvers: ["spiffe://example.org/ns/secops/sa/forensics-approver"], grantTtlSeconds: 600, grantUses: 1 },
    },
  },
  {
    scenario: "13",
    name: "allows the CRM sync to read payments while its risk is low",
    input: policyInput("payments", "GET", "/v1/payments/p-991", { caller: CRM_SYNC, signals: { risk: "low" } }),
    expected: { outcome: "allow", rule: "payments/crm-sync-read", privileged: true },
  },
  {
    scenario: "13",
    name: "denies the CRM sync on payments once its risk is raised to high",
    input: policyInput("payments", "GET", "/v1/payments/p-991", {
      caller: CRM_SYNC,
      signals: { risk: "high", risk_reason: "new action and rate spike", anomalies: ["new_action", "rate_spike"] },
    }),
    expected: { outcome: "deny", rule: "guards/high-risk-privileged", privileged: true },
  },
  {
    scenario: "17",
    name: "allows the support agent's payment status lookup while its behaviour matches its baseline",
    input: policyInput("payments", "GET", "/v1/payments/p-77/status", { caller: SUPPORT_BOT, signals: { risk: "low" } }),
    expected: { outcome: "allow", rule: "payments/support-bot-payment-status", privileged: true },
  },
  {
    scenario: "17",
    name: "steps up the support agent on payments when the lookup is new to its learned baseline",
    input: policyInput("payments", "GET", "/v1/payments/p-77/status", { caller: SUPPORT_BOT, signals: { risk: "low", anomalies: ["new_action"] } }),
    expected: { outcome: "step_up", rule: "guards/behavior-anomaly-privileged", privileged: true },
  },
  {
    scenario: "17",
    name: "leaves an unprivileged read to its own rule whatever the anomalies",
    input: policyInput("tickets", "GET", "/api/tickets/T-1", { caller: SUPPORT_BOT, signals: { risk: "low", anomalies: ["new_source_network", "rate_spike"] } }),
    expected: { outcome: "allow", rule: "tickets/support-bot-read", privileged: false },
  },
  {
    scenario: "14",
    name: "denies a privileged action while signals are stale",
    input: prodDeploy({ signals: { fresh: false } }),
    expected: { outcome: "deny", rule: "guards/stale-signals-privileged", privileged: true },
  },
  {
    scenario: "14",
    name: "denies payments reads while signals are stale",
    input: policyInput("payments", "GET", "/v1/customers/c-1", { caller: CRM_SYNC, signals: { fresh: false } }),
    expected: { outcome: "deny", rule: "guards/stale-signals-privileged" },
  },
  {
    scenario: "14",
    name: "lets an unprivileged read follow its rule while signals are stale",
    input: policyInput("tickets", "GET", "/api/tickets/T-1042", { caller: SUPPORT_BOT, signals: { fresh: false } }),
    expected: { outcome: "allow", rule: "tickets/support-bot-read", privileged: false },
  },
  {
    scenario: "15",
    name: "denies a caller without a verifiable identity",
    input: policyInput("deploy-api", "POST", "/v1/deploy", { caller: "", context: { env: "staging" } }),
    expected: { outcome: "deny", rule: "", reason: "no rule allows this request", revoke: [], privileged: false },
  },
  {
    scenario: "15",
    name: "denies a forged x-forwarded-client-cert the identity step ignored",
    input: policyInput("payments", "GET", "/v1/payments/p-991", {
      caller: "",
      request: { headers: { "x-forwarded-client-cert": `By=spiffe://example.org/ns/payments/sa/api;URI=${CRM_SYNC}` } },
    }),
    expected: { outcome: "deny", rule: "" },
  },
];

describe("example policy: acceptance scenarios", () => {
  let policy: CompiledPolicy;

  beforeAll(async () => {
    const { documents } = await loadPolicyDir(EXAMPLES);
    policy = compilePolicy(documents);
  });

  it("covers every scenario of scenarios.md", () => {
    const covered = new Set(rows.map((row) => row.scenario));
    for (let n = 1; n <= 15; n++) expect(covered, `scenario ${n}`).toContain(String(n));
  });

  it.each(rows)("scenario $scenario: $name", ({ input, expected }) => {
    const result = policy.evaluate(input);
    expect(result).toMatchObject(expected);
    if (expected.outcome !== "delay") expect(result.retryAfterSeconds).toBeUndefined();
    if (expected.outcome !== "step_up") expect(result.stepUp).toBeUndefined();
    expect(result.reason).not.toBe("");
  });

  it("uses the decision time it is given, not the wall clock", () => {
    expect(policy.evaluate(prodDeploy({ now: WEDNESDAY_10_UTC })).outcome).toBe("allow");
    expect(policy.evaluate(prodDeploy({ now: SATURDAY_10_UTC })).outcome).toBe("delay");
  });
});
