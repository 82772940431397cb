// The admin tokens file (--admin-tokens-file, VIGIL_ADMIN_TOKENS): who may call the admin API and
// what each holder may do. One token per line, `TOKEN NAME [SCOPE,SCOPE…]`; blank lines and lines
// starting with # are ignored. Errors name the line, never the token.

import { z } from "zod";
import { VigilError } from "../errors/index.js";

/**
 * What a token may do beyond reading. Every valid token may read signals and approvals (GET);
 * a line without scopes is a read-only token. `authzen:evaluate` is a policy enforcement point's:
 * it may ask the AuthZEN decision API (POST /access/v1/evaluation(s)).
 */
export const ADMIN_SCOPES = ["signals:write", "signals:reinstate", "approvals:decide", "behavior:write", "authzen:evaluate"] as const;
export type AdminScope = (typeof ADMIN_SCOPES)[number];

/** RFC 6750 b64token characters: what a Bearer credential may hold (no separators, no spaces). */
const TOKEN_CHARS = /^[A-Za-z0-9._~+/=-]+$/;
/** Holder names: audit lines and approver checks use them (e.g. admin, spiffe://td/ns/x/sa/y). */
const NAME_CHARS = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$/;
/** A word that looks like a scope may be quoted back in an error; anything else might be a secret. */
const SCOPE_LIKE = /^[a-z]{1,20}:[a-z_]{1,20}$/;

export const adminTokenSchema = z.strictObject({
  token: z.string()
    .min(16, "the token must be at least 16 characters")
    .max(4096, "the token must be at most 4096 characters")
    .regex(TOKEN_CHARS, "the token may hold only letters, digits and . _ ~ + / = -"),
  name: z.string()
    .min(1, "a token needs the NAME of its holder")
    .max(512, "the NAME must be at most 512 characters")
    .regex(NAME_CHARS, "the NAME may hold only letters, digits and . _ : / @ + - (no spaces), starting with a letter or digit"),
  scopes: z.array(z.enum(ADMIN_SCOPES)).default([]),
});
export type AdminToken = z.infer<typeof adminTokenSchema>;

/** The problem with one line, or its token; never quotes the token or an unknown field. */
export function parseAdminTokenLine(line: string): { token: AdminToken } | { problem: string } {
  const fields = line.trim().split(/\s+/);
  if (fields.length < 2) return { problem: "expected TOKEN NAME [SCOPES]: a token needs the NAME of its holder" };
  if (fields.length > 3) return { problem: `expected TOKEN NAME [SCOPES], found ${fields.length} fields (scopes are comma-separated, without spaces)` };
  const [token = "", name = "", scopeList] = fields;
  const scopes: AdminScope[] = [];
  if (scopeList !== undefined) {
    for (const scope of scopeList.split(",")) {
      if (!(ADMIN_SCOPES as readonly string[]).includes(scope)) {
        const shown = SCOPE_LIKE.test(scope) ? ` "${scope}"` : "";
        return { problem: `unknown scope${shown}: SCOPES is a comma-separated list of ${ADMIN_SCOPES.join(", ")}` };
      }
      if (!scopes.includes(scope as AdminScope)) scopes.push(scope as AdminScope);
    }
  }
  const parsed = adminTokenSchema.safeParse({ token, name, scopes });
  if (!parsed.success) return { problem: parsed.error.issues.map((issue) => issue.message).join("; ") };
  return { token: parsed.data };
}

/**
 * Parses the text of a tokens file. `origin` names it in errors ("tokens file /x", "VIGIL_ADMIN_TOKENS").
 * Throws VigilError("invalid_input") naming every bad line by number, and a token given twice.
 */
export function parseAdminTokens(text: string, origin: string): AdminToken[] {
  const tokens: AdminToken[] = [];
  const lineOf = new Map<string, number>();
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const number = index + 1;
    const result = parseAdminTokenLine(line);
    if ("problem" in result) {
      problems.push(`line ${number}: ${result.problem}`);
      return;
    }
    const earlier = lineOf.get(result.token.token);
    if (earlier !== undefined) {
      problems.push(`line ${number}: the same token as line ${earlier} (one token, one holder)`);
      return;
    }
    lineOf.set(result.token.token, number);
    tokens.push(result.token);
  });
  if (problems.length > 0) throw new VigilError("invalid_input", `${origin}: ${problems.join("; ")}`);
  return tokens;
}

/**
 * One admin token in a settings file: an object {token, name, scopes} or a tokens-file line.
 * Its errors never quote the value (it holds a secret).
 */
export const adminTokenEntrySchema = z.unknown().transform((value, ctx): AdminToken => {
  if (typeof value === "string") {
    const result = parseAdminTokenLine(value);
    if ("token" in result) return result.token;
    ctx.addIssue({ code: "custom", message: result.problem });
    return z.NEVER;
  }
  const parsed = adminTokenSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) ctx.addIssue({ code: "custom", message: issue.message, path: issue.path });
  return z.NEVER;
});
