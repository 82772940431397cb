// Bearer-token checks, one way for every endpoint that takes a shared secret (the admin API's
// tokens, the SSF push endpoint's): the secrets are held only as SHA-256 digests, and a presented
// token is compared with every one of them in constant time, without an early exit.

import { createHash, timingSafeEqual } from "node:crypto";

/** A secret held as its digest, with what presenting it grants. */
export interface HeldSecret<T> {
  readonly digest: Buffer;
  readonly value: T;
}

/** SHA-256 of a secret's UTF-8 bytes: what is held and compared instead of the secret. */
export function secretDigest(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}

/** Holds secrets as digests; the secrets themselves are not kept. */
export function holdSecrets<T>(entries: readonly (readonly [secret: string, value: T])[]): HeldSecret<T>[] {
  return entries.map(([secret, value]) => ({ digest: secretDigest(secret), value }));
}

/** The token of an `Authorization: Bearer <token>` header value, or undefined when there is none. */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  return /^Bearer +(\S+) *$/i.exec(authorization)?.[1];
}

/**
 * What the presented token grants, or undefined when it matches no held secret. Every held
 * digest is compared (equal lengths, constant time, no early exit), so the time taken says
 * nothing about which secret, or how much of one, matched.
 */
export function matchSecret<T>(presented: string, held: readonly HeldSecret<T>[]): T | undefined {
  const digest = secretDigest(presented);
  let found: T | undefined;
  for (const entry of held) {
    if (timingSafeEqual(entry.digest, digest)) found = entry.value;
  }
  return found;
}
