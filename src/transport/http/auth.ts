// Bearer-token authentication and scopes for the admin API. Tokens come from settings
// (config/admin-tokens.ts); they are kept only as SHA-256 digests and compared in constant time.
// A valid token may read; writing signals, lifting revocations and deciding approvals each need
// their scope.

import type { AdminScope, AdminToken } from "../../config/index.js";
import { VigilError } from "../../errors/index.js";
import { timingSafeEqual } from "node:crypto";
import { bearerToken, holdSecrets, matchSecret, secretDigest, type HeldSecret } from "../../util/bearer.js";

/** Bytes of a token's digest that make its key (128 bits: no two configured tokens share one). */
const KEY_BYTES = 16;

export interface AdminPrincipal {
  /** Who holds the token (audit lines, approver checks, the `admin:<name>` source); never the token. */
  name: string;
  scopes: readonly AdminScope[];
}

export class AdminAuth {
  readonly #entries: HeldSecret<AdminPrincipal>[];

  constructor(tokens: readonly AdminToken[]) {
    this.#entries = holdSecrets(tokens.map((token) => [
      token.token,
      Object.freeze({ name: token.name, scopes: Object.freeze([...token.scopes]) }),
    ] as const));
  }

  get configured(): boolean {
    return this.#entries.length > 0;
  }

  /** Names of holders whose token carries no scope (read-only), to say so at start. */
  get readOnlyNames(): string[] {
    return this.#entries.filter((e) => e.value.scopes.length === 0).map((e) => e.value.name);
  }

  /** The principal for an Authorization header value, or undefined. Every entry is compared. */
  authenticate(authorization: string | undefined): AdminPrincipal | undefined {
    const presented = bearerToken(authorization);
    return presented === undefined ? undefined : matchSecret(presented, this.#entries);
  }

  /**
   * The key of a valid token (a console session names its token by it), or undefined. The key
   * is a prefix of the token's SHA-256 digest: it names the token without revealing it.
   */
  keyOf(token: string): string | undefined {
    if (matchSecret(token, this.#entries) === undefined) return undefined;
    return secretDigest(token).subarray(0, KEY_BYTES).toString("hex");
  }

  /** The holder of the token a key names, while that token is still configured. Every entry is compared. */
  byKey(key: string): AdminPrincipal | undefined {
    const presented = Buffer.from(key, "hex");
    if (presented.length !== KEY_BYTES) return undefined;
    let found: AdminPrincipal | undefined;
    for (const entry of this.#entries) {
      if (timingSafeEqual(entry.digest.subarray(0, KEY_BYTES), presented)) found = entry.value;
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
