// Credential findings (scenario 16): what NHI posture scanners report about a key (over-privileged,
// unused, shared) is data of its credential signal that any source may set; the signals step
// gathers them over every presented key, CEL sees them, and a finding never makes a key pass.

import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/index.js";
import { readSignals } from "../../src/decision/index.js";
import { fingerprintSecret, type Caller } from "../../src/identity/index.js";
import { compilePolicy, parsePolicyDocuments } from "../../src/policy/index.js";
import { createEmbeddedStore, parseSignal, type EmbeddedSignalStore } from "../../src/signals/index.js";
import { policyInput } from "../policy/policy-input.js";

const NOW = Date.UTC(2026, 5, 10, 10, 0, 0);
const DEPLOYER = "spiffe://example.org/ns/ci/sa/deployer";
const fp = fingerprintSecret;
const FLAGGED = "key-flagged-0001";
const SHARED = "key-shared-0001";
const CLEAN = "key-clean-0001";

let store: EmbeddedSignalStore;

beforeAll(async () => {
  store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: pino({ level: "silent" }), now: () => NOW });
  await store.ready();
  const put = (secret: string, findings?: string[]) => store.put({
    id: `c-${secret}`, kind: "credential", subject: fp(secret), source: "nhi-scanner", observedAt: NOW - 60_000,
    data: { state: "active", owner: DEPLOYER, ...(findings === undefined ? {} : { findings }) },
  });
  await put(FLAGGED, ["over_privileged", "unused_90d"]);
  await put(SHARED, ["shared", "over_privileged"]);
  await put(CLEAN);
});

afterAll(async () => { await store.close(); });

function caller(secrets: string[]): Caller {
  return {
    spiffeId: DEPLOYER, trustDomain: "example.org", path: "/ns/ci/sa/deployer", source: "mtls_principal",
    credentials: secrets.map((s) => ({ header: "x-api-key", scheme: "api_key", fingerprint: fp(s) })), problems: [], refused: false, headersToRemove: [],
  };
}

describe("credential findings", () => {
  it.each([
    { secrets: [], findings: [] },
    { secrets: [CLEAN], findings: [] },
    { secrets: ["key-nobody-knows"], findings: [] },
    { secrets: [FLAGGED], findings: ["over_privileged", "unused_90d"] },
    { secrets: [CLEAN, FLAGGED], findings: ["over_privileged", "unused_90d"] },
    { secrets: [FLAGGED, SHARED], findings: ["over_privileged", "unused_90d", "shared"] },
  ])("presenting $secrets shows findings $findings", ({ secrets, findings }) => {
    const view = readSignals(store, { pendingRevoked: () => false }, caller(secrets), {}, NOW).view;
    expect(view.credential_findings).toEqual(findings);
    // A finding does not change the key's state: it is only more for a rule to refuse on.
    if (secrets.length > 0 && secrets[0] !== "key-nobody-knows") expect(view.credential).toBe("active");
  });

  it("lets a rule refuse release access with a flagged key, and only then", () => {
    const policy = compilePolicy(parsePolicyDocuments(`
apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: deploy-api }
spec:
  destinations: [deploy-api]
  rules:
    - { name: release, methods: [POST], paths: [/v1/release], outcome: allow }
    - { name: flagged, methods: [POST], paths: [/v1/release], when: '"over_privileged" in signals.credential_findings', outcome: deny }
`));
    const decide = (findings: string[]) => policy.evaluate(policyInput("deploy-api", "POST", "/v1/release", { caller: DEPLOYER, signals: { credential_findings: findings } })).outcome;
    expect(decide([])).toBe("allow");
    expect(decide(["unused_90d"])).toBe("allow");
    expect(decide(["over_privileged"])).toBe("deny");
  });

  it.each([
    [["Over-Privileged"], "findings"],
    [["x".repeat(65)], "findings"],
    [Array.from({ length: 17 }, (_, i) => `f${i}`), "findings"],
    [[""], "findings"],
  ])("refuses a credential signal with findings %j", (findings, field) => {
    expect(() => parseSignal({
      id: "bad", kind: "credential", subject: fp(CLEAN), source: "scanner", observedAt: NOW, data: { state: "active", findings },
    })).toThrow(field);
  });
});
