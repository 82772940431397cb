// Console sessions: signed, expiring, revocable at sign-out, and carrying no token.

import { describe, expect, it } from "vitest";
import { createSessionCodec, parseCookies } from "../../src/transport/console/session.js";

const KEY = Buffer.alloc(32, 7);
const TOKEN_KEY = "0123456789abcdef0123456789abcdef";

function codec(clock: { now: number }, key = KEY) {
  return createSessionCodec({ key, idleTimeoutMs: 15 * 60_000, maxSessionMs: 8 * 3_600_000, now: () => clock.now });
}

describe("session cookies", () => {
  it("reads back what it issued, and nothing signed with another key", () => {
    const clock = { now: 1_000_000 };
    const { session, cookie } = codec(clock).issue(TOKEN_KEY);
    expect(codec(clock).read(cookie)).toEqual(session);
    expect(codec(clock, Buffer.alloc(32, 8)).read(cookie)).toBeUndefined();
  });

  it.each([
    { name: "idle past the timeout", advance: 15 * 60_000 + 1, touch: false, valid: false },
    { name: "idle just within the timeout", advance: 15 * 60_000, touch: false, valid: true },
    { name: "in use, but past the maximum age", advance: 8 * 3_600_000 + 1, touch: true, valid: false },
  ])("$name → valid: $valid", ({ advance, touch, valid }) => {
    const clock = { now: 1_000_000 };
    const sessions = codec(clock);
    let { cookie } = sessions.issue(TOKEN_KEY);
    if (touch) {
      // Used every 10 minutes up to the end: idle expiry never triggers, the maximum age does.
      for (let t = 0; t < advance; t += 10 * 60_000) {
        clock.now += Math.min(10 * 60_000, advance - t);
        const session = sessions.read(cookie);
        if (session === undefined) break;
        cookie = sessions.touch(session);
      }
    } else {
      clock.now += advance;
    }
    expect(sessions.read(cookie) !== undefined).toBe(valid);
  });

  it("ends a session at sign-out, for that session only", () => {
    const clock = { now: 1_000_000 };
    const sessions = codec(clock);
    const a = sessions.issue(TOKEN_KEY);
    const b = sessions.issue(TOKEN_KEY);
    sessions.revoke(a.session);
    expect(sessions.read(a.cookie)).toBeUndefined();
    expect(sessions.read(b.cookie)).toBeDefined();
  });

  it("ties the CSRF token to the session", () => {
    const clock = { now: 1_000_000 };
    const sessions = codec(clock);
    const a = sessions.issue(TOKEN_KEY).session;
    const b = sessions.issue(TOKEN_KEY).session;
    expect(sessions.checkCsrf(a, sessions.csrfToken(a))).toBe(true);
    expect(sessions.checkCsrf(a, sessions.csrfToken(b))).toBe(false);
    expect(sessions.checkCsrf(a, undefined)).toBe(false);
    expect(sessions.checkCsrf(a, "")).toBe(false);
  });

  it.each(["", ".", "x.y", "e30.", "a".repeat(600), "W1tdXQ.AAAA", `${Buffer.from("[1,\"s\",\"k\",0,0]").toString("base64url")}.AAAA`])(
    "refuses garbage %#", (cookie) => {
      expect(codec({ now: 1 }).read(cookie)).toBeUndefined();
    },
  );

  it("refuses a key shorter than 32 bytes", () => {
    expect(() => codec({ now: 1 }, Buffer.alloc(31))).toThrow(/32 bytes/);
  });

  it("parses a Cookie header, first value wins", () => {
    expect(parseCookies("a=1; vigil_console=x.y; a=2; junk")).toEqual(new Map([["a", "1"], ["vigil_console", "x.y"]]));
    expect(parseCookies(undefined).size).toBe(0);
  });
});
