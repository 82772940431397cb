import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  MAX_CREDENTIALS, findCredentials, fingerprintSecret, isFingerprint, readCredential, type IdentityProblem,
} from "../../src/identity/index.js";

const TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmU6Ly9leGFtcGxlLm9yZy9jaSJ9.c2lnbmF0dXJl";
const API_KEY = "vk_live_5f3a9e1c7b2d4e6f8a0b1c2d3e4f5a6b";
const sha256 = (s: string): string => "sha256:" + createHash("sha256").update(s, "utf8").digest("hex");

describe("fingerprintSecret", () => {
  it("is sha256: + the hex SHA-256 of the secret's UTF-8 bytes", () => {
    expect(fingerprintSecret(TOKEN)).toBe(sha256(TOKEN));
    expect(fingerprintSecret("")).toBe("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(fingerprintSecret("clé")).toBe(sha256("clé"));
    expect(isFingerprint(fingerprintSecret(API_KEY))).toBe(true);
  });

  it.each(["sha256:abc", "sha256:" + "A".repeat(64), "md5:" + "a".repeat(64), "a".repeat(64)])("isFingerprint(%j) is false", (s) => {
    expect(isFingerprint(s)).toBe(false);
  });
});

describe("readCredential", () => {
  it.each([
    ["authorization", `Bearer ${TOKEN}`, "bearer", TOKEN],
    ["authorization", `bearer ${TOKEN}`, "bearer", TOKEN],
    ["authorization", `BEARER   ${TOKEN}  `, "bearer", TOKEN],
    ["authorization", `Bearer\t${TOKEN}`, "bearer", TOKEN],
    ["authorization", "Basic dXNlcjpwYXNz", "other", "Basic dXNlcjpwYXNz"],
    ["authorization", `  ${TOKEN}`, "other", TOKEN],
    ["authorization", `Bearertoken${TOKEN}`, "other", `Bearertoken${TOKEN}`],
    ["x-api-key", API_KEY, "api_key", API_KEY],
    ["x-api-key", ` ${API_KEY} `, "api_key", API_KEY],
    ["x-service-token", `Bearer ${TOKEN}`, "api_key", `Bearer ${TOKEN}`],
    // Envoy joins a repeated header with ","; the same value twice is one credential.
    ["authorization", `Bearer ${TOKEN},Bearer ${TOKEN}`, "bearer", TOKEN],
    ["x-api-key", `${API_KEY}, ${API_KEY}`, "api_key", API_KEY],
  ])("%s: %j → %s", (header, value, scheme, secret) => {
    expect(readCredential(header, value)).toEqual({
      credentials: [{ header, scheme, fingerprint: sha256(secret) }],
      problems: [],
    });
  });

  it.each([
    ["authorization", `Bearer ${TOKEN}, Bearer other`, [sha256(TOKEN), sha256("other")]],
    ["authorization", `Bearer decoy,Bearer ${TOKEN}`, [sha256("decoy"), sha256(TOKEN)]],
    ["authorization", `Bearer ${TOKEN}, Basic dXNlcjpwYXNz`, [sha256(TOKEN), sha256("Basic dXNlcjpwYXNz")]],
    ["x-api-key", `decoy,${API_KEY},decoy`, [sha256("decoy"), sha256(API_KEY)]],
  ])("%s: %j fingerprints every value and calls the header ambiguous", (header, value, fingerprints) => {
    const read = readCredential(header, value);
    expect(read.credentials.map((c) => c.fingerprint)).toEqual(fingerprints);
    expect(read.problems).toEqual([{ code: "ambiguous_credential", message: expect.stringMatching(/different credentials/) as string }]);
    expect(JSON.stringify(read.problems)).not.toContain(TOKEN);
    expect(JSON.stringify(read.problems)).not.toContain(API_KEY);
  });

  it.each([
    ["authorization", "", "empty_credential", /is empty/, []],
    ["authorization", "   ", "empty_credential", /is empty/, []],
    ["authorization", "Bearer    ", "malformed_credential", /no token/, []],
    ["authorization", " bearer", "malformed_credential", /no token/, []],
    ["authorization", `Bearer ${TOKEN} ${API_KEY}`, "malformed_credential", /spaces/, []],
    ["authorization", `Bearer ${TOKEN},`, "empty_credential", /empty value/, [TOKEN]],
    ["authorization", `,,Bearer ${TOKEN}`, "empty_credential", /empty value/, [TOKEN]],
    ["authorization", `Bearer, Bearer ${TOKEN}`, "malformed_credential", /no token/, [TOKEN]],
    ["x-api-key", "", "empty_credential", /is empty/, []],
    ["x-api-key", ` , ${API_KEY}`, "empty_credential", /empty value/, [API_KEY]],
  ])("%s: %j is refused as %s, and the good values are still fingerprinted", (header, value, code, message, secrets) => {
    const read = readCredential(header, value);
    expect(read.credentials.map((c) => c.fingerprint)).toEqual(secrets.map(sha256));
    expect(read.problems).toEqual([{ code, message: expect.stringMatching(message) as string }]);
  });

  it(`fingerprints at most ${String(MAX_CREDENTIALS)} values of a long repeated header and calls it ambiguous`, () => {
    const value = Array.from({ length: 5000 }, (_, i) => `k${String(i)}`).join(",");
    const read = readCredential("x-api-key", value);
    expect(read.credentials).toHaveLength(MAX_CREDENTIALS);
    expect(read.problems.map((p) => p.code)).toEqual(["ambiguous_credential"]);
  });

  it("reports one problem per header however many empty values it holds", () => {
    const read = readCredential("authorization", ",".repeat(10_000));
    expect(read.credentials).toEqual([]);
    expect(read.problems.map((p) => p.code)).toEqual(["empty_credential"]);
  });
});

describe("findCredentials", () => {
  const names = ["authorization", "x-api-key"];

  it("reads every configured header: a decoy bearer token does not hide an API key", () => {
    const problems: IdentityProblem[] = [];
    const credentials = findCredentials({ "x-api-key": API_KEY, authorization: "Bearer decoy" }, names, problems);
    expect(credentials).toEqual([
      { header: "authorization", scheme: "bearer", fingerprint: sha256("decoy") },
      { header: "x-api-key", scheme: "api_key", fingerprint: sha256(API_KEY) },
    ]);
    expect(problems).toEqual([]);
  });

  it("counts a secret presented in two headers once", () => {
    const problems: IdentityProblem[] = [];
    expect(findCredentials({ authorization: `Bearer ${API_KEY}`, "x-api-key": API_KEY }, names, problems)).toEqual([
      { header: "authorization", scheme: "bearer", fingerprint: sha256(API_KEY) },
    ]);
    expect(problems).toEqual([]);
  });

  it("returns nothing when no credential header is present, and reads only configured headers", () => {
    const problems: IdentityProblem[] = [];
    expect(findCredentials({ cookie: "session=1" }, names, problems)).toEqual([]);
    expect(findCredentials({ "x-api-key": API_KEY }, ["authorization"], problems)).toEqual([]);
    expect(problems).toEqual([]);
  });

  it("does not mistake inherited object properties for headers", () => {
    expect(findCredentials({}, ["constructor", "tostring"], [])).toEqual([]);
  });
});
