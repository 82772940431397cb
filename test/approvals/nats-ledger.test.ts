// The cluster approval ledger against the real NATS JetStream on 127.0.0.1:4222: a request opened
// on one instance is listed, approved or denied on another; two approvers racing on two instances
// settle it once and the event is told once; a restarted instance loads what is pending; and
// values a hostile bus client writes (forged keys, garbage, a settled request reopened, approvers
// changed, a pending request deleted) are refused and counted. Without NATS the suite is skipped
// and says why; with CI=true a missing NATS is a failure.

import { randomBytes } from "node:crypto";
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  ApprovalBook, approvalsBucketName, NatsLedger, type ApprovalBusRefusal, type ApprovalEvent, type OpenApproval,
} from "../../src/approvals/index.js";
import { parseConfig } from "../../src/config/index.js";
import { createEmbeddedStore, type SignalStore } from "../../src/signals/index.js";
import { canConnect, TcpProxy } from "../signals/tcp-proxy.js";
import { eventually } from "../signals/support.js";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const natsUp = await canConnect("127.0.0.1", 4222);
const required = process.env.CI === "true";
const suite = natsUp || required ? describe : describe.skip;
if (!natsUp && !required) console.warn(`NATS approval ledger tests skipped: no NATS server at ${NATS_URL} (CI=true makes this a failure)`);

const AGENT = "spiffe://example.org/ns/agents/sa/support-bot";
const APPROVER = "spiffe://example.org/ns/ops/sa/change-approver";
const OTHER_APPROVER = "spiffe://example.org/ns/ops/sa/second-approver";
const logger = pino({ level: "silent" });

const request = (resource = "mcp:create_change"): OpenApproval => ({
  caller: AGENT, credentialOwner: "", rule: "change-mgmt/agent-create-change-prod", destination: "change-mgmt",
  resource, approvers: [APPROVER, OTHER_APPROVER], grantTtlSeconds: 900, grantUses: 1,
});

interface Instance {
  ledger: NatsLedger;
  book: ApprovalBook;
  events: ApprovalEvent[];
  refused: ApprovalBusRefusal[];
}

suite("NATS approval ledger", () => {
  const prefix = `vigilapr_${randomBytes(5).toString("hex")}`;
  const config = parseConfig({ store: { bus: NATS_URL, bucketPrefix: prefix, journalPath: "" } }).store;
  let store: SignalStore;
  let nc: NatsConnection;
  let kv: KV;
  const instances: Instance[] = [];

  async function instance(bus = NATS_URL, freshnessBoundMs = config.freshnessBoundMs): Promise<Instance> {
    const events: ApprovalEvent[] = [];
    const refused: ApprovalBusRefusal[] = [];
    const ledger = new NatsLedger({ config: { ...config, bus, freshnessBoundMs }, logger, maxAgeMs: 3_600_000, onRefused: (r) => { refused.push(r); } });
    await ledger.ready();
    const book = new ApprovalBook({ store, ledger, pendingTtlMs: 60_000, sweepIntervalMs: 0, onEvent: (e) => { events.push(e); } });
    const made = { ledger, book, events, refused };
    instances.push(made);
    return made;
  }

  beforeAll(async () => {
    if (!natsUp) throw new Error(`CI=true but no NATS server answers at ${NATS_URL}`);
    // Grants go to an embedded store here: this suite is about the ledger.
    store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger });
    await store.ready();
    nc = await connect({ servers: NATS_URL });
  });

  afterEach(async () => {
    for (const { ledger, book } of instances.splice(0)) {
      book.close();
      await ledger.close();
    }
  });

  afterAll(async () => {
    await store.close();
    if (natsUp) {
      await (await new Kvm(nc).open(approvalsBucketName(prefix))).destroy().catch(() => undefined);
      await nc.close();
    }
  });

  it("lists, approves and denies on B what A opened; A sees the outcome; each event is told once", async () => {
    const a = await instance();
    const b = await instance();
    kv = await new Kvm(nc).open(approvalsBucketName(prefix));
    const started = performance.now();
    const opened = a.book.open(request("mcp:one"));
    await eventually(() => b.book.get(opened?.id ?? "")?.status === "pending", 5_000, "B sees A's request");
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(b.book.list("pending").map((x) => x.id)).toContain(opened?.id);
    // B answers the same scope with A's id (one request per scope cluster-wide once it is seen).
    expect(b.book.open(request("mcp:one"))?.id).toBe(opened?.id);

    await b.book.approve(opened?.id ?? "", APPROVER);
    await eventually(() => a.book.get(opened?.id ?? "")?.status === "approved", 5_000, "A sees B's approval");
    expect(a.book.pendingCount).toBe(0);

    const second = b.book.open(request("mcp:two"));
    await eventually(() => a.book.get(second?.id ?? "") !== undefined);
    await a.book.deny(second?.id ?? "", OTHER_APPROVER);
    await eventually(() => b.book.get(second?.id ?? "")?.status === "denied");

    const told = [...a.events, ...b.events].map((e) => `${e.type}:${e.approvalId}:${e.status}`).sort();
    expect(told).toEqual([
      `decided:${opened?.id ?? ""}:approved`, `decided:${second?.id ?? ""}:denied`,
      `opened:${opened?.id ?? ""}:pending`, `opened:${second?.id ?? ""}:pending`,
    ].sort());
    expect(a.events.filter((e) => e.type === "opened").map((e) => e.approvalId)).toEqual([opened?.id]);
  });

  it("two approvers racing on two instances: one wins, the other is told it is settled", async () => {
    const a = await instance();
    const b = await instance();
    for (let round = 0; round < 5; round++) {
      const opened = a.book.open(request(`mcp:race-${String(round)}`));
      await eventually(() => b.book.get(opened?.id ?? "") !== undefined);
      const results = await Promise.allSettled([
        a.book.approve(opened?.id ?? "", APPROVER),
        b.book.deny(opened?.id ?? "", OTHER_APPROVER),
      ]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const lost = results.find((r) => r.status === "rejected");
      expect(String((lost as PromiseRejectedResult).reason)).toMatch(/already (approved|denied)/);
      const decided = [...a.events, ...b.events].filter((e) => e.type === "decided" && e.approvalId === opened?.id);
      expect(decided).toHaveLength(1);
    }
  });

  it("a restarted instance loads the pending requests and can settle them", async () => {
    const a = await instance();
    const opened = a.book.open(request("mcp:restart"));
    await eventually(() => a.ledger.get(opened?.id ?? "")?.revision !== 0);
    a.book.close();
    await a.ledger.close();
    instances.splice(instances.indexOf(a), 1);
    const again = await instance();
    expect(again.book.get(opened?.id ?? "")?.status).toBe("pending");
    await again.book.approve(opened?.id ?? "", APPROVER);
    expect(again.book.get(opened?.id ?? "")?.status).toBe("approved");
  });

  it("an approval whose write lands but whose answer comes too late is approved, not refused for a retry that would find it settled", async () => {
    const proxy = new TcpProxy("127.0.0.1", 4222);
    await proxy.start();
    try {
      const a = await instance(proxy.url, 1_000);
      const opened = a.book.open(request("mcp:late-answer"));
      await eventually(() => a.ledger.get(opened?.id ?? "")?.revision !== 0);
      // The bucket takes the write at once; its answer (and the next ones) arrive after the
      // ledger's write timeout (1 s), while the ledger reads back what the bucket holds.
      proxy.holdReplies(1_500);
      const settled = await a.book.approve(opened?.id ?? "", APPROVER);
      expect(settled.approval.status).toBe("approved");
      expect(settled.grant).toMatchObject({ kind: "grant", data: { approvalId: opened?.id } });
      expect(a.book.get(opened?.id ?? "")?.status).toBe("approved");
      const held = await (await new Kvm(nc).open(approvalsBucketName(prefix))).get(opened?.id ?? "");
      expect((held?.json<{ status: string }>())?.status).toBe("approved");
    } finally {
      await proxy.stop();
    }
  });

  it("does not take another writer's value, landed after its own, for its lost answer: the approver is told to retry and no grant is written", async () => {
    const proxy = new TcpProxy("127.0.0.1", 4222);
    await proxy.start();
    try {
      const a = await instance(proxy.url, 1_000);
      const opened = a.book.open(request("mcp:late-answer-forged"));
      const id = opened?.id ?? "";
      await eventually(() => a.ledger.get(id)?.revision !== 0);
      proxy.holdReplies(1_500);
      const approving = a.book.approve(id, APPROVER);
      approving.catch(() => undefined);
      // The approval lands; then a bus client writes its own record over it, before the ledger
      // reads the key back (its answers are held for 1.5 s).
      const bucket = await new Kvm(nc).open(approvalsBucketName(prefix));
      let landed = await bucket.get(id);
      for (const until = Date.now() + 1_000; landed?.json<{ status: string }>().status !== "approved" && Date.now() < until;) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        landed = await bucket.get(id);
      }
      expect(landed?.json<{ status: string }>().status).toBe("approved");
      await bucket.put(id, JSON.stringify({ ...landed?.json<Record<string, unknown>>(), decidedBy: OTHER_APPROVER }));
      await expect(approving).rejects.toThrow(/did not take the write/);
      expect(store.get(AGENT, "grant", opened?.grantName ?? "", Date.now())).toBeUndefined();
    } finally {
      await proxy.stop();
    }
  });

  it("refuses what a hostile bus client writes, and keeps the true state", async () => {
    const a = await instance();
    kv = await new Kvm(nc).open(approvalsBucketName(prefix));
    const pending = a.book.open(request("mcp:victim"));
    const settled = a.book.open(request("mcp:settled"));
    await eventually(() => a.ledger.get(settled?.id ?? "")?.revision !== 0 && a.ledger.get(pending?.id ?? "")?.revision !== 0);
    await a.book.deny(settled?.id ?? "", APPROVER);
    const held = (id: string): Record<string, unknown> => ({ ...a.ledger.get(id)?.record });

    await kv.put("not-an-approval", "{}");
    await kv.put("apr_00000000-0000-4000-8000-00000000000f", "not json");
    await kv.put("apr_00000000-0000-4000-8000-00000000000e", JSON.stringify({ ...held(pending?.id ?? ""), caller: "x".repeat(100_000) }));
    // A valid record under another id's key.
    await kv.put("apr_00000000-0000-4000-8000-00000000000d", JSON.stringify(held(pending?.id ?? "")));
    // The settled request reopened, so that it could be approved (a grant) after its denial.
    await kv.put(settled?.id ?? "", JSON.stringify({ ...held(settled?.id ?? ""), status: "pending", decidedBy: "", decidedAt: 0 }));
    // The pending request's approvers replaced, so that the forger's own token could approve it.
    await kv.put(pending?.id ?? "", JSON.stringify({ ...held(pending?.id ?? ""), approvers: ["mallory"] }));
    await kv.delete(pending?.id ?? "");

    await eventually(() => a.refused.length >= 7, 5_000, "every forged value refused");
    expect([...a.refused].sort()).toEqual(["deletes_pending", "invalid", "invalid", "invalid", "unknown_key", "unlawful_change", "unlawful_change"]);
    expect(a.book.get(settled?.id ?? "")?.status).toBe("denied");
    expect(a.book.get(pending?.id ?? "")).toMatchObject({ status: "pending", approvers: [APPROVER, OTHER_APPROVER] });
    expect(a.book.get("apr_00000000-0000-4000-8000-00000000000d")).toBeUndefined();
    // The forged values over held records were overwritten with the held ones, so an instance
    // starting now loads the truth, and refuses the garbage itself.
    const onBus = async (id: string): Promise<unknown> => (await kv.get(id))?.json<unknown>();
    for (let i = 0; i < 50 && JSON.stringify(await onBus(settled?.id ?? "")) !== JSON.stringify(held(settled?.id ?? "")); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await onBus(settled?.id ?? "")).toEqual(held(settled?.id ?? ""));
    expect(await onBus(pending?.id ?? "")).toEqual(held(pending?.id ?? ""));
    const fresh = await instance();
    expect(fresh.book.get(settled?.id ?? "")?.status).toBe("denied");
    expect(fresh.book.get(pending?.id ?? "")?.approvers).toEqual([APPROVER, OTHER_APPROVER]);
    expect(fresh.book.get("apr_00000000-0000-4000-8000-00000000000d")).toBeUndefined();
    expect(fresh.refused).toContain("unknown_key");
  });
});
