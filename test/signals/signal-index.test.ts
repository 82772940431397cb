import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SIGNAL_KINDS } from "../../src/signals/index.js";
import type { Signal } from "../../src/signals/index.js";
import { SignalIndex } from "../../src/signals/signal-index.js";
import { kvKeyFor, addressForKvKey } from "../../src/signals/nats-store.js";

const T0 = 1_750_000_000_000;

function risk(id: string, subject: string, observedAt = T0): Signal {
  return { id, kind: "risk", subject, name: "", source: "s", observedAt, data: { level: "low" } };
}

describe("SignalIndex", () => {
  it("forgets the oldest event ids beyond its idempotency window", () => {
    const index = new SignalIndex({ idempotencyWindow: 2 });
    for (const id of ["a", "b", "c"]) index.set(risk(id, `s-${id}`), false);
    // "a" left the window but is still the live value of its key: still a duplicate.
    expect(index.decide(risk("a", "s-a")).status).toBe("duplicate");
    index.set(risk("a2", "s-a", T0 + 1), false);
    index.set(risk("d", "s-d"), false);
    // Now "a" is neither remembered nor live: judged by observedAt alone.
    expect(index.decide(risk("a", "s-a", T0 + 5)).status).toBe("write");
  });

  it.each(["sweep", "sweepAll"] as const)("lets a value swept by %s leave the idempotency window too (memory stays with live values)", (how) => {
    const index = new SignalIndex({ now: () => T0 });
    const expiring: Signal = { ...risk("e", "s-e"), expiresAt: T0 + 1000 };
    const lasting = risk("l", "s-l");
    index.set(expiring, false);
    index.set(lasting, false);
    expect(index.decide(expiring).status).toBe("duplicate");
    const removed = how === "sweep" ? index.sweep(T0 + 2000, Number.POSITIVE_INFINITY) : index.sweepAll(T0 + 2000, () => undefined);
    expect(removed).toBe(1);
    // The swept event, replayed, is judged afresh (it has expired, so it is never read); the live one is still a duplicate.
    expect(index.decide(expiring).status).toBe("write");
    expect(index.get("s-e", "risk", "", T0 + 2000)).toBeUndefined();
    expect(index.decide(lasting).status).toBe("duplicate");
  });

  it("takes back a value whose write failed, so a retry is not a duplicate", () => {
    const index = new SignalIndex();
    const first = risk("a", "s");
    index.set(first, false);
    const second = risk("b", "s", T0 + 1);
    const previous = index.set(second, false);
    index.revert(second, previous);
    expect(index.held({ subject: "s", kind: "risk", name: "" })).toBe(first);
    expect(index.decide(second).status).toBe("write");
  });

  it("keeps the per-subject list in step with sets and removes", () => {
    const index = new SignalIndex();
    index.set(risk("a", "s"), false);
    index.set({ ...risk("b", "s"), kind: "behavior", data: { anomalies: ["rate_spike"] } }, false);
    index.set(risk("c", "s", T0 + 1), false);
    expect(index.list("s", T0).map((s) => s.id).sort()).toEqual(["b", "c"]);
    index.remove({ subject: "s", kind: "risk", name: "" });
    expect(index.list("s", T0).map((s) => s.id)).toEqual(["b"]);
    index.remove({ subject: "s", kind: "behavior", name: "" });
    expect(index.list("s", T0)).toEqual([]);
  });
});

function grant(id: string, subject: string, name: string, usesLeft = 1): Signal {
  return { id, kind: "grant", subject, name, source: "s", observedAt: T0, data: { approvalId: id, scope: "svc", approver: "a", usesLeft } };
}

describe("SignalIndex holding several values of one subject", () => {
  // A subject's values are kept as the value itself, a short list, or a map past 8; each row
  // fills one subject with that many values, then removes them one by one, oldest first.
  const subject = "spiffe://example.org/ns/a/sa/b";
  const addresses = (count: number): Signal[] => Array.from({ length: count }, (_, i) => grant(`g${String(i)}`, subject, `approval-${String(i)}`));
  it.each([
    ["one value", 1],
    ["two values", 2],
    ["a list's worth (8)", 8],
    ["one past a list (9)", 9],
    ["many named grants (40)", 40],
  ] as const)("finds, lists and removes %s in write order", (_label, count) => {
    const index = new SignalIndex({ now: () => T0 });
    const values = addresses(count);
    for (const value of values) expect(index.set(value, false)).toBeUndefined();
    // An unnamed value of the same kind and a value of another kind are other addresses.
    index.set(grant("unnamed", subject, ""), false);
    index.set(risk("r", subject), false);
    expect(index.size()).toBe(count + 2);
    expect(index.list(subject, T0).map((s) => s.id)).toEqual([...values.map((s) => s.id), "unnamed", "r"]);
    for (const value of values) expect(index.get(subject, "grant", value.name, T0)).toBe(value);
    expect(index.get(subject, "grant", "approval-missing", T0)).toBeUndefined();
    expect(index.get(subject, "posture", "", T0)).toBeUndefined();
    // Replacing a value keeps its place in the list.
    const middle = values[Math.floor(count / 2)] ?? values[0];
    const replaced = { ...middle!, id: "again", data: { ...(middle as Signal & { kind: "grant" }).data, usesLeft: 5 } } as Signal;
    expect(index.set(replaced, false)).toBe(middle);
    expect(index.list(subject, T0).map((s) => s.id)).toEqual(
      [...values.map((s) => (s === middle ? "again" : s.id)), "unnamed", "r"],
    );
    index.remove({ subject, kind: "grant", name: "" });
    index.remove({ subject, kind: "risk", name: "" });
    const left = values.map((s) => (s === middle ? replaced : s));
    while (left.length > 0) {
      const gone = left.shift()!;
      expect(index.remove(gone)).toBe(gone);
      expect(index.remove(gone)).toBeUndefined();
      expect(index.get(subject, "grant", gone.name, T0)).toBeUndefined();
      expect(index.held(gone)).toBeUndefined();
      expect(index.size()).toBe(left.length);
      expect(index.list(subject, T0)).toEqual(left);
      for (const value of left) expect(index.get(subject, "grant", value.name, T0)).toBe(value);
    }
    expect([...index.values()]).toEqual([]);
  });

  it.each([
    ["sweep, a few subjects at a time", (index: SignalIndex, nowMs: number) => index.sweep(nowMs, 3)],
    ["sweepAll", (index: SignalIndex, nowMs: number) => index.sweepAll(nowMs, () => undefined)],
  ] as const)("keeps every live value when %s runs between writes", (_label, sweep) => {
    let nowMs = T0;
    const index = new SignalIndex({ now: () => nowMs });
    const live = new Map<string, Signal>();
    for (let round = 0; round < 30; round++) {
      for (let s = 0; s < 12; s++) {
        const subject = `spiffe://example.org/ns/a/sa/w${String(s)}`;
        // Every subject gets values that expire soon and one that lasts, some of them named.
        const expiring: Signal = { ...grant(`e${String(round)}-${String(s)}`, subject, `x${String(round % 4)}`), expiresAt: nowMs + 5 };
        const lasting = grant(`l${String(round)}-${String(s)}`, subject, `keep${String(round % ((s % 11) + 1))}`);
        index.set(expiring, false);
        index.set(lasting, false);
        live.set(`${subject} ${lasting.name}`, lasting);
        sweep(index, nowMs);
      }
      nowMs += 10;
      sweep(index, nowMs);
    }
    index.sweep(nowMs, Number.POSITIVE_INFINITY);
    expect(index.size()).toBe(live.size);
    expect(new Set(index.values())).toEqual(new Set(live.values()));
    for (const value of live.values()) expect(index.get(value.subject, "grant", value.name, nowMs)).toBe(value);
  });
});

describe("SignalIndex reads of one subject in a row", () => {
  // get() remembers the last subject's values; each row drops or recreates that subject's value
  // map between two reads, and the second read must see the change, never the remembered map.
  const subject = "spiffe://example.org/ns/a/sa/b";
  it.each([
    ["a value put after a miss", (index: SignalIndex) => { index.set(risk("r1", subject), false); }, "r1"],
    ["a value put after the subject's last value was removed", (index: SignalIndex) => {
      index.set(risk("r1", subject), false);
      index.get(subject, "risk", "", T0);
      index.remove({ subject, kind: "risk", name: "" });
      index.get(subject, "risk", "", T0);
      index.set(risk("r2", subject, T0 + 1), false);
    }, "r2"],
    ["a value put after the sweep dropped the subject", (index: SignalIndex) => {
      index.set({ ...risk("r1", subject), expiresAt: T0 + 1 }, false);
      index.get(subject, "risk", "", T0);
      index.sweep(T0 + 10, 100);
      index.get(subject, "risk", "", T0 + 10);
      index.set(risk("r3", subject, T0 + 20), false);
    }, "r3"],
    ["nothing, after the only value was removed", (index: SignalIndex) => {
      index.set(risk("r1", subject), false);
      index.get(subject, "risk", "", T0);
      index.remove({ subject, kind: "risk", name: "" });
    }, undefined],
  ] as const)("sees %s", (_label, change, expected) => {
    const index = new SignalIndex({ now: () => T0 });
    expect(index.get(subject, "risk", "", T0)).toBeUndefined();
    change(index);
    expect(index.get(subject, "risk", "", T0 + 20)?.id).toBe(expected);
  });
});

describe("NATS KV keys", () => {
  it("encode any subject and name into allowed KV characters and back", () => {
    fc.assert(fc.property(
      fc.constantFrom(...SIGNAL_KINDS), fc.string({ minLength: 1, maxLength: 200 }), fc.string({ maxLength: 50 }),
      (kind, subject, name) => {
        const key = kvKeyFor(subject, kind, name);
        expect(key).toMatch(/^[-/_=.a-zA-Z0-9]+$/);
        expect(key.startsWith(`${kind}.`)).toBe(true);
        expect(addressForKvKey(key)).toEqual({ subject, kind, name });
      },
    ));
  });

  it("refuses text with a lone surrogate rather than writing a key that cannot be read back", () => {
    expect(() => kvKeyFor("spiffe://example.org/\ud800", "risk", "")).toThrow(/not well-formed/);
    fc.assert(fc.property(fc.string({ unit: "binary", minLength: 1 }), (subject) => {
      try {
        expect(addressForKvKey(kvKeyFor(subject, "risk", ""))).toEqual({ subject, kind: "risk", name: "" });
      } catch (error) {
        expect(error).toMatchObject({ code: "invalid_input" });
      }
    }));
  });

  it.each(["foo", "risk", "mood.abc", "risk.abc.def.ghi", "risk.a+b"])("does not claim the foreign key %s", (key) => {
    expect(addressForKvKey(key)).toBeUndefined();
  });
});
