// Property tests for what the admin API accepts: any JSON body either becomes a signal the server
// dated and attributed itself, or a VigilError; never a grant, a lifted revocation, a client id or
// source, a time outside the skew; the same for tokens-file text, whose errors never quote a token.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ADMIN_SCOPES, parseAdminTokens } from "../../../src/config/index.js";
import { VigilError } from "../../../src/errors/index.js";
import {
  parseReinstateRequest, parseSignalRequest, signalFromRequest,
} from "../../../src/transport/http/admin-requests.js";
import { AdminAuth } from "../../../src/transport/http/auth.js";

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const SKEW = 300_000;
const SUBJECT = "spiffe://example.org/ns/crm/sa/sync";

/** Values biased towards the fields and words the schemas give meaning to. */
const word = fc.constantFrom(
  "kind", "subject", "data", "observedAt", "expiresInSeconds", "id", "source", "expiresAt", "name", "by", "revoked",
  "reason", "level", "state", "status", "anomalies", "signer", "signedAt", "approvalId", "usesLeft", "__proto__",
  "risk", "posture", "credential", "revocation", "behavior", "grant", "attestation", "high", "leaked", "active",
);
const scalar = fc.oneof(
  word, fc.string({ maxLength: 12 }), fc.boolean(), fc.constant(null), fc.integer(),
  fc.constantFrom(NOW, NOW + SKEW + 1, NOW - SKEW - 1, 0, -1, 1e300, Number.MAX_SAFE_INTEGER, 1.5, "2026-11-25T12:00:00Z", "2099-01-01T00:00:00Z", SUBJECT),
);
const { value } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small" }, scalar, fc.array(tie("value"), { maxLength: 4 }), fc.dictionary(word, tie("value"), { maxKeys: 6 })),
}));
/** Bodies shaped like signal requests, with any mix of fields and values. */
const signalLike = fc.record({
  kind: fc.oneof(word, scalar),
  subject: fc.oneof(fc.constant(SUBJECT), scalar),
  data: fc.oneof(value, fc.dictionary(word, value, { maxKeys: 5 })),
}, { requiredKeys: [] }).chain((base) => fc.dictionary(word, value, { maxKeys: 3 }).map((extra) => ({ ...extra, ...base })));

/** Nearly valid bodies (one per kind) with forged extras mixed in: the interesting edge. */
const nearlyValid = fc.record({
  body: fc.constantFrom<Record<string, unknown>>(
    { kind: "risk", subject: SUBJECT, data: { level: "high" } },
    { kind: "posture", subject: SUBJECT, data: { status: "compliant" } },
    { kind: "credential", subject: SUBJECT, data: { state: "leaked" } },
    { kind: "credential", subject: SUBJECT, data: { state: "active" } },
    { kind: "revocation", subject: SUBJECT, data: { reason: "incident" } },
    { kind: "revocation", subject: SUBJECT, data: { revoked: false, reason: "incident" } },
    { kind: "behavior", subject: SUBJECT, data: { anomalies: ["rate_spike"] } },
    { kind: "attestation", subject: SUBJECT, data: { signer: SUBJECT, signedAt: NOW } },
    { kind: "grant", subject: SUBJECT, data: { approvalId: "a", scope: "s", approver: "x", usesLeft: 1 } },
  ),
  extra: fc.dictionary(fc.constantFrom("id", "source", "expiresAt", "name", "observedAt", "expiresInSeconds"), scalar, { maxKeys: 2 }),
}).map(({ body, extra }) => ({ ...body, ...extra }));

function tryParse(body: unknown): ReturnType<typeof signalFromRequest> | VigilError {
  try {
    return signalFromRequest(parseSignalRequest(body), { by: "ops", nowMs: NOW, maxClockSkewMs: SKEW });
  } catch (err) {
    if (err instanceof VigilError) return err;
    throw err;
  }
}

describe("admin request bodies", () => {
  it("become a server-attributed signal or a VigilError, never a grant, a lift or a client id", () => {
    let accepted = 0;
    fc.assert(fc.property(fc.oneof(value, signalLike, nearlyValid), (body) => {
      const result = tryParse(body);
      if (result instanceof VigilError) {
        expect(["invalid_input", "forbidden", "conflict"]).toContain(result.code);
        return;
      }
      accepted += 1;
      const input = body as Record<string, unknown>;
      expect(result.kind).not.toBe("grant");
      expect(result.source).toBe("admin:ops");
      expect(result.id).not.toBe(input.id);
      expect(Math.abs(result.observedAt - NOW)).toBeLessThanOrEqual(SKEW);
      for (const field of ["id", "source", "expiresAt", "name"]) expect(input).not.toHaveProperty(field);
      if (result.kind === "revocation") {
        expect(result.data).toEqual({ revoked: true, reason: expect.any(String) as unknown, by: "ops" });
        expect(result.expiresAt).toBeUndefined();
      }
      if (result.expiresAt !== undefined) expect(result.expiresAt).toBeGreaterThan(NOW);
    }), { numRuns: 3000 });
    // The accepting branch was exercised, not only refusals.
    expect(accepted).toBeGreaterThan(50);
  });

  it("a grant is refused whatever else the body holds", () => {
    fc.assert(fc.property(signalLike, (body) => {
      const result = tryParse({ ...body, kind: "grant" });
      expect(result).toBeInstanceOf(VigilError);
      expect((result as VigilError).code).toBe("forbidden");
    }), { numRuns: 500 });
  });

  it("refusal messages never quote a string value or field name the client sent", () => {
    const marker = fc.string({ unit: fc.constantFrom("x", "y", "z", "X", "Y", "Z", "0", "1", "8", "9"), minLength: 12, maxLength: 20 }).map((s) => `q${s}`);
    fc.assert(fc.property(signalLike, marker, fc.constantFrom("subject", "kind", "extra", "observedAt"), (body, secret, where) => {
      const forged = where === "extra" ? { ...body, [secret]: 1 } : { ...body, [where]: secret };
      const result = tryParse(forged);
      if (result instanceof VigilError) expect(result.message).not.toContain(secret);
    }), { numRuns: 1000 });
  });

  it("reinstate bodies parse or fail with invalid_input, without quoting the subject", () => {
    fc.assert(fc.property(fc.oneof(value, fc.record({ subject: scalar, reason: scalar, kind: scalar }, { requiredKeys: [] })), (body) => {
      try {
        const parsed = parseReinstateRequest(body);
        expect(parsed.reason.trim()).not.toBe("");
        expect(parsed.subject.startsWith("spiffe://") || /^sha256:[0-9a-f]{64}$/.test(parsed.subject)).toBe(true);
      } catch (err) {
        expect(err).toBeInstanceOf(VigilError);
        expect((err as VigilError).code).toBe("invalid_input");
        const subject = (body as { subject?: unknown } | null)?.subject;
        if (typeof subject === "string" && subject.length >= 12) {
          // The message may contain the subject's text without echoing it: the allowed field names
          // ("…, observedAt, expiresInSeconds") when the subject is "expiresInSeconds". What counts
          // is whether the text comes from the subject: the same body with another subject of the
          // same length must not say it too.
          const control = messageOf({ ...(body as Record<string, unknown>), subject: "\u0001".repeat(subject.length) });
          if (!control.includes(subject)) expect((err as VigilError).message).not.toContain(subject);
        }
      }
    }), {
      numRuns: 2000,
      // Found by CI: the refusal lists the allowed fields, "expiresInSeconds" among them.
      examples: [[{ subject: "expiresInSeconds", state: [] }]],
    });
  });
});

/** The message parseReinstateRequest refuses a body with ("" when it takes it). */
function messageOf(body: unknown): string {
  try {
    parseReinstateRequest(body);
    return "";
  } catch (err) {
    return (err as Error).message;
  }
}

describe("admin tokens text", () => {
  const tokenChar = fc.constantFrom(..."abcXYZ0189._~+/=-".split(""));
  const token = fc.string({ unit: tokenChar, minLength: 0, maxLength: 40 }).map((s) => `T${s}`);
  const field = fc.oneof(
    fc.constantFrom(...ADMIN_SCOPES, "admin", "spiffe://example.org/ns/ops/sa/x", "signals:write,approvals:decide", "#", "", "root", "signals:read"),
    fc.string({ maxLength: 10 }),
  );
  const line = fc.oneof(
    fc.tuple(token, fc.array(field, { maxLength: 3 })).map(([t, rest]) => [t, ...rest].join(" ")),
    fc.string({ maxLength: 40 }),
    fc.constantFrom("# comment", "", "   "),
  );

  it("parses into tokens of 16+ characters with a name, or fails naming lines but never a token", () => {
    fc.assert(fc.property(fc.array(line, { maxLength: 6 }), fc.constantFrom("\n", "\r\n"), (lines, eol) => {
      const text = lines.join(eol);
      try {
        const tokens = parseAdminTokens(text, "tokens file");
        for (const t of tokens) {
          expect(t.token.length).toBeGreaterThanOrEqual(16);
          expect(t.name).not.toBe("");
          for (const scope of t.scopes) expect(ADMIN_SCOPES).toContain(scope);
        }
        // What was accepted authenticates, with the scopes it was given; nothing else does.
        const auth = new AdminAuth(tokens);
        for (const t of tokens) expect(auth.authenticate(`Bearer ${t.token}`)).toEqual({ name: t.name, scopes: t.scopes });
        expect(auth.authenticate("Bearer not-any-configured-token-at-all")).toBeUndefined();
      } catch (err) {
        expect(err).toBeInstanceOf(VigilError);
        const message = (err as VigilError).message;
        expect(message).toMatch(/^tokens file: line \d+: /);
        for (const l of lines) {
          const first = l.trim().split(/\s+/)[0] ?? "";
          if (first.length >= 16 && first.startsWith("T")) expect(message).not.toContain(first);
        }
      }
    }), { numRuns: 3000 });
  });
});
