import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { findCredential, fingerprintSecret, isFingerprint, readCredential } from "../../src/identity/index.js";

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
  ])("%s: %j → %s", (header, value, scheme, secret) => {
    expect(readCredential(header, value)).toEqual({
      credential: { header, scheme, fingerprint: sha256(secret) },
      problem: "",
    });
  });

  it("fingerprints the first token of a repeated Authorization header, and says so", () => {
    const read = readCredential("authorization", `Bearer ${TOKEN}, Bearer other`);
    expect(read.credential).toEqual({ header: "authorization", scheme: "bearer", fingerprint: sha256(TOKEN) });
    expect(read.problem).toMatch(/more than one value/);
    expect(read.problem).not.toContain(TOKEN);
  });

  it.each([
    ["authorization", "", /empty/],
    ["authorization", "   ", /empty/],
    ["authorization", "Bearer    ", /no token/],
    ["authorization", " bearer", /no token/],
    ["x-api-key", "", /empty/],
  ])("%s: %j yields no credential", (header, value, problem) => {
    const read = readCredential(header, value);
    expect(read.credential).toBeNull();
    expect(read.problem).toMatch(problem);
  });
});

describe("findCredential", () => {
  const names = ["authorization", "x-api-key"];

  it("takes the first configured header present and notes the ones it ignores", () => {
    const problems: string[] = [];
    const credential = findCredential({ "x-api-key": API_KEY, authorization: `Bearer ${TOKEN}` }, names, problems);
    expect(credential).toEqual({ header: "authorization", scheme: "bearer", fingerprint: sha256(TOKEN) });
    expect(problems).toEqual(["x-api-key header ignored: a credential was already taken from authorization"]);
    expect(JSON.stringify(problems)).not.toContain(API_KEY);
  });

  it("reads an API key when there is no Authorization header", () => {
    const problems: string[] = [];
    expect(findCredential({ "x-api-key": API_KEY }, names, problems)).toEqual({
      header: "x-api-key", scheme: "api_key", fingerprint: sha256(API_KEY),
    });
    expect(problems).toEqual([]);
  });

  it("returns null when no credential header is present, and reads only configured headers", () => {
    const problems: string[] = [];
    expect(findCredential({ cookie: "session=1" }, names, problems)).toBeNull();
    expect(findCredential({ "x-api-key": API_KEY }, ["authorization"], problems)).toBeNull();
    expect(problems).toEqual([]);
  });

  it("does not mistake inherited object properties for headers", () => {
    expect(findCredential({}, ["constructor", "tostring"], [])).toBeNull();
  });
});
