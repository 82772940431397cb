import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeSchema } from "../../src/config/schema.js";
import type { StoreConfig } from "../../src/config/schema.js";
import { createEmbeddedStore } from "../../src/signals/index.js";
import type { EmbeddedSignalStore, SignalInput } from "../../src/signals/index.js";
import { runSignalStoreContract } from "../contract/signal-store.case.js";
import { captureLogger, eventually } from "./support.js";

const T0 = 1_750_000_000_000;
const silent = captureLogger().logger;

runSignalStoreContract("embedded, memory only", (now) => {
  const store = createEmbeddedStore(storeSchema.parse({ journalPath: "" }), { logger: silent, now });
  return Promise.resolve({ store, dispose: () => store.close() });
});

runSignalStoreContract("embedded, journaled", async (now) => {
  const dir = await mkdtemp(join(tmpdir(), "vigil-contract-"));
  const store = createEmbeddedStore(storeSchema.parse({ journalPath: join(dir, "journal.jsonl") }), { logger: silent, now });
  return {
    store,
    dispose: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

function riskFor(i: number, observedAt = T0, level: "low" | "high" = "high"): SignalInput {
  return {
    id: `risk-${i}-${observedAt}`, kind: "risk", subject: `spiffe://example.org/ns/n/sa/w${i}`,
    source: "scanner", observedAt, data: { level, reason: `case ${i}` },
  };
}

describe("embedded store journal", () => {
  let dir: string;
  let journalPath: string;
  let config: StoreConfig;
  const opened: EmbeddedSignalStore[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "vigil-journal-"));
    journalPath = join(dir, "state", "journal.jsonl");
    config = storeSchema.parse({ journalPath });
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
    await rm(dir, { recursive: true, force: true });
  });

  async function open(overrides: Partial<StoreConfig> = {}, logger = silent): Promise<EmbeddedSignalStore> {
    const store = createEmbeddedStore({ ...config, ...overrides }, { logger });
    opened.push(store);
    await store.ready();
    return store;
  }

  async function journalLines(): Promise<string[]> {
    return (await readFile(journalPath, "utf8")).split("\n").filter((line) => line !== "");
  }

  it("finds every acknowledged signal after a restart", async () => {
    const first = await open();
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => first.put(riskFor(i))));
    expect(results.every((r) => r.status === "written")).toBe(true);
    await first.put({
      id: "g", kind: "grant", subject: "spiffe://example.org/ns/n/sa/w1", name: "apr", source: "approvals",
      observedAt: T0, data: { approvalId: "apr", scope: "deploy", approver: "alice", usesLeft: 3 },
    });
    expect(first.useGrant("spiffe://example.org/ns/n/sa/w1", "apr", T0)).toBe(true);
    await first.close();

    const second = await open();
    expect(second.size()).toBe(301);
    for (let i = 0; i < 300; i++) {
      expect(second.get(`spiffe://example.org/ns/n/sa/w${i}`, "risk")?.data.reason).toBe(`case ${i}`);
    }
    expect(second.get("spiffe://example.org/ns/n/sa/w1", "grant", "apr")?.data.usesLeft).toBe(2);
    expect(second.recovery).toEqual({ records: 302, applied: 302, corrupt: 0, tornTail: false, truncatedBytes: 0 });
    // Ids survive the restart: a retried event is still a duplicate.
    expect((await second.put(riskFor(7))).status).toBe("duplicate");
  });

  it("group-commits concurrent writes into fewer fsyncs", async () => {
    const store = await open();
    await Promise.all(Array.from({ length: 200 }, (_, i) => store.put(riskFor(i))));
    const stats = store.journalStats();
    expect(stats?.records).toBe(200);
    expect(stats?.flushes).toBeLessThan(200);
  });

  it("answers a concurrent retry as a duplicate only once the first write is durable", async () => {
    const store = await open();
    const order: string[] = [];
    await Promise.all([
      store.put(riskFor(1)).then((r) => order.push(`first ${r.status}`)),
      store.put(riskFor(1)).then((r) => order.push(`retry ${r.status}`)),
    ]);
    expect(order).toEqual(["first written", "retry duplicate"]);
  });

  it("does not replay the journal to subscribers at start", async () => {
    const first = await open();
    await first.put(riskFor(1));
    await first.close();
    const second = createEmbeddedStore(config, { logger: silent });
    opened.push(second);
    const heard: string[] = [];
    second.subscribe((signal) => heard.push(signal.id));
    await second.ready();
    expect(second.size()).toBe(1);
    await second.put(riskFor(2));
    expect(heard).toEqual([`risk-2-${T0}`]);
  });

  it("keeps a revocation sticky across a restart", async () => {
    const subject = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const first = await open();
    await first.put({
      id: "rev-1", kind: "revocation", subject, source: "scanner", observedAt: T0,
      data: { revoked: true, reason: "leaked", by: "scanner" },
    });
    await first.close();
    const second = await open();
    await expect(second.put({
      id: "rev-2", kind: "revocation", subject, source: "scanner", observedAt: T0 + 1,
      data: { revoked: false, reason: "oops", by: "scanner" },
    })).rejects.toMatchObject({ code: "conflict" });
    expect(second.get(subject, "revocation")?.data.revoked).toBe(true);
  });

  it("starts after a torn last record, warns, truncates it and keeps the rest", async () => {
    const first = await open();
    for (let i = 0; i < 3; i++) await first.put(riskFor(i));
    await first.close();
    const whole = (await journalLines())[0]!;
    await appendFile(journalPath, whole.slice(0, Math.floor(whole.length / 2)));
    const sizeWithTear = (await stat(journalPath)).size;

    const log = captureLogger();
    const second = await open({}, log.logger);
    expect(second.size()).toBe(3);
    expect(second.recovery).toMatchObject({ records: 3, applied: 3, corrupt: 0, tornTail: true });
    expect(second.recovery?.truncatedBytes).toBe(Math.floor(whole.length / 2));
    expect(log.warnings().some((msg) => msg.includes("torn"))).toBe(true);
    expect((await stat(journalPath)).size).toBe(sizeWithTear - Math.floor(whole.length / 2));

    // The next write starts on a clean line, so a third start sees all four.
    await second.put(riskFor(3));
    await second.close();
    const third = await open();
    expect(third.size()).toBe(4);
    expect(third.recovery).toMatchObject({ corrupt: 0, tornTail: false });
  });

  it("skips a record with a bad checksum in the middle, reports it and keeps the others", async () => {
    const first = await open();
    for (let i = 0; i < 5; i++) await first.put(riskFor(i));
    await first.close();
    const lines = await journalLines();
    lines[2] = lines[2]!.replace("case 2", "case X");
    await writeFile(journalPath, `${lines.join("\n")}\n`);

    const log = captureLogger();
    const second = await open({}, log.logger);
    expect(second.recovery).toMatchObject({ records: 5, applied: 4, corrupt: 1, tornTail: false });
    expect(second.get("spiffe://example.org/ns/n/sa/w2", "risk")).toBeUndefined();
    for (const i of [0, 1, 3, 4]) expect(second.get(`spiffe://example.org/ns/n/sa/w${i}`, "risk")).toBeDefined();
    const skipped = log.lines.find((line) => line.msg === "skipped a corrupt journal record");
    expect(skipped).toMatchObject({ line: 3, problem: "checksum mismatch" });
  });

  it.each([
    ["garbage", "this is not json"],
    ["a foreign JSON line", "{\"hello\":\"world\"}"],
    ["a record of an unknown version", "{\"v\":2,\"crc\":\"00000000\",\"sig\":{}}"],
  ])("skips %s in the middle of the journal", async (_label, junk) => {
    const first = await open();
    await first.put(riskFor(0));
    await first.close();
    await appendFile(journalPath, `${junk}\n`);
    const second = await open();
    await second.put(riskFor(1));
    await second.close();
    const third = await open();
    expect(third.size()).toBe(2);
    expect(third.recovery).toMatchObject({ records: 3, applied: 2, corrupt: 1 });
  });

  it("compacts superseded records into a snapshot and keeps every value", async () => {
    const store = await open({ compactAfterRecords: 50 });
    for (let round = 0; round < 40; round++) {
      await Promise.all(Array.from({ length: 5 }, (_, i) => store.put(riskFor(i, T0 + round, round % 2 === 0 ? "low" : "high"))));
    }
    const stats = store.journalStats()!;
    expect(stats.compactions).toBeGreaterThan(0);
    expect(stats.records).toBeLessThan(60);
    expect((await journalLines()).length).toBe(stats.records);
    await store.close();

    const reopened = await open({ compactAfterRecords: 50 });
    expect(reopened.size()).toBe(5);
    for (let i = 0; i < 5; i++) {
      expect(reopened.get(`spiffe://example.org/ns/n/sa/w${i}`, "risk")).toMatchObject({ observedAt: T0 + 39, data: { level: "high" } });
    }
    expect(reopened.recovery?.corrupt).toBe(0);
  });

  it("leaves expired signals out of a compacted journal", async () => {
    let clock = T0;
    const store = createEmbeddedStore({ ...config, compactAfterRecords: 5 }, { logger: silent, now: () => clock });
    opened.push(store);
    await store.ready();
    await store.put({ ...riskFor(100), expiresAt: T0 + 10 });
    clock = T0 + 20;
    for (let round = 0; round < 10; round++) await store.put(riskFor(1, T0 + round));
    await eventually(() => (store.journalStats()?.compactions ?? 0) > 0);
    await store.close();
    const lines = await journalLines();
    expect(lines.some((line) => line.includes("w100"))).toBe(false);
  });

  it("refuses writes after close", async () => {
    const store = await open();
    await store.close();
    await expect(store.put(riskFor(1))).rejects.toMatchObject({ code: "unavailable" });
    expect(store.useGrant("x", "y", T0)).toBe(false);
  });

  it("fails ready() with unavailable when the journal cannot be opened", async () => {
    await writeFile(join(dir, "file"), "");
    const store = createEmbeddedStore({ ...config, journalPath: join(dir, "file", "journal.jsonl") }, { logger: silent });
    await expect(store.ready()).rejects.toMatchObject({ code: "unavailable" });
    await expect(store.put(riskFor(1))).rejects.toMatchObject({ code: "unavailable" });
    await store.close();
  });

  it("is always fresh", async () => {
    const store = await open();
    expect(store.freshness(T0)).toEqual({ fresh: true, lastHeardAt: T0, ageMs: 0 });
  });
});
