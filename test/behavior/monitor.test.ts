// The behaviour monitor on its own: keys equal to their labels' hashes (property), caps and
// least-recently-seen eviction, learning then enforcing, persistence round trip and refusal of
// a garbled file. Synthetic traffic through the real server is in test/e2e/behavior.test.ts.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { BehaviorMonitor, readBaselines, writeBaselines } from "../../src/behavior/index.js";
import {
  actionHash, actionLabel, combineLanes, ipv4NetworkHash, labelHash, MAX_MEMO_CHARS, networkHash, networkLabel, newHashKey, OTHER_NETWORK,
  pathPattern, seedLanes,
} from "../../src/behavior/action.js";
import { behaviorSchema, parseConfig } from "../../src/config/index.js";
import { pathProblem } from "../../src/decision/index.js";
import { createCallerResolver } from "../../src/identity/index.js";
import type { PrincipalHints, RequestView } from "../../src/model/index.js";
import { createEmbeddedStore, type SignalStore } from "../../src/signals/index.js";
import { createMetrics } from "../../src/telemetry/index.js";

const T0 = Date.UTC(2026, 10, 25, 12, 0, 0);
const logger = pino({ level: "silent" });

function view(destination: string, method: string, path: string, extra: Partial<RequestView> = {}): RequestView {
  return {
    method, path, path_only: path, host: destination, scheme: "https", headers: {}, grpc_service: "", grpc_method: "",
    mcp_method: "", mcp_tool: "", mcp: { method: "", tool: "", arguments: {}, uri: "", prompt: "" }, properties: {}, source_ip: "10.0.1.17", destination, ...extra,
  };
}

function monitor(settings: Record<string, unknown> = {}, clock = { now: T0 }): { m: BehaviorMonitor; clock: { now: number }; store: SignalStore } {
  const store = createEmbeddedStore({ journalPath: "" } as never, { logger, now: () => clock.now });
  const config = behaviorSchema.parse({ learningPeriodMs: 1_000, windowMs: 1_000, ...settings });
  return { m: new BehaviorMonitor({ config, store, logger, now: () => clock.now, metrics: createMetrics({ defaultMetrics: false }) }), clock, store };
}

function feed(m: BehaviorMonitor, caller: string, v: RequestView, at: number, hints?: PrincipalHints): readonly string[] {
  const a = m.actionKey(v);
  const n = m.networkKey(v.source_ip);
  const live = m.check(caller, a, n, at, hints);
  m.observe(caller, v, a, n, at, "");
  m.drain();
  return live;
}

/** The hints the identity resolver keeps for each caller, as the pipeline hands them over (a new resolver: none recorded yet). */
function hintsFor<const T extends readonly string[]>(...callers: T): { [K in keyof T]: PrincipalHints } {
  const resolve = createCallerResolver(parseConfig({}).identity);
  return callers.map((principal) => {
    const hints = resolve({ principal, certificate: "", headers: {} }).hints;
    if (hints === undefined) throw new Error(`no hints for ${principal}`);
    return hints;
  }) as { [K in keyof T]: PrincipalHints };
}

const A = "spiffe://example.org/ns/a/sa/one";
const B = "spiffe://example.org/ns/a/sa/two";
const C = "spiffe://example.org/ns/a/sa/three";

describe("action and network keys", () => {
  const segment = fc.stringMatching(/^[A-Za-z0-9._~-]{0,30}$/);
  const text = fc.string({ maxLength: 20 });

  it("hash a request exactly as they hash its label (so an accepted label matches the request)", () => {
    const key = newHashKey();
    fc.assert(fc.property(
      fc.record({
        destination: fc.stringMatching(/^[a-z0-9-]{1,20}$/), method: fc.constantFrom("GET", "POST", "DELETE"),
        segments: fc.array(segment, { maxLength: 6 }), tool: fc.option(text, { nil: "" }),
        service: fc.option(text, { nil: "" }), grpcMethod: text,
      }),
      (r) => {
        const v = view(r.destination, r.method, `/${r.segments.join("/")}`, { mcp_tool: r.tool, grpc_service: r.service, grpc_method: r.grpcMethod });
        expect(actionHash(key, v)).toBe(labelHash(key, actionLabel(v)));
      },
    ));
  });

  // actionHash remembers the lanes after the last destination and method: requests in a row
  // that share one, both or neither must each hash as their own label does.
  it("hash requests in a row exactly as their labels, whichever destination and method they share", () => {
    fc.assert(fc.property(
      fc.array(fc.record({
        destination: fc.constantFrom("", "svc", "svc2", "sv", "payments"), method: fc.constantFrom("", "GET", "GETS", "POST", "G"),
        segments: fc.array(segment, { maxLength: 3 }),
      }), { minLength: 1, maxLength: 30 }),
      (requests) => {
        const key = newHashKey();
        for (const r of requests) {
          const v = view(r.destination, r.method, `/${r.segments.join("/")}`);
          expect(actionHash(key, v)).toBe(labelHash(key, actionLabel(v)));
        }
      },
    ));
  });

  it("hash the path without its query, read in place in the whole path: the query changes nothing", () => {
    const key = newHashKey();
    fc.assert(fc.property(fc.array(segment, { maxLength: 6 }), fc.string({ maxLength: 30 }), (segments, query) => {
      const pathOnly = `/${segments.join("/")}`;
      const withQuery = view("svc", "GET", `${pathOnly}?${query}`, { path_only: pathOnly });
      expect(actionHash(key, withQuery)).toBe(actionHash(key, view("svc", "GET", pathOnly)));
      expect(actionHash(key, withQuery)).toBe(labelHash(key, actionLabel(withQuery)));
    }));
  });

  it.each([
    `/${"a".repeat(24)}`, `/${"a".repeat(25)}`, `/${"a".repeat(24)}/x`, `/${"a".repeat(25)}/x`,
    "/v1", "/v1234567", "/v12345678", "/v1234567/x", "/v12345678/x", "/v", "/v/1", "/vx1", "/x1", "/1",
    "", "/", "//", "/a//b/", "/api/v2beta/items/42/", "/a/b1c/d",
  ])("hash the path %j as its pattern reads (segment boundaries)", (path) => {
    const key = newHashKey();
    const v = view("svc", "GET", path);
    expect(actionHash(key, v)).toBe(labelHash(key, actionLabel(v)));
  });

  // The pipeline's pass over the path (decision's pathProblem) feeds the seeded lanes as it checks
  // the path: for every path it finds normal, the key must be actionHash's (and so the label's).
  // Pieces: id-like and not (digits, API versions, 24/25 characters), percent-encodings with and
  // without digits, dots inside segments, a trailing slash, and the refused tricks.
  it("hash a normal path in the pipeline's pass over it exactly as actionHash does (property)", () => {
    const piece = fc.constantFrom(
      "/", "/", "/", "a", "b0", "v1", "v", "v2beta", "v12345678", "x", "-", "~", ".", "..", "a.b", "%41", "%4a", "%Ab", "%e9", "%2F", "%",
      "7", "2026-12-02", "a".repeat(24), "b".repeat(25), ";", " ",
    );
    const path = fc.array(piece, { maxLength: 14 }).map((pieces) => `/${pieces.join("")}`);
    const query = fc.option(fc.constantFrom("", "a=1", "/x/9", "%41"), { nil: undefined });
    let normal = 0;
    fc.assert(fc.property(fc.constantFrom("svc", "payments", ""), fc.constantFrom("GET", "POST", ""), path, query, (destination, method, pathOnly, q) => {
      const key = newHashKey();
      const whole = q === undefined ? pathOnly : `${pathOnly}?${q}`;
      const lanes = new Int32Array(5);
      seedLanes(key, destination, method, lanes);
      lanes[2] = -1;
      const problem = pathProblem(whole, pathOnly.length, lanes);
      expect(problem).toBe(pathProblem(pathOnly));
      const v = view(destination, method, whole, { path_only: pathOnly });
      if (problem !== undefined) {
        expect(lanes[2]).toBe(-1);
        return;
      }
      normal++;
      expect(lanes[2]).toBe(pathOnly.length);
      expect(combineLanes(lanes[0] ?? 0, lanes[1] ?? 0)).toBe(actionHash(key, v));
      expect(actionHash(key, v)).toBe(labelHash(key, actionLabel(v)));
    }), { numRuns: 3000 });
    // The generator must reach normal paths, or the property says nothing.
    expect(normal).toBeGreaterThan(300);
  });

  it.each([
    "/", "/a/", "/v1", "/v1/x", "/api/v2beta/items/42/", "/a/%41/b", "/a/%4A", "/a/%ab", `/${"a".repeat(24)}`, `/${"a".repeat(25)}/x`,
    "/2026-12-02/a", "/a.b/c.d", "/x/..a/...",
  ])("hash the normal path %j in the pipeline's pass as actionHash does", (path) => {
    const key = newHashKey();
    const lanes = new Int32Array(5);
    seedLanes(key, "svc", "GET", lanes);
    expect(pathProblem(path, path.length, lanes)).toBeUndefined();
    expect(combineLanes(lanes[0] ?? 0, lanes[1] ?? 0)).toBe(actionHash(key, view("svc", "GET", path)));
  });

  // Hostile: pathProblem counts a segment's dots in the low bits of one integer, which a segment of
  // 2^20 dots or more carries into the "other character" bit. The answer and the key must not move.
  it("judge and hash a path with a segment of 2^20 and 2^21 dots as actionHash and a plain count do", () => {
    const key = newHashKey();
    for (const dots of [2 ** 20 - 1, 2 ** 20, 2 ** 21, 2 ** 21 + 1]) {
      const path = `/a/${".".repeat(dots)}/b`;
      const lanes = new Int32Array(5);
      seedLanes(key, "svc", "GET", lanes);
      expect(pathProblem(path, path.length, lanes)).toBeUndefined();
      expect(pathProblem(`/a/${".".repeat(dots)}`)).toBeUndefined();
      expect(combineLanes(lanes[0] ?? 0, lanes[1] ?? 0)).toBe(actionHash(key, view("svc", "GET", path)));
    }
  });

  // Hostile: the method is the caller's to choose (an HTTP/2 :method is any token). A long one is
  // hashed as its label is, every time, and never kept: the memo cannot be made to hold 1,024
  // strings of header size.
  it("hash a caller's huge method right every time, and never keep it in the memo", () => {
    const key = newHashKey();
    const huge = "X".repeat(60_000);
    const edge = "Y".repeat(MAX_MEMO_CHARS - "svc".length);
    for (let i = 0; i < 3; i++) {
      for (const method of [huge, edge, `${edge}Y`, "GET"]) {
        const v = view("svc", method, "/a/b");
        expect(actionHash(key, v)).toBe(labelHash(key, actionLabel(v)));
      }
    }
    const kept = key.memo.filter((entry) => typeof entry === "string" && entry !== "");
    expect(kept).toContain(edge);
    expect(kept).toContain("GET");
    expect(kept).not.toContain(huge);
    expect(kept).not.toContain(`${edge}Y`);
  });

  it("differ between processes (a caller cannot precompute a collision) and between actions", () => {
    const v = view("payments", "GET", "/v1/payments/p-1/status");
    expect(actionHash(newHashKey(), v)).not.toBe(actionHash(newHashKey(), v));
    const key = newHashKey();
    expect(actionHash(key, v)).toBe(actionHash(key, view("payments", "GET", "/v1/payments/p-2/status")));
    expect(actionHash(key, v)).not.toBe(actionHash(key, view("payments", "POST", "/v1/payments/p-2/status")));
    expect(actionHash(key, v)).not.toBe(actionHash(key, view("tickets", "GET", "/v1/payments/p-2/status")));
  });

  it.each([
    ["/api/tickets/T-1042", "/api/tickets/*"],
    ["/v1/payments/p-77/status", "/v1/payments/*/status"],
    ["/v2beta/things", "/v2beta/things"],
    [`/files/${"a".repeat(25)}`, "/files/*"],
    ["/", "/"],
  ])("path pattern of %s is %s", (path, pattern) => {
    expect(pathPattern(path)).toBe(pattern);
  });

  it.each([
    ["10.1.2.3", "10.1.2.0/24"],
    ["2001:db8:0:1:2:3:4:5", "2001:db8:0:1::/64"],
    ["::1", "::/64"],
    ["::ffff:10.1.2.3", "::/64"],
    ["999.1.1.1", undefined],
    ["", undefined],
    ["not an address", undefined],
  ])("network of %j is %j", (ip, label) => {
    expect(networkLabel(ip, { ipv4: 24, ipv6: 64 })).toBe(label);
  });

  it("hash an IPv4 address in place exactly as they hash its network's label, and leave any other text to the label (property)", () => {
    const key = newHashKey();
    const address = fc.oneof(
      fc.ipV4(), fc.ipV4Extended(), fc.ipV6(), fc.string({ maxLength: 20 }), fc.stringMatching(/^[0-9.]{0,18}$/),
      fc.tuple(fc.nat(1_000), fc.nat(300), fc.nat(300), fc.nat(300)).map((p) => p.join(".")),
    );
    fc.assert(fc.property(address, fc.integer({ min: 0, max: 32 }), (ip, bits) => {
      const label = networkLabel(ip, { ipv4: bits, ipv6: 64 });
      const ipv4 = label !== undefined && !label.includes(":");
      expect(ipv4NetworkHash(key, ip, bits)).toBe(ipv4 ? labelHash(key, label) : -1);
    }), { numRuns: 2_000 });
  });

  it("keep giving each address its network's key past the key cache's bound (4,096 addresses)", () => {
    const { m } = monitor();
    const first = m.networkKey("10.0.1.17");
    for (let i = 0; i < 5_000; i++) m.networkKey(`10.${String(i >> 8)}.${String(i & 255)}.9`);
    expect(m.networkKey("10.0.1.99")).toBe(first);
    expect(m.networkKey("10.0.2.17")).not.toBe(first);
    expect(m.networkKey("fd00::1")).toBe(m.networkKey("fd00::2"));
  });

  it("give an IPv4 network one key whatever networks were asked between (the monitor's key cache, property)", () => {
    const { m } = monitor();
    // Few first octets and third octets, so that many addresses share a network.
    const address = fc.tuple(fc.constantFrom(10, 11, 74), fc.nat(3), fc.nat(255), fc.nat(255)).map((p) => p.join("."));
    fc.assert(fc.property(fc.array(address, { minLength: 1, maxLength: 200 }), (ips) => {
      const first = new Map<string, number>();
      for (const ip of [...ips, ...ips.toReversed()]) {
        const network = networkLabel(ip, { ipv4: 24, ipv6: 64 }) ?? "";
        const key = m.networkKey(ip);
        const seen = first.get(network);
        if (seen === undefined) first.set(network, key);
        else expect(key).toBe(seen);
      }
      expect(new Set(first.values()).size).toBe(first.size);
    }), { numRuns: 300 });
  });

  it.each([
    ["10.1.2.3", 24, "10.1.2.0/24"],
    ["010.001.002.255", 24, "10.1.2.0/24"],
    ["192.168.255.255", 17, "192.168.128.0/17"],
    ["255.255.255.255", 32, "255.255.255.255/32"],
    ["1.2.3.4", 0, "0.0.0.0/0"],
  ])("key %s at /%i as the label %s", (ip, bits, label) => {
    const key = newHashKey();
    expect(ipv4NetworkHash(key, ip, bits)).toBe(labelHash(key, label));
  });

  it.each(["1.2.3", "1.2.3.4.", ".1.2.3", "1.2.3.256", "1.2.3.0004", "1..2.3", "::1", "1.2.3.4 ", "", "other"])(
    "leave %j to the slow way", (ip) => {
      expect(ipv4NetworkHash(newHashKey(), ip, 24)).toBe(-1);
    });

  it("hash any address as its network's label (\"other\" for anything that is not one)", () => {
    const key = newHashKey();
    fc.assert(fc.property(fc.oneof(fc.ipV4(), fc.ipV6(), fc.string({ maxLength: 60 })), fc.integer({ min: 0, max: 32 }), (ip, bits) => {
      const prefixes = { ipv4: bits, ipv6: 64 };
      expect(networkHash(key, ip, prefixes)).toBe(labelHash(key, networkLabel(ip, prefixes) ?? OTHER_NETWORK));
    }), { numRuns: 1_000 });
  });

  it("never throws on any address text, and a network it writes is its own network", () => {
    fc.assert(fc.property(fc.oneof(fc.ipV4(), fc.ipV6(), fc.string({ maxLength: 60 })), (ip) => {
      const label = networkLabel(ip, { ipv4: 24, ipv6: 64 });
      if (label !== undefined) expect(networkLabel(label.slice(0, label.lastIndexOf("/")), { ipv4: 24, ipv6: 64 })).toBe(label);
    }));
  });
});

describe("BehaviorMonitor", () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-behavior-unit-"));
  afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

  it("learns during the learning period, then shows new actions and networks on the request itself", () => {
    const { m } = monitor();
    expect(feed(m, A, view("tickets", "GET", "/api/tickets/1"), T0)).toEqual([]);
    expect(feed(m, A, view("payments", "GET", "/v1/x"), T0 + 999)).toEqual([]);
    expect(feed(m, A, view("tickets", "GET", "/api/tickets/2"), T0 + 1_000)).toEqual([]);
    expect(feed(m, A, view("payments", "GET", "/v1/x"), T0 + 1_000)).toEqual([]);
    expect(feed(m, A, view("storage", "GET", "/v1/x"), T0 + 1_000)).toEqual(["new_action"]);
    expect(feed(m, A, view("tickets", "GET", "/api/tickets/3", { source_ip: "192.0.2.1" }), T0 + 1_000)).toEqual(["new_source_network"]);
    expect(feed(m, A, view("edr", "GET", "/", { source_ip: "192.0.2.1" }), T0 + 1_000)).toEqual(["new_action", "new_source_network"]);
    // A caller first seen now learns: nothing is flagged.
    expect(feed(m, B, view("edr", "GET", "/"), T0 + 5_000)).toEqual([]);
  });

  it("evicts the least recently seen caller past maxCallers, and caps what one baseline holds", () => {
    const { m } = monitor({ maxCallers: 2, maxActionsPerCaller: 2, learningPeriodMs: 10_000 });
    feed(m, A, view("tickets", "GET", "/a"), T0);
    feed(m, B, view("tickets", "GET", "/a"), T0 + 1);
    feed(m, A, view("tickets", "GET", "/b"), T0 + 1_500); // A seen again (a later window): B is now the oldest
    feed(m, A, view("tickets", "GET", "/c"), T0 + 1_600); // a third action: past the per-caller cap, not learned
    feed(m, C, view("tickets", "GET", "/a"), T0 + 1_700);
    expect(m.callers()).toEqual([A, C]);
    expect(m.show(A)?.actions).toEqual(["tickets GET /a", "tickets GET /b"]);
  });

  it("believes a caller's hint only while its block is the caller's: a block given to another caller is not its baseline", () => {
    const { m } = monitor({ maxCallers: 1 });
    const [hintsA, hintsB] = hintsFor(A, B);
    feed(m, A, view("tickets", "GET", "/a"), T0, hintsA);
    expect(feed(m, A, view("tickets", "GET", "/a"), T0 + 1_000, hintsA)).toEqual([]);
    const blockOfA = hintsA.baselineBlock;
    expect(blockOfA).toBeGreaterThanOrEqual(0);
    expect(feed(m, A, view("payments", "GET", "/x"), T0 + 1_000, hintsA)).toEqual(["new_action"]);
    // B pushes A out (maxCallers 1) and gets A's freed block, where it learns payments only.
    feed(m, B, view("payments", "GET", "/x"), T0 + 2_000, hintsB);
    expect(m.callers()).toEqual([B]);
    expect(feed(m, B, view("payments", "GET", "/x"), T0 + 3_000, hintsB)).toEqual([]);
    expect(hintsB.baselineBlock).toBe(blockOfA);
    // A's hint still names that block. Believed, A would be judged against B's baseline
    // (payments known, tickets new); A has no baseline, so nothing is flagged.
    expect(m.check(A, m.actionKey(view("tickets", "GET", "/a")), m.networkKey("10.0.1.17"), T0 + 3_000, hintsA)).toEqual([]);
    expect(m.check(A, m.actionKey(view("storage", "GET", "/a")), m.networkKey("10.0.1.17"), T0 + 3_000, hintsA)).toEqual([]);
    expect(feed(m, B, view("tickets", "GET", "/a"), T0 + 3_000, hintsB)).toEqual(["new_action"]);
  });

  it("forgets what a hint knew of a caller's baseline once the baseline is forgotten", () => {
    const { m } = monitor({ maxCallers: 1 });
    const [hintsA] = hintsFor(A);
    feed(m, A, view("tickets", "GET", "/a"), T0, hintsA);
    // Found known: the hint now says A's baseline holds this action and network.
    expect(feed(m, A, view("tickets", "GET", "/a"), T0 + 1_000, hintsA)).toEqual([]);
    expect(hintsA.knownActionHigh * 2 ** 26 + hintsA.knownActionLow).toBe(m.actionKey(view("tickets", "GET", "/a")));
    // B pushes A out; A comes back and learns another baseline, without tickets.
    feed(m, B, view("payments", "GET", "/x"), T0 + 1_100);
    feed(m, A, view("payments", "GET", "/x"), T0 + 2_000, hintsA);
    expect(m.show(A)?.actions).toEqual(["payments GET /x"]);
    expect(feed(m, A, view("tickets", "GET", "/a"), T0 + 3_000, hintsA)).toEqual(["new_action"]);
    expect(feed(m, A, view("tickets", "GET", "/a", { source_ip: "192.0.2.9" }), T0 + 3_000, hintsA)).toEqual(["new_action", "new_source_network"]);
  });

  it("observes a checked request under its own keys, even when another request was checked in between", () => {
    const { m } = monitor();
    const tickets = view("tickets", "GET", "/a");
    const payments = view("payments", "POST", "/x", { source_ip: "192.0.2.1" });
    expect(m.checkRequest(A, tickets, T0)).toEqual([]);
    const first = m.ticket;
    // The record phase of A's request comes after B's was judged: B's keys are the kept ones now.
    expect(m.checkRequest(B, payments, T0)).toEqual([]);
    expect(m.ticket).not.toBe(first);
    m.observeChecked(A, tickets, T0, "", first);
    m.observeChecked(B, payments, T0, "", m.ticket);
    m.drain();
    expect(m.show(A)?.actions).toEqual(["tickets GET /a"]);
    expect(m.show(A)?.networks).toEqual(["10.0.1.0/24"]);
    expect(m.show(B)?.actions).toEqual(["payments POST /x"]);
    expect(m.show(B)?.networks).toEqual(["192.0.2.0/24"]);
    // The same caller's two requests judged before either is recorded (cluster mode waits on the
    // bus between the two phases): each is learned under its own keys.
    const storage = view("storage", "GET", "/s");
    expect(m.checkRequest(C, storage, T0)).toEqual([]);
    const storageTicket = m.ticket;
    expect(m.checkRequest(C, tickets, T0)).toEqual([]);
    m.observeChecked(C, storage, T0, "", storageTicket);
    m.drain();
    expect(m.show(C)?.actions).toEqual(["storage GET /s"]);
    expect(m.checkRequest(C, storage, T0 + 1_000)).toEqual([]);
    expect(m.checkRequest(C, tickets, T0 + 1_000)).toEqual(["new_action"]);
    // Enforced: the one-call path flags as the separate calls do.
    expect(m.checkRequest(A, payments, T0 + 1_000)).toEqual(["new_action", "new_source_network"]);
    expect(m.checkRequest(A, tickets, T0 + 1_000)).toEqual([]);
  });

  // The pipeline seeds the action key for its pass over the path (seedPath, then pathProblem);
  // checkRequest may use what the pass left only for that very request. A request it was not
  // seeded for (another path, method or destination, a pass that found a problem, an MCP call on
  // the same path) is hashed by itself: the anomaly answers below would differ otherwise.
  it("uses the pipeline's pass over the path only for the request it was seeded for", () => {
    const { m } = monitor();
    const known = view("tickets", "GET", "/a/b");
    const pass = (destination: string, method: string, path: string, end = path.length): void => {
      pathProblem(path, end, m.seedPath(destination, method, path));
    };
    pass("tickets", "GET", "/a/b");
    expect(m.checkRequest(A, known, T0)).toEqual([]);
    m.observeChecked(A, known, T0, "", m.ticket);
    // The action with no path: its key is that of the lanes as seeded, before any path is fed.
    const pathless = view("tickets", "GET", "");
    expect(m.checkRequest(A, pathless, T0)).toEqual([]);
    m.observeChecked(A, pathless, T0, "", m.ticket);
    m.drain();
    expect(m.show(A)?.actions).toEqual(["tickets GET ", "tickets GET /a/b"]);
    const at = T0 + 1_000;
    // Seeded and passed for this request: known.
    pass("tickets", "GET", "/a/b");
    expect(m.checkRequest(A, known, at)).toEqual([]);
    // Seeded for another path, method or destination, then the known request is checked: known.
    pass("tickets", "GET", "/a/c");
    expect(m.checkRequest(A, known, at)).toEqual([]);
    pass("tickets", "POST", "/a/b");
    expect(m.checkRequest(A, known, at)).toEqual([]);
    pass("payments", "GET", "/a/b");
    expect(m.checkRequest(A, known, at)).toEqual([]);
    // Seeded for the known request, then another one is checked: new.
    for (const other of [view("tickets", "GET", "/a/c"), view("tickets", "POST", "/a/b"), view("payments", "GET", "/a/b")]) {
      pass("tickets", "GET", "/a/b");
      expect(m.checkRequest(A, other, at)).toEqual(["new_action"]);
    }
    // The same path read to another length (a query the view does not cut off).
    pass("tickets", "GET", "/a/b?x", 4);
    expect(m.checkRequest(A, view("tickets", "GET", "/a/b?x"), at)).toEqual(["new_action"]);
    // An MCP tool call on the known route is an action of its own.
    pass("tickets", "GET", "/a/b");
    expect(m.checkRequest(A, view("tickets", "GET", "/a/b", { mcp_tool: "delete_all" }), at)).toEqual(["new_action"]);
    // A pass that found a problem finishes nothing, whatever the pass before it left (its length,
    // with the lanes as seeded: the pathless action's key).
    pass("tickets", "GET", "/a/b");
    pass("tickets", "GET", "/a//");
    expect(m.checkRequest(A, view("tickets", "GET", "/a//"), at)).toEqual(["new_action"]);
  });

  it("answers with hints exactly as without, through learning, growth, eviction and block reuse (property)", () => {
    const callers = [A, B, C];
    const step = fc.record({
      caller: fc.nat(2), destination: fc.constantFrom("tickets", "payments", "storage"), path: fc.constantFrom("/a", "/b", "/c", "/d", "/e"),
      ip: fc.constantFrom("10.0.1.17", "10.0.2.17", "192.0.2.1"), dt: fc.nat(700),
    });
    fc.assert(fc.property(fc.array(step, { minLength: 1, maxLength: 80 }), (steps) => {
      const settings = { maxCallers: 2, maxActionsPerCaller: 12, learningPeriodMs: 1_000 };
      const hinted = monitor(settings).m;
      const plain = monitor(settings).m;
      const hints = hintsFor(...callers);
      let at = T0;
      for (const s of steps) {
        at += s.dt;
        const v = view(s.destination, "GET", s.path, { source_ip: s.ip });
        const caller = callers[s.caller] ?? A;
        expect(feed(hinted, caller, v, at, hints[s.caller])).toEqual(feed(plain, caller, v, at));
      }
    }), { numRuns: 300 });
  });

  it("round-trips baselines through behavior.json and refuses a garbled file", async () => {
    const { m } = monitor();
    feed(m, A, view("tickets", "GET", "/api/tickets/1"), T0);
    const path = join(dir, "behavior.json");
    await writeBaselines(path, m.snapshot(), T0);
    const saved = await readBaselines(path);
    const { m: restored } = monitor({}, { now: T0 + 2_000 });
    restored.restore(saved);
    expect(restored.show(A)?.actions).toEqual(["tickets GET /api/tickets/*"]);
    expect(restored.check(A, restored.actionKey(view("tickets", "GET", "/api/tickets/9")), restored.networkKey("10.0.1.99"), T0 + 2_000)).toEqual([]);

    expect(await readBaselines(join(dir, "absent.json"))).toEqual([]);
    writeFileSync(path, "{\"version\":1,\"savedAt\":1,\"baselines\":[{\"caller\":\"x\"}]}");
    await expect(readBaselines(path)).rejects.toThrow(/not in the expected form.*remove the file/);
    writeFileSync(path, "{ half");
    await expect(readBaselines(path)).rejects.toThrow(/not valid JSON/);
  });

  it("never learns an action whose label is too long to hold, so it stays an anomaly", () => {
    const { m } = monitor();
    const long = view("tickets", "GET", `/${"a/".repeat(400)}x`);
    feed(m, A, long, T0);
    feed(m, A, view("tickets", "GET", "/a"), T0 + 1);
    expect(m.show(A)?.actions).toEqual(["tickets GET /a"]);
    expect(feed(m, A, long, T0 + 1_000)).toEqual(["new_action"]);
    const pending = m.show(A)?.pending[0]?.label ?? "";
    expect(pending.length).toBe(512);
    expect(pending.endsWith("…")).toBe(true);
  });

  it("counts fan-out over known actions, whose requests the queue holds no view of", async () => {
    // Learning: one destination per window, so the learned fan-out is 1 (allowance 2).
    const { m, clock, store } = monitor({ learningPeriodMs: 10_000 });
    const destinations = ["d1", "d2", "d3", "d4"];
    destinations.forEach((d, i) => feed(m, A, view(d, "GET", "/a"), T0 + i * 1_000));
    expect(m.show(A)?.fanoutMax).toBe(1);
    // Enforced: all four known actions in one window. Each is known (no live anomaly, no view
    // queued), yet together they are 4 destinations > 1 + 2.
    clock.now = T0 + 20_000;
    for (const d of destinations.slice(0, 3)) expect(feed(m, A, view(d, "GET", "/a"), clock.now)).toEqual([]);
    await m.settled();
    expect(store.get(A, "behavior", "", clock.now)).toBeUndefined();
    expect(feed(m, A, view("d4", "GET", "/a"), clock.now)).toEqual([]);
    await m.settled();
    expect(store.get(A, "behavior", "", clock.now)?.data.anomalies).toEqual(["fan_out"]);
  });

  it("drops observations past maxQueued and counts them", () => {
    const { m } = monitor({ maxQueued: 16 });
    const v = view("tickets", "GET", "/a");
    for (let i = 0; i < 20; i++) m.observe(A, v, m.actionKey(v), m.networkKey(v.source_ip), T0, "");
    expect(m.droppedCount).toBe(4);
    m.drain();
    expect(m.size).toBe(1);
  });
});
