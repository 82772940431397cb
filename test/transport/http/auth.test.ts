// Who the admin API believes a caller is: the Authorization header against the configured tokens.
// A table of the header shapes a client, a proxy or an attacker may send; anything but one
// well-formed bearer token of a configured holder is nobody (401), never an error (500).

import { describe, expect, it } from "vitest";
import { AdminAuth, requireScope } from "../../../src/transport/http/auth.js";
import type { AdminToken } from "../../../src/config/index.js";

const OPS: AdminToken = { token: "ops-token-0123456789abcdef", name: "ops", scopes: ["signals:write"] };
const READER: AdminToken = { token: "reader-token-0123456789abcd", name: "reader", scopes: [] };
const auth = new AdminAuth([OPS, READER]);

describe("AdminAuth.authenticate", () => {
  it.each<[string, string | undefined, string | undefined]>([
    ["no header", undefined, undefined],
    ["a configured bearer token", `Bearer ${OPS.token}`, "ops"],
    ["the scheme in any case", `bEARER ${OPS.token}`, "ops"],
    ["several spaces after the scheme", `Bearer   ${OPS.token}`, "ops"],
    ["trailing spaces", `Bearer ${OPS.token}  `, "ops"],
    ["another holder's token", `Bearer ${READER.token}`, "reader"],
    ["an unknown token", "Bearer not-a-configured-token-at-all", undefined],
    ["a configured token with text before the scheme", `xBearer ${OPS.token}`, undefined],
    ["a configured token followed by another word", `Bearer ${OPS.token} extra`, undefined],
    ["a configured token with a suffix", `Bearer ${OPS.token}x`, undefined],
    ["a prefix of a configured token", `Bearer ${OPS.token.slice(0, -1)}`, undefined],
    ["the scheme without a token", "Bearer", undefined],
    ["the scheme and a space", "Bearer ", undefined],
    ["another scheme", `Basic ${Buffer.from(`ops:${OPS.token}`).toString("base64")}`, undefined],
    ["the bare token without a scheme", OPS.token, undefined],
    ["an empty header", "", undefined],
  ])("%s → %s", (_name, header, holder) => {
    expect(auth.authenticate(header)?.name).toBe(holder);
  });
});

describe("AdminAuth settings", () => {
  it("is configured only when it holds a token", () => {
    expect(new AdminAuth([]).configured).toBe(false);
    expect(auth.configured).toBe(true);
  });

  it("names the holders whose tokens carry no scope", () => {
    expect(auth.readOnlyNames).toEqual(["reader"]);
  });

  it("lets a holder act only within its scopes", () => {
    const ops = auth.authenticate(`Bearer ${OPS.token}`)!;
    expect(() => { requireScope(ops, "signals:write"); }).not.toThrow();
    expect(() => { requireScope(ops, "approvals:decide"); }).toThrow(expect.objectContaining({ code: "forbidden" }));
  });
});
