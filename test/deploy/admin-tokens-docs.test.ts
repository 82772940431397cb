// The admin tokens a reader creates by copying the shipped commands (secret.yaml's comment, the
// README's Kubernetes step) parse, and give the demo policies' approvers a token with
// approvals:decide under the very NAME the rule lists: a nameless or differently named token
// would have every approval refused.

import { describe, expect, it } from "vitest";
import { parseAdminTokens } from "../../src/config/index.js";
import { readRepoFile, readYaml } from "./repo.js";

/** The `printf 'FORMAT' "$A" "$B"` that builds admin-tokens in `text`, with each %s a fresh token. */
function tokensFromPrintf(text: string): string {
  const match = /admin-tokens="\$\(printf '([^']+)'/.exec(text);
  if (match?.[1] === undefined) throw new Error("no printf building admin-tokens");
  let n = 0;
  return match[1].replaceAll("\\n", "\n").replaceAll("%s", () => `${String(++n).padStart(2, "0")}${"ab".repeat(16)}`);
}

interface PolicyDoc { spec: { rules: { stepUp?: { approvers: string[] } }[] } }

describe.each(["deploy/kubernetes/policies/demo.yaml", "deploy/istio/policies/demo.yaml"])("approvers of %s", (policyFile) => {
  const approvers = (readYaml(policyFile) as PolicyDoc).spec.rules.flatMap((r) => r.stepUp?.approvers ?? []);

  it.each(["deploy/kubernetes/secret.yaml", "README.md"])("hold an approvals:decide token named for them when %s's command is followed", (source) => {
    expect(approvers.length).toBeGreaterThan(0);
    const tokens = parseAdminTokens(tokensFromPrintf(readRepoFile(source)), source);
    for (const approver of approvers) {
      expect(tokens.find((t) => t.name === approver)?.scopes, `${source}: ${approver}`).toContain("approvals:decide");
    }
    // The operator writes signals; neither token is nameless.
    expect(tokens.some((t) => t.scopes.includes("signals:write"))).toBe(true);
  });
});
