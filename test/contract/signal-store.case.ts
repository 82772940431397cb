// The SignalStore contract: every store (embedded, memory-only, NATS) runs these cases, so the
// decision pipeline can rely on one behaviour whatever the deployment.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { VigilError } from "../../src/errors/index.js";
import type { Signal, SignalInput } from "../../src/signals/index.js";
import type { SignalStore } from "../../src/signals/index.js";

export interface SignalStoreHarness {
  store: SignalStore;
  /** Closes the store and removes whatever it created (files, buckets). */
  dispose(): Promise<void>;
}

/** Builds a fresh, empty store reading time from `now`. The suite awaits ready() itself. */
export type SignalStoreFactory = (now: () => number) => Promise<SignalStoreHarness>;

const T0 = 1_750_000_000_000;
const AGENT = "spiffe://example.org/ns/agents/sa/planner";
const OTHER = "spiffe://example.org/ns/ci/sa/release";
const KEY = "sha256:6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b";

let sequence = 0;
function nextId(): string {
  sequence++;
  return `evt-${sequence}`;
}

function risk(level: "none" | "low" | "medium" | "high" | "critical", observedAt: number, extra: Partial<SignalInput> = {}): SignalInput {
  return { id: nextId(), kind: "risk", subject: AGENT, source: "scanner", observedAt, data: { level }, ...extra } as SignalInput;
}

function revocation(revoked: boolean, observedAt: number): SignalInput {
  return {
    id: nextId(), kind: "revocation", subject: KEY, source: "secret-scanner", observedAt,
    data: { revoked, reason: revoked ? "leaked in a public repo" : "rotated", by: "scanner" },
  };
}

type CredentialState = "active" | "expired" | "leaked" | "compromised" | "revoked";

function credential(state: CredentialState, observedAt: number, extra: Partial<SignalInput> = {}): SignalInput {
  return { id: nextId(), kind: "credential", subject: KEY, source: "secret-scanner", observedAt, data: { state }, ...extra } as SignalInput;
}

/** A raw API key written where its fingerprint belongs: it must never come back in an answer. */
const RAW_KEY = "demo-api-key-K1-0001";

function grant(usesLeft: number, observedAt: number, extra: Partial<SignalInput> = {}): SignalInput {
  return {
    id: nextId(), kind: "grant", subject: AGENT, name: "apr-1", source: "approvals", observedAt,
    data: { approvalId: "apr-1", scope: "deploy:prod", approver: "spiffe://example.org/human/alice", usesLeft },
    ...extra,
  } as SignalInput;
}

async function eventually(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function rejection(promise: Promise<unknown>): Promise<VigilError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(VigilError);
    return error as VigilError;
  }
  throw new Error("expected a rejection");
}

export function runSignalStoreContract(name: string, factory: SignalStoreFactory): void {
  describe(`SignalStore contract: ${name}`, () => {
    let clock = T0;
    let harness: SignalStoreHarness;
    let store: SignalStore;

    beforeEach(async () => {
      clock = T0;
      harness = await factory(() => clock);
      store = harness.store;
      await store.ready();
    });

    afterEach(async () => {
      await harness.dispose();
    });

    it("is ready and empty when new", () => {
      expect(store.isReady).toBe(true);
      expect(store.size()).toBe(0);
      expect(store.get(AGENT, "risk")).toBeUndefined();
      expect(store.list(AGENT)).toEqual([]);
    });

    it("returns a written signal by key and lists it for its subject", async () => {
      const result = await store.put(risk("high", T0));
      expect(result.status).toBe("written");
      expect(result.signal).toMatchObject({ kind: "risk", subject: AGENT, name: "", data: { level: "high" } });
      expect(store.get(AGENT, "risk")?.data.level).toBe("high");
      expect(store.get(AGENT, "risk", "")?.data.level).toBe("high");
      expect(store.get(OTHER, "risk")).toBeUndefined();
      expect(store.list(AGENT).map((s) => s.kind)).toEqual(["risk"]);
      expect(store.size()).toBe(1);
    });

    it("keeps one value per subject, kind and name", async () => {
      await store.put(risk("low", T0));
      await store.put(grant(1, T0));
      await store.put(grant(2, T0, { name: "apr-2" }));
      await store.put(risk("medium", T0, { subject: OTHER }));
      expect(store.size()).toBe(4);
      expect(store.list(AGENT).map((s) => `${s.kind}/${s.name}`).sort()).toEqual(["grant/apr-1", "grant/apr-2", "risk/"]);
      expect(store.get(AGENT, "grant", "apr-2")?.data.usesLeft).toBe(2);
      expect(store.list(OTHER)).toHaveLength(1);
    });

    it("lets the latest observation win and reports an older one as stale", async () => {
      await store.put(risk("low", T0));
      const newer = await store.put(risk("critical", T0 + 10));
      expect(newer.status).toBe("written");
      const older = await store.put(risk("none", T0 + 5));
      expect(older.status).toBe("stale");
      expect(older.signal.id).toBe(newer.signal.id);
      expect(store.get(AGENT, "risk")?.data.level).toBe("critical");
      expect(store.size()).toBe(1);
    });

    it("treats a retried event id as a duplicate and changes nothing", async () => {
      const first = risk("high", T0);
      await store.put(first);
      const retried = await store.put({ ...first, data: { level: "none" } } as SignalInput);
      expect(retried.status).toBe("duplicate");
      expect(retried.signal.data).toEqual({ level: "high" });
      expect(store.get(AGENT, "risk")?.data.level).toBe("high");
    });

    it("remembers an event id after its value was superseded", async () => {
      const first = risk("high", T0);
      await store.put(first);
      await store.put(risk("low", T0 + 10));
      expect((await store.put(first)).status).toBe("duplicate");
      expect(store.get(AGENT, "risk")?.data.level).toBe("low");
    });

    it("hides a signal once it has expired", async () => {
      await store.put(risk("critical", T0, { expiresAt: T0 + 1_000 }));
      await store.put(grant(1, T0));
      expect(store.get(AGENT, "risk")?.data.level).toBe("critical");
      clock = T0 + 999;
      expect(store.get(AGENT, "risk")).toBeDefined();
      clock = T0 + 1_000;
      expect(store.get(AGENT, "risk")).toBeUndefined();
      expect(store.list(AGENT).map((s) => s.kind)).toEqual(["grant"]);
    });

    it("reads against an explicit time when asked (the Check path's decision time)", async () => {
      await store.put(risk("high", T0, { expiresAt: T0 + 1_000 }));
      expect(store.get(AGENT, "risk", "", T0 + 999)?.data.level).toBe("high");
      expect(store.get(AGENT, "risk", "", T0 + 1_000)).toBeUndefined();
    });

    it("refuses to lift a revocation by put, keeps it revoked, and lets reinstate lift it", async () => {
      await store.put(revocation(true, T0));
      const lift = await rejection(store.put(revocation(false, T0 + 10)));
      expect(lift.code).toBe("conflict");
      expect(store.get(KEY, "revocation")?.data.revoked).toBe(true);

      clock = T0 + 20;
      const reinstated = await store.reinstate(KEY, "spiffe://example.org/human/bob", "false positive");
      expect(reinstated.status).toBe("written");
      expect(store.get(KEY, "revocation")?.data).toEqual({
        revoked: false, reason: "false positive", by: "spiffe://example.org/human/bob",
      });

      // Revoking again is an ordinary write.
      expect((await store.put(revocation(true, T0 + 30))).status).toBe("written");
      expect(store.get(KEY, "revocation")?.data.revoked).toBe(true);
    });

    it("never lets a later write soften a leaked, compromised or revoked credential", async () => {
      const credential = (state: "active" | "leaked" | "compromised" | "revoked", observedAt: number): SignalInput => ({
        id: nextId(), kind: "credential", subject: KEY, source: "secret-scanner", observedAt, data: { state },
      });
      await store.put(credential("active", T0));
      expect((await store.put(credential("leaked", T0 + 10))).status).toBe("written");
      const soften = await rejection(store.put(credential("active", T0 + 20)));
      expect(soften.code).toBe("conflict");
      expect(store.get(KEY, "credential")?.data.state).toBe("leaked");
      // Hardening further is an ordinary write.
      expect((await store.put(credential("revoked", T0 + 30))).status).toBe("written");
      expect(store.get(KEY, "credential")?.data.state).toBe("revoked");
    });

    it("reinstates even when the revocation was observed in the future", async () => {
      await store.put(revocation(true, T0 + 60_000));
      const reinstated = await store.reinstate(KEY, "bob", "clock skew on the scanner");
      expect(reinstated.status).toBe("written");
      expect(store.get(KEY, "revocation")?.data.revoked).toBe(false);
    });

    it("validates a reinstate like any revocation write", async () => {
      await store.put(revocation(true, T0));
      expect((await rejection(store.reinstate(KEY, "bob", "x".repeat(5_000)))).code).toBe("invalid_input");
      expect((await rejection(store.reinstate(RAW_KEY, "bob", "typo"))).message).not.toContain(RAW_KEY);
      expect(store.get(KEY, "revocation")?.data.revoked).toBe(true);
    });

    it("answers reinstate of a subject that is not revoked as a duplicate, and of an unknown one as not_found", async () => {
      expect((await rejection(store.reinstate(KEY, "bob", "nothing to lift"))).code).toBe("not_found");
      await store.put(revocation(false, T0));
      expect((await store.reinstate(KEY, "bob", "already active")).status).toBe("duplicate");
    });

    it("counts grant uses down to zero, then refuses", async () => {
      await store.put(grant(2, T0));
      expect(await store.useGrant(AGENT, "apr-1", clock)).toBe(true);
      expect(store.get(AGENT, "grant", "apr-1")?.data.usesLeft).toBe(1);
      expect(await store.useGrant(AGENT, "apr-1", clock)).toBe(true);
      expect(store.get(AGENT, "grant", "apr-1")?.data.usesLeft).toBe(0);
      expect(await store.useGrant(AGENT, "apr-1", clock)).toBe(false);
      expect(store.get(AGENT, "grant", "apr-1")?.data.usesLeft).toBe(0);
    });

    it("refuses a missing or expired grant", async () => {
      expect(await store.useGrant(AGENT, "apr-1", clock)).toBe(false);
      await store.put(grant(5, T0, { expiresAt: T0 + 100 }));
      expect(await store.useGrant(AGENT, "apr-1", T0 + 100)).toBe(false);
      expect(await store.useGrant(AGENT, "other", T0)).toBe(false);
    });

    it("sweeps expired values and spent grants, never a revocation in force", async () => {
      await store.put(risk("high", T0, { expiresAt: T0 + 1_000 }));
      await store.put(grant(1, T0));
      await store.put(revocation(true, T0));
      await store.put({ ...risk("low", T0), subject: "spiffe://example.org/ns/ci/sa/other" });
      expect(store.sweepNow()).toBe(0);
      expect(await store.useGrant(AGENT, "apr-1", clock)).toBe(true);
      clock = T0 + 1_000;
      expect(store.sweepNow()).toBe(2);
      expect(store.size()).toBe(2);
      expect(store.get(KEY, "revocation")?.data.revoked).toBe(true);
      expect(store.list(AGENT)).toEqual([]);
      expect(await store.useGrant(AGENT, "apr-1", clock)).toBe(false);
    });

    it("does not let a retried grant write reset its uses", async () => {
      const approved = grant(1, T0);
      await store.put(approved);
      expect(await store.useGrant(AGENT, "apr-1", clock)).toBe(true);
      expect((await store.put(approved)).status).toBe("duplicate");
      expect(await store.useGrant(AGENT, "apr-1", clock)).toBe(false);
    });

    it("tells subscribers about every applied change, and stops when unsubscribed", async () => {
      const seen: Signal[] = [];
      const unsubscribe = store.subscribe((signal) => seen.push(signal));
      await store.put(risk("high", T0));
      await store.put(risk("low", T0 - 10));
      await store.put(grant(1, T0));
      await store.useGrant(AGENT, "apr-1", clock);
      await eventually(() => seen.length >= 3);
      expect(seen.map((s) => s.kind)).toEqual(["risk", "grant", "grant"]);
      expect(seen.at(-1)).toMatchObject({ kind: "grant", data: { usesLeft: 0 } });
      unsubscribe();
      await store.put(risk("critical", T0 + 1));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(seen).toHaveLength(3);
    });

    it("keeps working when a subscriber throws", async () => {
      store.subscribe(() => {
        throw new Error("listener bug");
      });
      expect((await store.put(risk("high", T0))).status).toBe("written");
      expect(store.get(AGENT, "risk")?.data.level).toBe("high");
    });

    // Terminal credential states, each pair tried in both timestamp orders: the held state first,
    // then a write dated before and one dated after it.
    it.each([
      // held,         written,        expected status of the write,   state kept
      ["active", "compromised", "written", "compromised"],
      ["active", "leaked", "written", "leaked"],
      ["expired", "revoked", "written", "revoked"],
      ["leaked", "compromised", "written", "compromised"],
      ["compromised", "revoked", "written", "revoked"],
      ["revoked", "leaked", "stale", "revoked"],
      ["compromised", "leaked", "stale", "compromised"],
      ["leaked", "active", "conflict", "leaked"],
      ["compromised", "expired", "conflict", "compromised"],
      ["revoked", "active", "conflict", "revoked"],
      ["active", "expired", "latest", "latest"],
    ] as const)("holds %s, then a write of %s dated before and after it ends %s", async (held, written, outcome, kept) => {
      for (const offset of [-60_000, 60_000]) {
        await harness.dispose();
        harness = await factory(() => clock);
        store = harness.store;
        await store.ready();
        await store.put(credential(held, T0));
        const write = store.put(credential(written, T0 + offset));
        if (outcome === "conflict") {
          expect((await rejection(write)).code).toBe("conflict");
        } else if (outcome === "latest") {
          expect((await write).status).toBe(offset < 0 ? "stale" : "written");
        } else {
          expect((await write).status).toBe(outcome);
        }
        const expected = kept === "latest" ? (offset < 0 ? held : written) : kept;
        expect(store.get(KEY, "credential")?.data.state, `written ${offset < 0 ? "before" : "after"}`).toBe(expected);
      }
    });

    it("applies a revocation dated before a reinstatement: revocations win whatever their time", async () => {
      await store.put(revocation(true, T0));
      clock = T0 + 1_000;
      await store.reinstate(KEY, "bob", "false positive");
      // A late delivery of an earlier revocation (an SSF retry, Vigil's own queued revocation).
      const late = await store.put(revocation(true, T0 + 500));
      expect(late.status).toBe("written");
      expect(store.get(KEY, "revocation")?.data.revoked).toBe(true);
    });

    it("refuses an expiry on a revocation or a terminal credential, and keeps the revocation held", async () => {
      await store.put(revocation(true, T0));
      clock = T0 + 10_000;
      const lift = await rejection(store.put({ ...revocation(true, T0 + 5_000), expiresAt: T0 + 6_000 }));
      expect(lift.code).toBe("invalid_input");
      expect(lift.message).toContain("reinstate");
      const lapse = await rejection(store.put({ ...revocation(false, T0 + 5_000), expiresAt: T0 + 6_000 }));
      expect(lapse.code).toBe("invalid_input");
      expect(store.get(KEY, "revocation")?.data.revoked).toBe(true);
      expect((await rejection(store.put(credential("leaked", T0, { expiresAt: T0 + 1 })))).code).toBe("invalid_input");
      // A live credential state may still lapse.
      expect((await store.put(credential("active", T0, { expiresAt: T0 + 20_000 }))).status).toBe("written");
    });

    it("refuses an observedAt beyond the allowed clock skew, and takes one within it", async () => {
      const ahead = await rejection(store.put(risk("none", T0 + 3_600_000)));
      expect(ahead.code).toBe("invalid_input");
      expect(ahead.message).toContain("observedAt");
      expect(store.size()).toBe(0);
      expect((await store.put(risk("high", T0 + 60_000))).status).toBe("written");
      // Nothing dated far ahead was taken, so a revocation written now is not "stale".
      await rejection(store.put({ ...revocation(false, T0 + 86_400_000) }));
      expect((await store.put(revocation(true, T0))).status).toBe("written");
      expect(store.get(KEY, "revocation")?.data.revoked).toBe(true);
    });

    it.each([
      ["risk", "bot", { level: "high" }],
      ["risk", "spiffe://example.org", { level: "high" }],
      ["risk", KEY, { level: "high" }],
      ["posture", "SPIFFE://example.org/ns/a/sa/b", { status: "compliant" }],
      ["behavior", "spiffe://example.org/ns/a/../b", { anomalies: [] }],
      ["grant", "https://example.org/ns/a", { approvalId: "a", scope: "s", approver: "b", usesLeft: 1 }],
      ["credential", RAW_KEY, { state: "active" }],
      ["credential", AGENT, { state: "leaked" }],
      ["credential", KEY.toUpperCase().replace("SHA256", "sha256"), { state: "leaked" }],
      ["credential", `${KEY}0`, { state: "leaked" }],
      ["revocation", RAW_KEY, { revoked: true, reason: "r", by: "b" }],
      ["revocation", "bot", { revoked: true, reason: "r", by: "b" }],
      ["attestation", "sha256:abc", { signer: AGENT, signedAt: T0 }],
      ["attestation", AGENT, { signer: AGENT, signedAt: T0 }],
    ])("refuses a %s signal for subject %s without echoing it", async (kind, subject, data) => {
      const error = await rejection(store.put({ id: "x", kind, subject, source: "s", observedAt: T0, data } as SignalInput));
      expect(error.code).toBe("invalid_input");
      expect(error.message).toContain("subject");
      expect(error.message).toContain(`got ${subject.length} characters`);
      if (subject.length > 8) expect(error.message).not.toContain(subject);
      expect(error.message).not.toContain("K1-0001");
      expect(store.size()).toBe(0);
    });

    it.each([
      ["risk", AGENT, { level: "high" }],
      ["credential", KEY, { state: "active" }],
      ["revocation", AGENT, { revoked: true, reason: "r", by: "b" }],
      ["revocation", KEY, { revoked: true, reason: "r", by: "b" }],
      ["attestation", KEY, { signer: AGENT, signedAt: T0 }],
    ])("takes a %s signal for subject %s", async (kind, subject, data) => {
      const result = await store.put({ id: nextId(), kind, subject, source: "s", observedAt: T0, data } as SignalInput);
      expect(result.status).toBe("written");
    });

    it.each([
      ["an unknown kind", { id: "x", kind: "mood", subject: AGENT, source: "s", observedAt: T0, data: {} }, "kind"],
      ["a risk level outside the scale", { id: "x", kind: "risk", subject: AGENT, source: "s", observedAt: T0, data: { level: "severe" } }, "data.level"],
      ["a missing id", { kind: "risk", subject: AGENT, source: "s", observedAt: T0, data: { level: "low" } }, "id"],
      ["an empty subject", { id: "x", kind: "risk", subject: "", source: "s", observedAt: T0, data: { level: "low" } }, "subject"],
      ["a negative time", { id: "x", kind: "risk", subject: AGENT, source: "s", observedAt: -1, data: { level: "low" } }, "observedAt"],
      ["an unknown field", { id: "x", kind: "risk", subject: AGENT, source: "s", observedAt: T0, data: { level: "low" }, extra: 1 }, "(root)"],
      ["negative grant uses", { id: "x", kind: "grant", subject: AGENT, source: "s", observedAt: T0, data: { approvalId: "a", scope: "s", approver: "b", usesLeft: -1 } }, "data.usesLeft"],
    ])("refuses %s as invalid_input naming the path", async (_label, input, path) => {
      const error = await rejection(store.put(input as SignalInput));
      expect(error.code).toBe("invalid_input");
      expect(error.message).toContain(path);
      expect(store.size()).toBe(0);
    });
  });
}
