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
    expect(second.recovery).toEqual({ records: 302, applied: 302, corrupt: 0, damaged: [], tornTail: false, truncatedBytes: 0 });
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

  // A corrupt record in the middle may have been a revocation: the store refuses to start over it
  // (fail closed) unless the operator asks for a repair, which drops it and keeps a copy.
  it("refuses to start over a record with a bad checksum in the middle, naming its line, not its content", async () => {
    const first = await open();
    for (let i = 0; i < 5; i++) await first.put(riskFor(i));
    await first.close();
    const lines = await journalLines();
    lines[2] = lines[2]!.replace("case 2", "case X");
    await writeFile(journalPath, `${lines.join("\n")}\n`);

    const log = captureLogger();
    const store = createEmbeddedStore(config, { logger: log.logger });
    opened.push(store);
    await expect(store.ready()).rejects.toMatchObject({
      code: "unavailable",
      message: expect.stringMatching(/1 corrupt record\(s\) \(line 3\).*--journal-repair/) as unknown,
    });
    await expect(store.put(riskFor(9))).rejects.toMatchObject({ code: "unavailable" });
    const corrupt = log.lines.find((line) => line.msg === "corrupt journal record");
    expect(corrupt).toMatchObject({ level: 50, line: 3, offset: lines[0]!.length + lines[1]!.length + 2, problem: "checksum mismatch" });
    expect(JSON.stringify(log.lines)).not.toContain("case X");
    // Nothing was rewritten: the damage is still there for an operator to look at.
    expect(await journalLines()).toEqual(lines);
  });

  it("starts over a corrupt middle record with journalRepair, drops it, keeps a copy and rewrites the journal", async () => {
    const first = await open();
    for (let i = 0; i < 5; i++) await first.put(riskFor(i));
    await first.close();
    const lines = await journalLines();
    lines[2] = lines[2]!.replace("case 2", "case X");
    await writeFile(journalPath, `${lines.join("\n")}\n`);

    const log = captureLogger();
    const repaired = await open({ journalRepair: true }, log.logger);
    expect(repaired.recovery).toMatchObject({ records: 5, applied: 4, corrupt: 1, damaged: [{ line: 3, problem: "checksum mismatch" }] });
    expect(repaired.get("spiffe://example.org/ns/n/sa/w2", "risk")).toBeUndefined();
    for (const i of [0, 1, 3, 4]) expect(repaired.get(`spiffe://example.org/ns/n/sa/w${i}`, "risk")).toBeDefined();
    const note = log.lines.find((line) => line.msg === "journal repaired: corrupt records dropped, the damaged file kept beside it");
    expect(note).toMatchObject({ level: 50 });
    const copy = String(note?.copy);
    expect((await readFile(copy, "utf8")).split("\n").filter((l) => l !== "")).toEqual(lines);
    expect(await journalLines()).toHaveLength(4);
    await repaired.put(riskFor(5));
    await repaired.close();
    // A plain start works again.
    const third = await open();
    expect(third.size()).toBe(5);
    expect(third.recovery).toMatchObject({ corrupt: 0 });
  });

  it.each([
    ["garbage", "this is not json"],
    ["a foreign JSON line", "{\"hello\":\"world\"}"],
    ["a record of an unknown version", "{\"v\":2,\"crc\":\"00000000\",\"sig\":{}}"],
  ])("refuses to start over %s in the middle of the journal, and repairs it on request", async (_label, junk) => {
    const first = await open();
    await first.put(riskFor(0));
    await first.close();
    await appendFile(journalPath, `${junk}\n`);
    const second = await open({ journalRepair: true });
    await second.put(riskFor(1));
    await second.close();
    const third = await open();
    expect(third.size()).toBe(2);
    expect(third.recovery).toMatchObject({ records: 2, applied: 2, corrupt: 0 });

    await appendFile(journalPath, `${junk}\n`);
    const refused = createEmbeddedStore(config, { logger: silent });
    opened.push(refused);
    await expect(refused.ready()).rejects.toMatchObject({ code: "unavailable" });
  });

  it("says the journal is writable and counts no failures on a healthy disk", async () => {
    const store = await open();
    await store.put(riskFor(1));
    expect(store.journalHealth()).toEqual({ writable: true });
    const stats = store.journalStats()!;
    expect(Object.values(stats.writeFailures).every((n) => n === 0)).toBe(true);
    expect(stats.bytes).toBe((await stat(journalPath)).size);
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
