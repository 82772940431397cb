// Bearer-token authentication and scopes for the admin API. Tokens come from settings
// (config/admin-tokens.ts); they are kept only as SHA-256 digests and compared in constant time.
// A valid token may read; writing signals, lifting revocations and deciding approvals each need
// their scope.

import { createHash, timingSafeEqual } from "node:crypto";
import type { AdminScope, AdminToken } from "../../config/index.js";
import { VigilError } from "../../errors/index.js";

export interface AdminPrincipal {
  /** Who holds the token (audit lines, approver checks, the `admin:<name>` source); never the token. */
  name: string;
  scopes: readonly AdminScope[];
}

interface TokenEntry { digest: Buffer; principal: AdminPrincipal }

/** Bytes of a token's digest that make its key (128 bits: no two configured tokens share one). */
const KEY_BYTES = 16;

function keyOf(tokenDigest: Buffer): string {
  return tokenDigest.subarray(0, KEY_BYTES).toString("hex");
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

export class AdminAuth {
  readonly #entries: TokenEntry[];

  constructor(tokens: readonly AdminToken[]) {
    this.#entries = tokens.map((token) => ({
      digest: digest(token.token),
      principal: Object.freeze({ name: token.name, scopes: Object.freeze([...token.scopes]) }),
    }));
  }

  get configured(): boolean {
    return this.#entries.length > 0;
  }

  /** Names of holders whose token carries no scope (read-only), to say so at start. */
  get readOnlyNames(): string[] {
    return this.#entries.filter((e) => e.principal.scopes.length === 0).map((e) => e.principal.name);
  }

  /** The principal for an Authorization header value, or undefined. Every entry is compared. */
  authenticate(authorization: string | undefined): AdminPrincipal | undefined {
    if (authorization === undefined) return undefined;
    const match = /^Bearer +(\S+) *$/i.exec(authorization);
    if (match?.[1] === undefined) return undefined;
    return this.#find(digest(match[1]))?.principal;
  }

  /**
   * The key of a valid token (the console's session names its token by it), or undefined. The
   * key is a prefix of the token's SHA-256 digest: it names the token without revealing it.
   */
  keyOf(token: string): string | undefined {
    const entry = this.#find(digest(token));
    return entry === undefined ? undefined : keyOf(entry.digest);
  }

  /** The holder of the token a key names, while that token is still configured. */
  byKey(key: string): AdminPrincipal | undefined {
    const presented = Buffer.from(key, "hex");
    if (presented.length !== KEY_BYTES) return undefined;
    let found: AdminPrincipal | undefined;
    for (const entry of this.#entries) {
      if (timingSafeEqual(entry.digest.subarray(0, KEY_BYTES), presented)) found = entry.principal;
    }
    return found;
  }

  /** The entry whose digest matches; every entry is compared, so the time does not say which. */
  #find(presented: Buffer): TokenEntry | undefined {
    let found: TokenEntry | undefined;
    for (const entry of this.#entries) {
      if (timingSafeEqual(entry.digest, presented)) found = entry;
    }
    return found;
  }
}

/** Throws VigilError("forbidden") naming the missing scope when the principal lacks it. */
export function requireScope(principal: AdminPrincipal, scope: AdminScope): void {
  if (principal.scopes.includes(scope)) return;
  throw new VigilError(
    "forbidden",
    `the token of ${principal.name} lacks the scope ${scope} (add it to the token's line in the admin tokens file)`,
  );
}
