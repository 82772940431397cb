// Step-up approvals against a real (memory-only) signal store: one pending request per scope, who
// may approve, the grant an approval writes, expiry and the bound on pending requests.

import { pino } from "pino";
import { beforeEach, describe, expect, it } from "vitest";
import { ApprovalBook, approvalScope, grantNameFor, type OpenApproval } from "../../src/approvals/index.js";
import { parseConfig } from "../../src/config/index.js";
import { VigilError } from "../../src/errors/index.js";
import { createEmbeddedStore, type SignalStore } from "../../src/signals/index.js";

const AGENT = "spiffe://example.org/ns/agents/sa/support-bot";
const OWNER = "spiffe://example.org/ns/agents/sa/owner";
const APPROVER = "spiffe://example.org/ns/ops/sa/change-approver";

const request = (resource = "mcp:create_change"): OpenApproval => ({
  caller: AGENT, credentialOwner: OWNER, rule: "change-mgmt/agent-create-change-prod", destination: "change-mgmt",
  resource, approvers: [APPROVER], grantTtlSeconds: 900, grantUses: 1,
});

async function refusal(promise: Promise<unknown>): Promise<VigilError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof VigilError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

describe("approval book", () => {
  let store: SignalStore;
  let clock: number;
  let book: ApprovalBook;

  beforeEach(async () => {
    clock = Date.UTC(2026, 10, 25, 12);
    store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: pino({ level: "silent" }), now: () => clock });
    await store.ready();
    book = new ApprovalBook({ store, now: () => clock, pendingTtlMs: 60_000, maxPending: 2 });
  });

  it("keeps one pending request per caller, rule, destination and resource", () => {
    const first = book.open(request());
    expect(book.open(request())?.id).toBe(first?.id);
    expect(book.open(request("mcp:delete_change"))?.id).not.toBe(first?.id);
    expect(book.pendingCount).toBe(2);
  });

  it("refuses the caller, its credential's owner and anyone the rule does not name", async () => {
    const id = book.open(request())?.id ?? "";
    for (const who of [AGENT, OWNER, "spiffe://example.org/ns/ops/sa/someone-else"]) {
      expect((await refusal(book.approve(id, who))).code).toBe("conflict");
    }
    expect(book.get(id)?.status).toBe("pending");
  });

  it("writes a durable grant for exactly the approved scope, usable the number of times granted", async () => {
    const approval = book.open(request());
    const { grant } = await book.approve(approval?.id ?? "", APPROVER);
    const name = grantNameFor(approvalScope(AGENT, "change-mgmt/agent-create-change-prod", "change-mgmt", "mcp:create_change"));
    expect(grant).toMatchObject({ kind: "grant", subject: AGENT, name, expiresAt: clock + 900_000, data: { usesLeft: 1, approver: APPROVER } });
    expect(store.useGrant(AGENT, name, clock)).toBe(true);
    expect(store.useGrant(AGENT, name, clock)).toBe(false);
    expect((await refusal(book.approve(approval?.id ?? "", APPROVER))).code).toBe("conflict");
    expect(book.pendingCount).toBe(0);
  });

  it("lets a denied or expired request be asked again under a new id", async () => {
    const first = book.open(request());
    book.deny(first?.id ?? "", APPROVER);
    const second = book.open(request());
    expect(second?.id).not.toBe(first?.id);
    clock += 60_001;
    expect(book.get(second?.id ?? "")?.status).toBe("expired");
    expect((await refusal(book.approve(second?.id ?? "", APPROVER))).code).toBe("conflict");
    expect(book.open(request())?.id).not.toBe(second?.id);
  });

  it("bounds pending requests so a flood of step-ups cannot exhaust memory", () => {
    expect(book.open(request("a"))).toBeDefined();
    expect(book.open(request("b"))).toBeDefined();
    expect(book.open(request("c"))).toBeUndefined();
    clock += 60_001;
    expect(book.open(request("c"))).toBeDefined();
  });

  it("answers not_found for an unknown approval", async () => {
    expect((await refusal(book.approve("apr_nope", APPROVER))).code).toBe("not_found");
  });
});
