// Console sessions: an admin token is exchanged once, at sign-in, for a session cookie. The
// cookie holds no token: a session id, the token's key (a digest prefix that names the token
// without revealing it), when it was issued and last seen, all signed with the session key
// (HMAC-SHA256). Any replica holding the same key (console.sessionKeyFile) accepts it, so the
// console works behind a Service. A session ends on sign-out, after idleTimeout without a
// request, after maxSession in all, or as soon as its token leaves the tokens file.
// Sign-out is remembered by the instance that signed out until the session's maximum age.

import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export interface SessionOptions {
  /** HMAC key, at least 32 bytes. */
  key: Buffer;
  idleTimeoutMs: number;
  maxSessionMs: number;
  now: () => number;
}

export interface Session {
  /** Random id; names the session in sign-out and CSRF tokens. */
  sid: string;
  /** The admin token's key (AdminAuth.keyOf), resolved to a holder on every request. */
  tokenKey: string;
  issuedAt: number;
  seenAt: number;
}

export interface SessionCodec {
  /** A new session for a token key, and its cookie value. */
  issue(tokenKey: string): { session: Session; cookie: string };
  /** The session a cookie value carries, when its signature holds and it has not ended. */
  read(cookie: string | undefined): Session | undefined;
  /** The session's cookie with seenAt moved to now (idle expiry slides with use). */
  touch(session: Session): string;
  /** The CSRF token every form of this session must carry. */
  csrfToken(session: Session): string;
  /** True when `token` is this session's CSRF token (compared in constant time). */
  checkCsrf(session: Session, token: string | undefined): boolean;
  /** Ends a session here (sign-out). */
  revoke(session: Session): void;
}

/** Most signed-out sessions remembered (each until its maximum age); past it, the oldest go. */
const MAX_REVOKED = 10_000;
const SID = /^[A-Za-z0-9_-]{22}$/;
const KEY = /^[0-9a-f]{32}$/;

export function createSessionCodec(options: SessionOptions): SessionCodec {
  if (options.key.length < 32) throw new Error("the console session key must be at least 32 bytes");
  const { key, now } = options;
  const revoked = new Map<string, number>();

  const mac = (text: string): Buffer => createHmac("sha256", key).update(text).digest();
  const seal = (session: Session): string => {
    const payload = Buffer.from(JSON.stringify([1, session.sid, session.tokenKey, session.issuedAt, session.seenAt])).toString("base64url");
    return `${payload}.${mac(`session|${payload}`).toString("base64url")}`;
  };

  function sweep(at: number): void {
    for (const [sid, until] of revoked) {
      if (until > at && revoked.size <= MAX_REVOKED) break;
      revoked.delete(sid);
    }
  }

  return {
    issue(tokenKey) {
      const at = now();
      const session: Session = { sid: randomBytes(16).toString("base64url"), tokenKey, issuedAt: at, seenAt: at };
      return { session, cookie: seal(session) };
    },

    read(cookie) {
      if (cookie === undefined || cookie.length > 512) return undefined;
      const dot = cookie.indexOf(".");
      if (dot <= 0) return undefined;
      const payload = cookie.slice(0, dot);
      const signature = Buffer.from(cookie.slice(dot + 1), "base64url");
      const expected = mac(`session|${payload}`);
      if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) return undefined;
      let fields: unknown;
      try {
        fields = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
      } catch {
        return undefined;
      }
      if (!Array.isArray(fields) || fields.length !== 5 || fields[0] !== 1) return undefined;
      const [, sid, tokenKey, issuedAt, seenAt] = fields as unknown[];
      if (typeof sid !== "string" || !SID.test(sid) || typeof tokenKey !== "string" || !KEY.test(tokenKey)) return undefined;
      if (typeof issuedAt !== "number" || typeof seenAt !== "number") return undefined;
      const at = now();
      if (at - seenAt > options.idleTimeoutMs || at - issuedAt > options.maxSessionMs || seenAt > at + 60_000) return undefined;
      if (revoked.has(sid)) return undefined;
      return { sid, tokenKey, issuedAt, seenAt };
    },

    touch(session) {
      return seal({ ...session, seenAt: now() });
    },

    csrfToken(session) {
      return mac(`csrf|${session.sid}`).toString("base64url");
    },

    checkCsrf(session, token) {
      if (token === undefined) return false;
      const given = Buffer.from(token, "base64url");
      const expected = mac(`csrf|${session.sid}`);
      return given.length === expected.length && timingSafeEqual(given, expected);
    },

    revoke(session) {
      const at = now();
      sweep(at);
      revoked.set(session.sid, session.issuedAt + options.maxSessionMs);
    },
  };
}

/** A fresh random session key (an instance without console.sessionKeyFile: sessions end with it). */
export function randomSessionKey(): Buffer {
  return randomBytes(32);
}

/** Parses a Cookie header into name → value (first wins). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (header === undefined) return out;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}
