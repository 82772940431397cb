import fc from "fast-check";
import { base64url } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signalSchema } from "../../../src/signals/model.js";
import { CAEP, RISC, SSF_EVENTS } from "../../../src/signals/ssf/index.js";
import {
  AUDIENCE, FINGERPRINT, ISSUER, NOW_S, WORKLOAD, makeHarness, makeTransmitter, signSet, writeJwksFile,
  type Harness, type Transmitter,
} from "./set-fixtures.js";

let ec: Transmitter;
let jwks: { path: string; remove: () => Promise<void> };
let h: Harness;

beforeAll(async () => {
  ec = await makeTransmitter("ES256", "ec-1");
  jwks = await writeJwksFile([ec]);
  h = makeHarness({ jwksFile: jwks.path });
});
afterAll(async () => {
  await jwks.remove();
});

const encodedJson = fc.jsonValue().map((value) => base64url.encode(JSON.stringify(value)));

const body = fc.oneof(
  fc.uint8Array({ maxLength: 4096 }).map((bytes) => Buffer.from(bytes)),
  fc.string({ maxLength: 2048 }).map((text) => Buffer.from(text)),
  fc.tuple(encodedJson, encodedJson, fc.base64String()).map(([a, b, c]) => Buffer.from(`${a}.${b}.${c}`)),
  fc.tuple(fc.constantFrom("eyJhbGciOiJub25lIn0", "eyJhbGciOiJFUzI1NiJ9", "e30"), encodedJson)
    .map(([header, payload]) => Buffer.from(`${header}.${payload}.`)),
);

describe("SSF receiver: arbitrary input", () => {
  it("answers any body with a 4xx and never writes", async () => {
    await fc.assert(fc.asyncProperty(body, async (bytes) => {
      const before = h.store.written.length;
      const response = await h.post(bytes);
      expect([400, 413]).toContain(response.status);
      expect(h.store.written.length).toBe(before);
    }), { numRuns: 300 });
  });

  const eventUri = fc.constantFrom(...Object.values(CAEP), ...Object.values(RISC), ...Object.values(SSF_EVENTS), "urn:example:custom");
  const simpleSubject = fc.oneof(
    fc.constant({ format: "uri", uri: WORKLOAD }),
    fc.constant({ format: "opaque", id: FINGERPRINT }),
    fc.record({ format: fc.constant("iss_sub"), iss: fc.string(), sub: fc.string() }),
    fc.record({ format: fc.constantFrom("uri", "opaque", "email", "iss_sub"), uri: fc.string(), id: fc.string() }, { requiredKeys: ["format"] }),
    fc.jsonValue(),
  );
  const subject = fc.oneof(
    simpleSubject,
    fc.record({ format: fc.constant("aliases"), identifiers: fc.array(simpleSubject, { maxLength: 3 }) }),
    fc.record({ format: fc.constant("complex"), application: simpleSubject, user: simpleSubject }, { requiredKeys: ["format"] }),
  );
  const payloadField = fc.constantFrom(
    "change_type", "credential_type", "current_status", "current_level", "change_direction", "namespace",
    "risk_reason", "reason", "reason_admin", "claims", "event_timestamp", "status", "principal",
  );
  const payloadValue = fc.oneof(
    fc.constantFrom("create", "revoke", "update", "delete", "compliant", "not-compliant", "LOW", "high", "decrease", "increase", "x509"),
    fc.constant({ en: "reason" }),
    fc.integer({ min: NOW_S - 3600, max: NOW_S + 3600 }),
    fc.jsonValue(),
  );
  /** Mostly the well-formed value, sometimes anything: so most SETs reach the deep checks. */
  const mostly = <T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
    fc.oneof({ arbitrary: good, weight: 12 }, { arbitrary: fc.jsonValue(), weight: 1 });
  const claims = fc.record({
    iss: mostly(fc.constant(ISSUER)),
    aud: mostly(fc.constantFrom(AUDIENCE, [AUDIENCE, "x"])),
    iat: mostly(fc.oneof({ arbitrary: fc.integer({ min: NOW_S - 3600, max: NOW_S + 60 }), weight: 8 }, fc.integer({ min: NOW_S - 90_000, max: NOW_S + 900 }))),
    jti: mostly(fc.uuid()),
    toe: mostly(fc.integer({ min: 0, max: NOW_S + 900 })),
    sub_id: subject,
    events: mostly(fc.tuple(eventUri, fc.dictionary(payloadField, payloadValue, { maxKeys: 5 })).map(([uri, payload]) => ({ [uri]: payload }))),
  }, { requiredKeys: ["iss", "aud", "iat", "jti", "sub_id", "events"] });

  it("answers any signed claims with 202 or 400 and writes only valid signals", async () => {
    await fc.assert(fc.asyncProperty(claims, async (set) => {
      const before = h.store.written.length;
      const response = await h.post(await signSet(set, ec));
      expect([202, 400]).toContain(response.status);
      const added = h.store.written.slice(before);
      if (response.status === 400) expect(added).toEqual([]);
      expect(added.length).toBeLessThanOrEqual(1);
      for (const signal of added) expect(signalSchema.safeParse(signal).success).toBe(true);
    }), { numRuns: 300 });
  });
});
