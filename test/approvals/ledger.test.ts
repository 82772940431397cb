// The embedded approval ledger: approvals survive a restart through the approvals journal beside
// the signals journal (pending ones stay approvable, settled ones stay settled), a damaged line
// is skipped without losing the others, events fire once per opening and settling, and expiry is
// written and told once.

import { mkdtempSync, appendFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ApprovalBook, approvalsJournalPath, isLawfulChange, LocalLedger, type ApprovalEvent, type ApprovalRequest, type OpenApproval,
} from "../../src/approvals/index.js";
import { parseConfig } from "../../src/config/index.js";
import { createEmbeddedStore, type SignalStore } from "../../src/signals/index.js";
import { eventually } from "../signals/support.js";

const AGENT = "spiffe://example.org/ns/agents/sa/support-bot";
const APPROVER = "spiffe://example.org/ns/ops/sa/change-approver";
const logger = pino({ level: "silent" });

const request = (resource = "mcp:create_change"): OpenApproval => ({
  caller: AGENT, credentialOwner: "", rule: "change-mgmt/agent-create-change-prod", destination: "change-mgmt",
  resource, approvers: [APPROVER], grantTtlSeconds: 900, grantUses: 1, reason: "a production change needs a human",
});

describe("approvals journal path", () => {
  it.each([
    [".vigil/journal.jsonl", ".vigil/journal.approvals.jsonl"],
    ["/var/lib/vigil/signals", "/var/lib/vigil/signals.approvals.jsonl"],
    ["", ""],
  ])("%s → %s", (signals, approvals) => {
    expect(approvalsJournalPath(signals)).toBe(approvals);
  });
});

describe("local approval ledger", () => {
  let dir: string;
  let clock: number;
  let store: SignalStore;
  const open: { ledger: LocalLedger; book: ApprovalBook }[] = [];

  async function start(events: ApprovalEvent[] = []): Promise<{ ledger: LocalLedger; book: ApprovalBook }> {
    const ledger = new LocalLedger({ path: join(dir, "journal.approvals.jsonl"), logger, now: () => clock });
    await ledger.ready();
    const book = new ApprovalBook({
      store, ledger, now: () => clock, pendingTtlMs: 60_000, sweepIntervalMs: 0, onEvent: (e) => { events.push(e); },
    });
    open.push({ ledger, book });
    return { ledger, book };
  }

  async function restart(events: ApprovalEvent[] = []): Promise<{ ledger: LocalLedger; book: ApprovalBook }> {
    for (const { ledger, book } of open.splice(0)) {
      book.close();
      await ledger.close();
    }
    return start(events);
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "vigil-ledger-"));
    clock = Date.UTC(2026, 10, 25, 12);
    store = createEmbeddedStore(parseConfig({ store: { journalPath: join(dir, "journal.jsonl") } }).store, { logger, now: () => clock });
    await store.ready();
  });

  afterEach(async () => {
    for (const { ledger, book } of open.splice(0)) {
      book.close();
      await ledger.close();
    }
    await store.close();
  });

  it("keeps pending and settled requests across a restart; a pending one is still approvable", async () => {
    const first = await start();
    const pending = first.book.open(request("mcp:a"));
    const denied = first.book.open(request("mcp:b"));
    await eventually(() => readFileSync(join(dir, "journal.approvals.jsonl"), "utf8").split("\n").length > 2);
    await first.book.deny(denied?.id ?? "", APPROVER);

    const second = await restart();
    expect(second.book.get(pending?.id ?? "")?.status).toBe("pending");
    expect(second.book.get(denied?.id ?? "")).toMatchObject({ status: "denied", decidedBy: APPROVER });
    expect(second.book.pendingCount).toBe(1);
    // Same scope, same request: the restarted book answers with the id the caller was given.
    expect(second.book.open(request("mcp:a"))?.id).toBe(pending?.id);
    const { grant } = await second.book.approve(pending?.id ?? "", APPROVER);
    expect(grant.subject).toBe(AGENT);

    const third = await restart();
    expect(third.book.get(pending?.id ?? "")?.status).toBe("approved");
    expect(third.book.list("pending")).toEqual([]);
  });

  it("skips a damaged line and keeps the rest", async () => {
    const first = await start();
    const kept = first.book.open(request("mcp:a"));
    await eventually(() => readFileSync(join(dir, "journal.approvals.jsonl"), "utf8").includes(kept?.id ?? "?"));
    appendFileSync(join(dir, "journal.approvals.jsonl"), "{\"v\":1,\"crc\":\"00000000\",\"sig\":{\"id\":\"apr_x\"}}\n");
    const second = await restart();
    expect(second.book.get(kept?.id ?? "")?.status).toBe("pending");
  });

  it("tells of each opening and settling once, with caller, action, rule, reason and id", async () => {
    const events: ApprovalEvent[] = [];
    const { book } = await start(events);
    const approval = book.open(request());
    book.open(request()); // the same pending request: no second event
    await eventually(() => events.length === 1);
    await book.approve(approval?.id ?? "", APPROVER);
    expect(events.map((e) => [e.type, e.status])).toEqual([["opened", "pending"], ["decided", "approved"]]);
    expect(events[0]).toMatchObject({
      approvalId: approval?.id, caller: AGENT, action: "change-mgmt mcp:create_change",
      rule: "change-mgmt/agent-create-change-prod", reason: "a production change needs a human", by: "",
    });
    expect(events[1]).toMatchObject({ by: APPROVER, reason: `approved by ${APPROVER}` });
  });

  it("writes an expiry once, tells of it, and a restart keeps it expired", async () => {
    const events: ApprovalEvent[] = [];
    const { book } = await start(events);
    const approval = book.open(request());
    await eventually(() => events.length === 1);
    clock += 61_000;
    expect(book.get(approval?.id ?? "")?.status).toBe("expired");
    expect(book.list("expired").map((a) => a.id)).toEqual([approval?.id]);
    book.list();
    await eventually(() => events.length === 2);
    expect(events[1]).toMatchObject({ type: "decided", status: "expired", reason: "expired without a decision" });
    const again = await restart();
    expect(again.book.get(approval?.id ?? "")?.status).toBe("expired");
    expect(again.book.pendingCount).toBe(0);
  });

  it("forgets settled requests a day after they settled, here and in the journal", async () => {
    const first = await start();
    const approval = first.book.open(request());
    await first.book.deny(approval?.id ?? "", APPROVER);
    clock += 86_400_001;
    expect(first.book.list()).toEqual([]);
    expect(first.ledger.size).toBe(0);
    const second = await restart();
    // Replay brings the record back from the file until it is compacted; the sweep forgets it again.
    expect(second.book.list()).toEqual([]);
  });
});

describe("lawful changes of a record read from outside", () => {
  const base: ApprovalRequest = {
    id: "apr_00000000-0000-4000-8000-000000000000", scope: "s", grantName: "g", caller: AGENT, credentialOwner: "",
    rule: "r", destination: "d", resource: "x", approvers: [APPROVER], grantTtlSeconds: 900, grantUses: 1,
    resourceDigest: "0".repeat(64), destinationDigest: "0".repeat(64), requestedAt: 1, expiresAt: 2,
    status: "pending", decidedBy: "", decidedAt: 0, comment: "",
  };
  const approved = { ...base, status: "approved" as const, decidedBy: APPROVER, decidedAt: 5 };

  it.each<[string, ApprovalRequest, ApprovalRequest, boolean]>([
    ["pending → approved", base, approved, true],
    ["pending → denied", base, { ...approved, status: "denied" }, true],
    ["the same pending record again", base, { ...base }, true],
    ["approved → pending (a second approval, a second grant)", approved, base, false],
    ["approved → denied", approved, { ...approved, status: "denied" }, false],
    ["approved by someone else", approved, { ...approved, decidedBy: "mallory" }, false],
    ["approvers changed on a pending request", base, { ...base, approvers: ["mallory"] }, false],
    ["credential owner cleared", { ...base, credentialOwner: "owner" }, base, false],
    ["expiry pushed out", base, { ...base, expiresAt: 9e12 }, false],
    ["more uses granted", base, { ...approved, grantUses: 99 }, false],
    ["pending with a decider", base, { ...base, decidedBy: "mallory" }, false],
  ])("%s", (_name, held, next, lawful) => {
    expect(isLawfulChange(held, next)).toBe(lawful);
  });
});
