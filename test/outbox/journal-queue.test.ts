import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { JournalQueue, type Notice } from "../../src/outbox/index.js";

const silent = pino({ level: "silent" });

function notice(n: number, channel: Notice["channel"] = "caep"): Notice {
  return { id: `${channel}/idp/evt-${String(n)}`, channel, receiver: "idp", createdAt: 1_000 + n, contentType: "application/secevent+jwt", body: `body-${String(n)}` };
}

const never = new AbortController().signal;
const open: JournalQueue[] = [];

async function queueAt(path: string, extra: Partial<ConstructorParameters<typeof JournalQueue>[0]> = {}): Promise<JournalQueue> {
  const q = new JournalQueue({ path, logger: silent, maxPending: 100, ...extra });
  await q.open();
  open.push(q);
  return q;
}

afterEach(async () => {
  for (const q of open.splice(0)) await q.close();
});

describe("the embedded outbox file", () => {
  it("queues again after a restart every notice that was not delivered, and only those", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "vigil-outbox-")), "outbox.jsonl");
    const first = await queueAt(path);
    for (const n of [1, 2, 3]) expect(await first.add(notice(n))).toBe(true);
    const leases = await first.claim(2, 0, never);
    expect(leases.map((l) => l.notice.id)).toEqual([notice(1).id, notice(2).id]);
    await leases[0]?.ack();
    await leases[1]?.drop();
    await first.close();

    const second = await queueAt(path);
    const again = await second.claim(10, 0, never);
    expect(again.map((l) => l.notice)).toEqual([notice(3)]);
    expect(again[0]?.attempts).toBe(0);
  });

  it("refuses a second notice with the same id, pending or delivered, also after a restart", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "vigil-outbox-")), "outbox.jsonl");
    const q = await queueAt(path);
    expect(await q.add(notice(1))).toBe(true);
    expect(await q.add(notice(1))).toBe(false);
    const [lease] = await q.claim(1, 0, never);
    await lease?.ack();
    expect(await q.add(notice(1))).toBe(false);
    await q.close();
    const restarted = await queueAt(path);
    expect(await restarted.add(notice(1))).toBe(false);
    expect(await restarted.backlog()).toEqual({ pending: 0, oldestAt: undefined });
  });

  it("offers a retried notice again only once its delay has passed, counting the attempt", async () => {
    const q = await queueAt("");
    await q.add(notice(1));
    const [lease] = await q.claim(1, 0, never);
    await lease?.retry(80);
    expect(await q.claim(1, 0, never)).toEqual([]);
    const started = Date.now();
    const [again] = await q.claim(1, 2_000, never);
    expect(Date.now() - started).toBeGreaterThanOrEqual(60);
    expect(again?.attempts).toBe(1);
  });

  it("wakes a waiting claim as soon as a notice is added", async () => {
    const q = await queueAt("");
    const waiting = q.claim(1, 5_000, never);
    const started = Date.now();
    await q.add(notice(7));
    const leases = await waiting;
    expect(leases.map((l) => l.notice.id)).toEqual([notice(7).id]);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("refuses new notices past maxPending instead of growing without bound", async () => {
    const q = await queueAt("", { maxPending: 2 });
    await q.add(notice(1));
    await q.add(notice(2));
    await expect(q.add(notice(3))).rejects.toMatchObject({ code: "unavailable" });
    expect((await q.backlog()).pending).toBe(2);
  });

  it("skips a torn last line and a corrupt line at start, keeping every sound notice", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "vigil-outbox-")), "outbox.jsonl");
    const q = await queueAt(path);
    for (const n of [1, 2, 3]) await q.add(notice(n));
    await q.close();
    const lines = readFileSync(path, "utf8").split("\n");
    // Flip one byte inside the second record, and leave a half-written record at the end.
    lines[1] = (lines[1] ?? "").replace("body-2", "body-X");
    writeFileSync(path, lines.join("\n"));
    appendFileSync(path, "0badc0de {\"add\":{\"id\":\"caep/idp/ev");
    const restarted = await queueAt(path);
    const leases = await restarted.claim(10, 0, never);
    expect(leases.map((l) => l.notice.id)).toEqual([notice(1).id, notice(3).id]);
  });

  it("rewrites the file down to the pending notices once deliveries pile up", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "vigil-outbox-")), "outbox.jsonl");
    const q = await queueAt(path, { compactAfter: 10 });
    for (let n = 0; n < 30; n++) await q.add(notice(n));
    for (const lease of await q.claim(25, 0, never)) await lease.ack();
    // Compaction runs on the writer's turn; one more add waits for it.
    await q.add(notice(99));
    const text = readFileSync(path, "utf8");
    expect(text.split("\n").filter((l) => l !== "").length).toBeLessThan(30);
    await q.close();
    const restarted = await queueAt(path);
    const left = await restarted.claim(100, 0, never);
    expect(left.map((l) => l.notice.id).sort()).toEqual([25, 26, 27, 28, 29, 99].map((n) => notice(n).id).sort());
  });

  it("settles a lease once only", async () => {
    const q = await queueAt("");
    await q.add(notice(1));
    const [lease] = await q.claim(1, 0, never);
    await lease?.ack();
    await expect(lease?.retry(10)).rejects.toThrow(/twice/);
  });
});
