// The key tables behind every baseline (src/behavior/table.ts): open addressing in one
// Float64Array. Table tests for collisions, growth past half full, blocks given back and reused;
// through the monitor, a cap reached, eviction, accept and a persistence round trip over tables
// that had to grow; and a property: any sequence of operations answers as a Set per table would.

import fc from "fast-check";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { BehaviorMonitor, type SavedBaseline } from "../../src/behavior/index.js";
import { KeyTables } from "../../src/behavior/table.js";
import { behaviorSchema } from "../../src/config/index.js";
import type { RequestView } from "../../src/model/index.js";
import { createEmbeddedStore } from "../../src/signals/index.js";

const T0 = Date.UTC(2026, 10, 25, 12, 0, 0);
const TWO_32 = 2 ** 32;
const MAX_KEY = 2 ** 52 - 1;

describe("KeyTables", () => {
  it.each([
    ["keys equal in their low 32 bits (every probe starts at the same slot)", Array.from({ length: 40 }, (_, i) => i * TWO_32 + 5)],
    ["keys that differ only past the mask", Array.from({ length: 40 }, (_, i) => i * 1024)],
    ["0, the largest key and its neighbours", [0, 1, MAX_KEY, MAX_KEY - 1, 2 ** 51]],
    ["consecutive keys (neighbouring slots)", Array.from({ length: 100 }, (_, i) => 7_000 + i)],
  ])("holds %s, as actions and as networks, and nothing else", (_name, keys) => {
    const t = new KeyTables(16);
    let block = t.open(T0);
    for (const key of keys) {
      block = t.addAction(block, key);
      block = t.addNetwork(block, key + 1);
    }
    for (const key of keys) {
      expect(t.hasAction(block, key)).toBe(true);
      expect(t.hasNetwork(block, key + 1)).toBe(true);
    }
    expect(t.actionCount(block)).toBe(keys.length);
    expect(t.networkCount(block)).toBe(keys.length);
    // Neighbours of what was added were not: a probe ends at an empty slot, never at a wrong key.
    const absent = [...new Set(keys.map((k) => k + TWO_32))].filter((k) => !keys.includes(k) && k <= MAX_KEY);
    for (const key of absent) expect(t.hasAction(block, key)).toBe(false);
    expect(t.enforcedFrom(block)).toBe(T0);
  });

  it("moves a table to a block twice the size when it would pass half full, keeping every key", () => {
    const t = new KeyTables(16);
    const first = t.open(T0);
    let block = first;
    const offsets = new Set<number>();
    for (let key = 1; key <= 4; key++) block = t.addAction(block, key * 977);
    expect(block).toBe(first); // 4 of 8 slots: still the first block
    block = t.addAction(block, 5 * 977);
    expect(block).not.toBe(first); // the fifth would pass half: moved
    for (let key = 6; key <= 600; key++) {
      block = t.addAction(block, key * 977);
      offsets.add(block);
    }
    expect(offsets.size).toBeGreaterThan(3);
    for (let key = 1; key <= 600; key++) expect(t.hasAction(block, key * 977)).toBe(true);
    expect(t.actionCount(block)).toBe(600);
    // Adding a key held already changes nothing.
    expect(t.addAction(block, 977)).toBe(block);
    expect(t.actionCount(block)).toBe(600);
    // 600 actions need 2,048 slots (half full at most); the old blocks were given back.
    expect(t.usedDoubles).toBe(4096);
  });

  it("gives a closed block, zeroed, to the next baseline of its size, and grows the array when none is free", () => {
    const t = new KeyTables(16);
    const a = t.addAction(t.addNetwork(t.open(T0), 11), 22);
    expect(t.capacityDoubles).toBe(16);
    const b = t.open(T0 + 1); // no free block: the array doubles
    expect(t.capacityDoubles).toBe(32);
    t.close(a);
    const c = t.open(T0 + 2);
    expect(c).toBe(a);
    expect(t.hasAction(c, 22)).toBe(false);
    expect(t.hasNetwork(c, 11)).toBe(false);
    expect(t.actionCount(c)).toBe(0);
    expect(t.enforcedFrom(c)).toBe(T0 + 2);
    expect(t.enforcedFrom(b)).toBe(T0 + 1);
    expect(t.usedDoubles).toBe(32);
  });

  it("answers as one Set per table would, whatever the operations (property)", () => {
    // Keys from a small pool, many equal in their low 32 bits, so probes collide and tables grow.
    const key = fc.oneof(
      fc.integer({ min: 0, max: 63 }).map((i) => i * TWO_32 + 3),
      fc.integer({ min: 0, max: 200 }),
      fc.integer({ min: 0, max: MAX_KEY }),
    );
    const op = fc.oneof(
      fc.record({ op: fc.constant("open" as const) }),
      fc.record({ op: fc.constant("close" as const), which: fc.nat() }),
      fc.record({ op: fc.constantFrom("addAction" as const, "addNetwork" as const, "hasAction" as const, "hasNetwork" as const), which: fc.nat(), key }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
      const t = new KeyTables(16);
      const open: { block: number; actions: Set<bigint>; networks: Set<bigint> }[] = [];
      for (const o of ops) {
        if (o.op === "open") {
          open.push({ block: t.open(T0), actions: new Set(), networks: new Set() });
          continue;
        }
        const set = open[o.which % Math.max(1, open.length)];
        if (set === undefined) continue;
        switch (o.op) {
          case "close":
            t.close(set.block);
            open.splice(open.indexOf(set), 1);
            break;
          case "addAction":
            set.block = t.addAction(set.block, o.key);
            set.actions.add(BigInt(o.key));
            break;
          case "addNetwork":
            set.block = t.addNetwork(set.block, o.key);
            set.networks.add(BigInt(o.key));
            break;
          case "hasAction":
            expect(t.hasAction(set.block, o.key)).toBe(set.actions.has(BigInt(o.key)));
            break;
          case "hasNetwork":
            expect(t.hasNetwork(set.block, o.key)).toBe(set.networks.has(BigInt(o.key)));
            break;
        }
      }
      // Every table holds exactly its model: every member found, counts equal, blocks disjoint.
      for (const set of open) {
        for (const k of set.actions) expect(t.hasAction(set.block, Number(k))).toBe(true);
        for (const k of set.networks) expect(t.hasNetwork(set.block, Number(k))).toBe(true);
        expect(t.actionCount(set.block)).toBe(set.actions.size);
        expect(t.networkCount(set.block)).toBe(set.networks.size);
      }
      expect(new Set(open.map((s) => s.block)).size).toBe(open.length);
    }), { numRuns: 300 });
  });
});

// ---- Through the monitor ----------------------------------------------------------------------

const logger = pino({ level: "silent" });
const A = "spiffe://example.org/ns/a/sa/one";
const B = "spiffe://example.org/ns/a/sa/two";
const C = "spiffe://example.org/ns/a/sa/three";

function view(destination: string, path: string, sourceIp = "10.0.1.17"): RequestView {
  return {
    method: "GET", path, path_only: path, host: destination, scheme: "https", headers: {}, grpc_service: "", grpc_method: "",
    mcp_method: "", mcp_tool: "", mcp: { method: "", tool: "", arguments: {}, uri: "", prompt: "" }, properties: {}, source_ip: sourceIp, destination,
  };
}

function monitor(settings: Record<string, unknown> = {}): BehaviorMonitor {
  const store = createEmbeddedStore({ journalPath: "" } as never, { logger, now: () => T0 });
  return new BehaviorMonitor({ config: behaviorSchema.parse({ learningPeriodMs: 1_000, windowMs: 1_000, ...settings }), store, logger, now: () => T0 });
}

function feed(m: BehaviorMonitor, caller: string, v: RequestView, at: number): readonly string[] {
  const a = m.actionKey(v);
  const n = m.networkKey(v.source_ip);
  const live = m.check(caller, a, n, at);
  m.observe(caller, v, a, n, at, "");
  m.drain();
  return live;
}

/** Action i: letters only, so no segment is an id folded into "*". */
const path = (i: number): string => `/api/${i.toString(26).replace(/\d/g, (d) => "qrstuvwxyz"[Number(d)] ?? "q")}`;

describe("BehaviorMonitor over its key tables", () => {
  it("learns up to maxActionsPerCaller through several table moves, then flags the next action", () => {
    const m = monitor({ maxActionsPerCaller: 40, maxNetworksPerCaller: 5 });
    for (let i = 0; i < 41; i++) feed(m, A, view("tickets", path(i)), T0);
    for (let n = 0; n < 6; n++) feed(m, A, view("tickets", path(0), `10.0.${String(n)}.1`), T0);
    expect(m.show(A)?.actions).toHaveLength(40);
    expect(m.show(A)?.networks).toHaveLength(5);
    for (let i = 0; i < 40; i++) expect(feed(m, A, view("tickets", path(i)), T0 + 1_000)).toEqual([]);
    for (let n = 0; n < 5; n++) expect(feed(m, A, view("tickets", path(0), `10.0.${String(n)}.1`), T0 + 1_000)).toEqual([]);
    expect(feed(m, A, view("tickets", path(40)), T0 + 1_000)).toEqual(["new_action"]);
    expect(feed(m, A, view("tickets", path(0), "10.0.5.1"), T0 + 1_000)).toEqual(["new_source_network"]);
  });

  it("gives an evicted caller's block to a new caller without its keys", () => {
    const m = monitor({ maxCallers: 2 });
    for (let i = 0; i < 3; i++) feed(m, A, view("payments", path(i)), T0);
    feed(m, B, view("tickets", path(0)), T0 + 1);
    feed(m, C, view("tickets", path(0)), T0 + 2); // A, least recently seen, is evicted
    expect(m.callers()).toEqual([B, C]);
    // C holds only what it did itself: A's payments actions are new to it.
    expect(feed(m, C, view("payments", path(1)), T0 + 1_002)).toEqual(["new_action"]);
    expect(feed(m, C, view("tickets", path(0)), T0 + 1_002)).toEqual([]);
    // A comes back as a stranger: learning again, nothing flagged.
    expect(feed(m, A, view("storage", path(9)), T0 + 1_003)).toEqual([]);
  });

  it("accepts pending actions and networks into a table that must grow", () => {
    const m = monitor();
    for (let i = 0; i < 4; i++) feed(m, A, view("tickets", path(i)), T0);
    for (let i = 4; i < 12; i++) expect(feed(m, A, view("tickets", path(i)), T0 + 1_000)).toEqual(["new_action"]);
    expect(feed(m, A, view("tickets", path(0), "192.0.2.9"), T0 + 1_000)).toEqual(["new_source_network"]);
    const accepted = m.accept({ caller: A });
    expect(accepted.actions).toHaveLength(8);
    expect(accepted.networks).toEqual(["192.0.2.0/24"]);
    for (let i = 0; i < 12; i++) expect(feed(m, A, view("tickets", path(i), "192.0.2.9"), T0 + 1_000)).toEqual([]);
    expect(m.show(A)?.actions).toHaveLength(12);
    expect(m.show(A)?.pending).toEqual([]);
  });

  it("round-trips large baselines through snapshot and restore (re-hashed under a new key), keeping the caps", () => {
    const m = monitor();
    for (let i = 0; i < 100; i++) feed(m, A, view("tickets", path(i), `10.0.${String(i % 7)}.1`), T0);
    feed(m, B, view("tickets", path(0)), T0);
    const saved = m.snapshot();
    expect(saved.find((s) => s.caller === A)?.actions).toHaveLength(100);

    const restored = monitor({ maxActionsPerCaller: 60 });
    restored.restore(saved);
    for (let i = 0; i < 60; i++) expect(feed(restored, A, view("tickets", path(i), `10.0.${String(i % 7)}.1`), T0 + 1_000)).toEqual([]);
    expect(feed(restored, A, view("tickets", path(60)), T0 + 1_000)).toEqual(["new_action"]);
    expect(restored.show(A)?.networks).toHaveLength(7);

    // A file naming a caller twice: the later entry stands, the earlier leaves nothing behind.
    const twice: SavedBaseline[] = [
      { caller: C, firstSeen: T0, lastSeen: T0, actions: ["tickets GET /api/old"], networks: ["10.0.1.0/24"], ewma: 0, fanoutMax: 0 },
      { caller: C, firstSeen: T0, lastSeen: T0 + 1, actions: ["tickets GET /api/new"], networks: ["10.0.1.0/24"], ewma: 0, fanoutMax: 0 },
    ];
    const again = monitor();
    again.restore(twice);
    expect(again.size).toBe(1);
    expect(again.show(C)?.actions).toEqual(["tickets GET /api/new"]);
    expect(feed(again, C, view("tickets", "/api/old"), T0 + 1_000)).toEqual(["new_action"]);
    expect(feed(again, C, view("tickets", "/api/new"), T0 + 1_000)).toEqual([]);
  });
});
