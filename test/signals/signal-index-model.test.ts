// SignalIndex against a model: random sequences of writes, removes, reads and sweeps, checked
// after every step against a plain Map<subject, Map<slot, Signal>>, the shape the index had
// before it kept a subject's values in a compact form. Reads, lists (in their order), size and
// values() must be what the model says; a sweep may only drop values that have expired (set()
// sweeps a few subjects by itself, so the model follows what the index dropped, after checking it).

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isExpired } from "../../src/signals/index.js";
import type { Signal, SignalKind } from "../../src/signals/index.js";
import { SignalIndex } from "../../src/signals/signal-index.js";

const T0 = 1_750_000_000_000;
const SUBJECTS = ["spiffe://example.org/ns/a/sa/one", "spiffe://example.org/ns/a/sa/two", "spiffe://example.org/ns/b/sa/three"];
const KINDS = ["risk", "posture", "grant"] as const satisfies readonly SignalKind[];
/** Few names so that addresses repeat; enough that one subject can pass the list's 8 values. */
const NAMES = ["", "a", "b", "c", "d", "e"];

type Op =
  | { op: "put"; subject: number; kind: (typeof KINDS)[number]; name: string; ttl: number | undefined; usesLeft: number }
  | { op: "remove"; subject: number; kind: (typeof KINDS)[number]; name: string }
  | { op: "get"; subject: number; kind: (typeof KINDS)[number]; name: string }
  | { op: "list"; subject: number }
  | { op: "tick"; ms: number }
  | { op: "sweep"; subjects: number }
  | { op: "sweepAll" };

/** Mostly the first subject, so that one subject fills past a list and empties again. */
const subject = fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(SUBJECTS.length - 1) });
const kind = fc.constantFrom(...KINDS);
/** Mostly lasting values, so that a subject fills up; some expire within a few ticks. */
const ttl = fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 50 }) });
const name = fc.constantFrom(...NAMES);
const ops: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant("put" as const), subject, kind, name, ttl,  usesLeft: fc.nat(2) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("remove" as const), subject, kind, name }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("get" as const), subject, kind, name }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("list" as const), subject }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("tick" as const), ms: fc.integer({ min: 1, max: 30 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("sweep" as const), subjects: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("sweepAll" as const) }) },
);

function slot(kind: SignalKind, name: string): string {
  return `${kind}/${name}`;
}

function signalFor(op: Extract<Op, { op: "put" }>, id: string, nowMs: number): Signal {
  const base = { id, subject: SUBJECTS[op.subject]!, name: op.name, source: "model", observedAt: nowMs, ...(op.ttl === undefined ? {} : { expiresAt: nowMs + op.ttl }) };
  switch (op.kind) {
    case "risk": return { ...base, kind: "risk", data: { level: "low" } };
    case "posture": return { ...base, kind: "posture", data: { status: "compliant" } };
    case "grant": return { ...base, kind: "grant", data: { approvalId: id, scope: "svc", approver: "model", usesLeft: op.usesLeft } };
  }
}

class Model {
  readonly bySubject = new Map<string, Map<string, Signal>>();

  set(signal: Signal): Signal | undefined {
    let held = this.bySubject.get(signal.subject);
    if (held === undefined) {
      held = new Map();
      this.bySubject.set(signal.subject, held);
    }
    const previous = held.get(slot(signal.kind, signal.name));
    held.set(slot(signal.kind, signal.name), signal);
    return previous;
  }

  delete(subject: string, kind: SignalKind, name: string): Signal | undefined {
    const held = this.bySubject.get(subject);
    const previous = held?.get(slot(kind, name));
    if (held === undefined || previous === undefined) return undefined;
    held.delete(slot(kind, name));
    if (held.size === 0) this.bySubject.delete(subject);
    return previous;
  }

  values(): Signal[] {
    return [...this.bySubject.values()].flatMap((held) => [...held.values()]);
  }
}

/**
 * Drops from the model what the index dropped by itself (set's incremental sweep), after checking
 * that each was expired; returns how many.
 */
function followSweeps(index: SignalIndex, model: Model, nowMs: number): number {
  let dropped = 0;
  for (const value of model.values()) {
    if (index.held(value) === value) continue;
    expect(isExpired(value, nowMs) || (value.kind === "grant" && value.data.usesLeft <= 0)).toBe(true);
    model.delete(value.subject, value.kind, value.name);
    dropped++;
  }
  return dropped;
}

/** Event ids are unique per write, so a value is told by its id. */
const idOf = (signal: Signal | undefined): string => signal?.id ?? "-";

/**
 * Everything a reader can see, as one list of strings (one comparison per step). Reads start and
 * end with the subject the step touched: get() remembers the last subject read, so a write that
 * left that memory stale shows on the first read, and the next step starts with it remembered.
 */
function seen(read: {
  size: () => number; values: () => Iterable<Signal>; list: (subject: string) => Signal[];
  held: (subject: string, kind: SignalKind, name: string) => Signal | undefined;
  get: (subject: string, kind: SignalKind, name: string) => Signal | undefined;
}, touched: string): string[] {
  const out = [`size ${String(read.size())}`, `values ${[...read.values()].map(idOf).join(",")}`];
  for (const s of [touched, ...SUBJECTS, touched]) {
    out.push(`list ${s} ${read.list(s).map(idOf).join(",")}`);
    for (const k of KINDS) {
      for (const n of NAMES) out.push(`${s} ${k} ${n} held ${idOf(read.held(s, k, n))} get ${idOf(read.get(s, k, n))}`);
    }
  }
  return out;
}

function expectSame(index: SignalIndex, model: Model, nowMs: number, touched: string): void {
  const live = (value: Signal | undefined): Signal | undefined => (value === undefined || isExpired(value, nowMs) ? undefined : value);
  const expected = seen({
    size: () => model.values().length,
    values: () => model.values(),
    list: (s) => [...(model.bySubject.get(s)?.values() ?? [])].filter((v) => live(v) !== undefined),
    held: (s, k, n) => model.bySubject.get(s)?.get(slot(k, n)),
    get: (s, k, n) => live(model.bySubject.get(s)?.get(slot(k, n))),
  }, touched);
  const actual = seen({
    size: () => index.size(),
    values: () => index.values(),
    list: (s) => index.list(s, nowMs),
    held: (s, k, n) => index.held({ subject: s, kind: k, name: n }),
    get: (s, k, n) => index.get(s, k, n, nowMs),
  }, touched);
  expect(actual).toEqual(expected);
}

describe("SignalIndex against a Map of Maps", () => {
  it("answers every read as the model does after any sequence of writes, removes and sweeps", () => {
    fc.assert(fc.property(fc.array(ops, { maxLength: 120, size: "max" }), (sequence) => {
      let nowMs = T0;
      const index = new SignalIndex({ now: () => nowMs });
      const model = new Model();
      let written = 0;
      for (const step of sequence) {
        switch (step.op) {
          case "put": {
            const signal = signalFor(step, `e${String(written++)}`, nowMs);
            const expected = model.set(signal);
            expect(index.set(signal, false)).toBe(expected);
            break;
          }
          case "remove": {
            const expected = model.delete(SUBJECTS[step.subject]!, step.kind, step.name);
            expect(index.remove({ subject: SUBJECTS[step.subject]!, kind: step.kind, name: step.name })).toBe(expected);
            break;
          }
          case "get": {
            const value = model.bySubject.get(SUBJECTS[step.subject]!)?.get(slot(step.kind, step.name));
            expect(index.get(SUBJECTS[step.subject]!, step.kind, step.name, nowMs))
              .toBe(value === undefined || isExpired(value, nowMs) ? undefined : value);
            break;
          }
          case "list":
            expect(index.list(SUBJECTS[step.subject]!, nowMs).map((v) => v.id))
              .toEqual([...(model.bySubject.get(SUBJECTS[step.subject]!)?.values() ?? [])].filter((v) => !isExpired(v, nowMs)).map((v) => v.id));
            break;
          case "tick":
            nowMs += step.ms;
            break;
          case "sweep": {
            const removed = index.sweep(nowMs, step.subjects);
            expect(followSweeps(index, model, nowMs)).toBe(removed);
            break;
          }
          case "sweepAll": {
            const told: Signal[] = [];
            const removed = index.sweepAll(nowMs, (signal) => told.push(signal));
            expect(told).toHaveLength(removed);
            const expected = model.values().filter((v) => isExpired(v, nowMs) || (v.kind === "grant" && v.data.usesLeft <= 0));
            expect(new Set(told)).toEqual(new Set(expected));
            break;
          }
        }
        followSweeps(index, model, nowMs);
        expectSame(index, model, nowMs, "subject" in step ? SUBJECTS[step.subject]! : SUBJECTS[0]!);
      }
    }), { numRuns: 150 });
  });
});
