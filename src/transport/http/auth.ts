// Bearer-token authentication for the admin API. Tokens come from settings as "token" or
// "token principal" lines; they are kept only as SHA-256 digests and compared in constant time.

import { createHash, timingSafeEqual } from "node:crypto";

export interface AdminPrincipal {
  /** Who the token belongs to (for audit lines and approver checks); never the token. */
  name: string;
}

interface TokenEntry { digest: Buffer; name: string }

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

export class AdminAuth {
  readonly #entries: TokenEntry[];

  constructor(tokens: readonly string[]) {
    this.#entries = tokens.map((line) => {
      const [token = "", ...rest] = line.trim().split(/\s+/);
      const name = rest.join(" ") || `admin:${digest(token).toString("hex").slice(0, 12)}`;
      return { digest: digest(token), name };
    });
  }

  get configured(): boolean {
    return this.#entries.length > 0;
  }

  /** The principal for an Authorization header value, or undefined. Every entry is compared. */
  authenticate(authorization: string | undefined): AdminPrincipal | undefined {
    if (authorization === undefined) return undefined;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match?.[1] === undefined) return undefined;
    const presented = digest(match[1]);
    let found: AdminPrincipal | undefined;
    for (const entry of this.#entries) {
      if (timingSafeEqual(entry.digest, presented)) found = { name: entry.name };
    }
    return found;
  }
}
