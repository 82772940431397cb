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
