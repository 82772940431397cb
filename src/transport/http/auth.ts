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
    const presented = digest(match[1]);
    let found: AdminPrincipal | undefined;
    for (const entry of this.#entries) {
      if (timingSafeEqual(entry.digest, presented)) found = entry.principal;
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
