// Step-up approvals against a real (memory-only) signal store: one pending request per scope, who
// may approve, the grant an approval writes, expiry, and the bounds on what the book holds:
// per caller, in total, settled requests, and long resources held as an excerpt plus a digest.

import { pino } from "pino";
import { beforeEach, describe, expect, it } from "vitest";
import { ApprovalBook, approvalScope, grantNameFor, SCOPE_PART_MAX_CHARS, type ApprovalRefusal, type OpenApproval } from "../../src/approvals/index.js";
import { parseConfig } from "../../src/config/index.js";
import { VigilError } from "../../src/errors/index.js";
import { createEmbeddedStore, type SignalStore } from "../../src/signals/index.js";

const AGENT = "spiffe://example.org/ns/agents/sa/support-bot";
const OWNER = "spiffe://example.org/ns/agents/sa/owner";
const APPROVER = "spiffe://example.org/ns/ops/sa/change-approver";

const request = (resource = "mcp:create_change", caller = AGENT): OpenApproval => ({
  caller, credentialOwner: OWNER, rule: "change-mgmt/agent-create-change-prod", destination: "change-mgmt",
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
    await book.deny(first?.id ?? "", APPROVER);
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

describe("approval book bounds", () => {
  let store: SignalStore;
  let clock: number;
  let refused: ApprovalRefusal[];
  const caller = (n: number): string => `spiffe://example.org/ns/agents/sa/bot-${String(n)}`;
  const bookWith = (limits: { maxPending?: number; maxPendingPerCaller?: number; maxSettled?: number }): ApprovalBook =>
    new ApprovalBook({ store, now: () => clock, pendingTtlMs: 60_000, ...limits, onRefused: (reason) => { refused.push(reason); } });

  beforeEach(async () => {
    clock = Date.UTC(2026, 10, 25, 12);
    refused = [];
    store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: pino({ level: "silent" }), now: () => clock });
    await store.ready();
  });

  it("caps one caller's pending requests, counts the refusal, and still serves every other caller", () => {
    const book = bookWith({ maxPending: 100, maxPendingPerCaller: 3 });
    for (let i = 0; i < 3; i++) expect(book.open(request(`GET /files/${String(i)}`))).toBeDefined();
    for (let i = 3; i < 50; i++) expect(book.open(request(`GET /files/${String(i)}`))).toBeUndefined();
    expect(refused).toHaveLength(47);
    expect(new Set(refused)).toEqual(new Set(["caller_limit"]));
    expect(book.pendingCount).toBe(3);
    // A request already pending is still returned: the cap only stops new ones.
    expect(book.open(request("GET /files/0"))).toBeDefined();
    for (let n = 0; n < 10; n++) expect(book.open(request("GET /files/0", caller(n)))).toBeDefined();
    expect(book.pendingCount).toBe(13);
  });

  it("frees a caller's slot when one of its requests is decided or expires", async () => {
    const book = bookWith({ maxPending: 100, maxPendingPerCaller: 2 });
    const first = book.open(request("a"));
    book.open(request("b"));
    expect(book.open(request("c"))).toBeUndefined();
    await book.deny(first?.id ?? "", APPROVER);
    expect(book.open(request("c"))).toBeDefined();
    expect(book.open(request("d"))).toBeUndefined();
    clock += 60_001;
    expect(book.open(request("d"))).toBeDefined();
    expect(book.pendingCount).toBe(1);
  });

  it("caps the total of pending requests across callers and says so", () => {
    const book = bookWith({ maxPending: 5, maxPendingPerCaller: 2 });
    const opened = Array.from({ length: 10 }, (_, n) => book.open(request("r", caller(n))));
    expect(opened.filter((a) => a !== undefined)).toHaveLength(5);
    expect(refused).toEqual(["total_limit", "total_limit", "total_limit", "total_limit", "total_limit"]);
    expect(book.pendingCount).toBe(5);
  });

  it("holds a flood of 58 KB paths as excerpts and digests, within the caps", () => {
    const book = bookWith({ maxPending: 50, maxPendingPerCaller: 5, maxSettled: 20 });
    const long = (n: number): string => `GET /files/${"x".repeat(58 * 1024)}/${String(n)}`;
    for (let round = 0; round < 4; round++) {
      for (let c = 0; c < 20; c++) for (let i = 0; i < 10; i++) book.open(request(long(i), caller(c)));
      clock += 60_001; // all expire and become settled; settled ones are capped too
      book.list();
    }
    expect(book.size).toBeLessThanOrEqual(50 + 20);
    const held = [...book.list(), book.open(request(long(1), caller(1)))];
    for (const approval of held) {
      expect(approval?.resource.length).toBeLessThan(300);
      expect(approval?.scope.length).toBeLessThan(600);
    }
  });

  it("keeps idempotency for long resources: same resource, same request; a different one, a new one", () => {
    const book = bookWith({});
    const base = `POST /files/${"a".repeat(10_000)}`;
    const first = book.open(request(base));
    expect(first?.resource).toContain("…(10012 chars)");
    expect(first?.resource.length).toBeLessThan(300);
    expect(first?.resourceDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(book.open(request(base))?.id).toBe(first?.id);
    // Same excerpt, different tail: a different scope.
    const other = book.open(request(`${base}b`));
    expect(other?.id).not.toBe(first?.id);
    expect(other?.resource.slice(0, 150)).toBe(first?.resource.slice(0, 150));
    expect(other?.scope).not.toBe(first?.scope);
    expect(first?.scope).toBe(approvalScope(AGENT, "change-mgmt/agent-create-change-prod", "change-mgmt", base));
  });

  it("writes a grant for a long resource under the name the decision looks up", async () => {
    const book = bookWith({});
    const resource = `GET /reports/${"q".repeat(SCOPE_PART_MAX_CHARS * 4)}`;
    const approval = book.open(request(resource));
    await book.approve(approval?.id ?? "", APPROVER);
    const name = grantNameFor(approvalScope(AGENT, "change-mgmt/agent-create-change-prod", "change-mgmt", resource));
    expect(store.useGrant(AGENT, name, clock)).toBe(true);
  });

  it("shows control characters of a client-chosen resource as '?'", () => {
    const book = bookWith({});
    expect(book.open(request("GET /a\u001b[31mred\nline"))?.resource).toBe("GET /a?[31mred?line");
  });

  it("keeps at most maxSettled settled requests, forgetting the oldest", async () => {
    const book = bookWith({ maxSettled: 3 });
    const ids = Array.from({ length: 6 }, (_, n) => book.open(request(String(n)))?.id ?? "");
    for (const id of ids) await book.deny(id, APPROVER);
    expect(book.size).toBe(3);
    expect(book.get(ids[0] ?? "")).toBeUndefined();
    expect(book.get(ids[5] ?? "")?.status).toBe("denied");
  });
});
