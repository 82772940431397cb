import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { VigilError } from "../../src/errors/index.js";
import { loadSignalsFile } from "../../src/signals/index.js";

describe("loadSignalsFile", () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "vigil-seed-"));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function file(name: string, text: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  }

  async function failure(path: string): Promise<VigilError> {
    try {
      await loadSignalsFile(path);
    } catch (error) {
      expect(error).toBeInstanceOf(VigilError);
      return error as VigilError;
    }
    throw new Error("expected loadSignalsFile to fail");
  }

  it("reads a YAML list, turning ISO times into epoch milliseconds", async () => {
    const path = await file("signals.yaml", `
- id: seed-risk-1
  kind: risk
  subject: spiffe://example.org/ns/agents/sa/planner
  source: seed
  observedAt: 2025-06-01T12:00:00Z
  expiresAt: 2030-01-01T00:00:00.000Z
  data: { level: high, reason: unusual tool use }
- id: seed-cred-1
  kind: credential
  subject: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  source: seed
  observedAt: 1748779200000
  data:
    state: active
    owner: spiffe://example.org/ns/ci/sa/release
    rotateBy: 2025-09-01T00:00:00Z
`);
    const signals = await loadSignalsFile(path);
    expect(signals).toHaveLength(2);
    expect(signals[0]).toMatchObject({
      kind: "risk", name: "", observedAt: Date.parse("2025-06-01T12:00:00Z"),
      expiresAt: Date.parse("2030-01-01T00:00:00Z"), data: { level: "high" },
    });
    expect(signals[1]).toMatchObject({
      kind: "credential", observedAt: 1748779200000, data: { rotateBy: Date.parse("2025-09-01T00:00:00Z") },
    });
  });

  it("reads a JSON list", async () => {
    const path = await file("signals.json", JSON.stringify([{
      id: "a1", kind: "attestation", subject: "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", source: "ci", observedAt: "2025-06-01T00:00:00Z",
      data: { signer: "spiffe://example.org/ns/ci/sa/release-pipeline", signedAt: "2025-06-01T00:00:00Z" },
    }]));
    const [signal] = await loadSignalsFile(path);
    expect(signal).toMatchObject({ kind: "attestation", data: { signedAt: Date.parse("2025-06-01T00:00:00Z") } });
  });

  it("refuses a seed that would let a revocation expire, or a subject of the wrong form, without quoting it", async () => {
    const path = await file("sticky.json", JSON.stringify([
      { id: "r1", kind: "revocation", subject: "spiffe://example.org/ns/a/sa/b", source: "seed", observedAt: 1, expiresAt: 2, data: { revoked: true, reason: "r", by: "b" } },
      { id: "c1", kind: "credential", subject: "demo-api-key-K1-0001", source: "seed", observedAt: 1, data: { state: "active" } },
    ]));
    const error = await loadSignalsFile(path).then(() => undefined, (e: unknown) => e as Error);
    expect(error?.message).toContain("signal at index 0: expiresAt: a revocation cannot expire");
    expect(error?.message).toContain("signal at index 1: subject: a credential subject must be");
    expect(error?.message).not.toContain("demo-api-key-K1-0001");
  });

  it("reads an empty file as no signals", async () => {
    expect(await loadSignalsFile(await file("empty.yaml", ""))).toEqual([]);
  });

  it("names the file, the index and the path of every problem", async () => {
    const path = await file("bad.yaml", `
- id: ok
  kind: risk
  subject: spiffe://example.org/a
  source: seed
  observedAt: 0
  data: { level: low }
- id: bad-level
  kind: risk
  subject: spiffe://example.org/b
  source: seed
  observedAt: 0
  data: { level: severe }
- id: bad-time
  kind: risk
  subject: spiffe://example.org/c
  source: seed
  observedAt: last tuesday
  data: { level: low }
- just a string
`);
    const error = await failure(path);
    expect(error.code).toBe("invalid_input");
    expect(error.message).toContain(`${path}: signal at index 1: data.level:`);
    expect(error.message).toContain(`${path}: signal at index 2: observedAt: not an ISO 8601 time`);
    expect(error.message).toContain(`${path}: signal at index 3: expected a mapping`);
    expect(error.message).not.toContain("index 0");
  });

  it.each([
    ["a top-level mapping", "signals.yaml", "signals: []\n", "expected a list of signals"],
    ["broken YAML", "signals.yaml", "- id: [unclosed\n", "not valid YAML"],
    ["broken JSON", "signals.json", "[{", "not valid JSON"],
  ])("refuses %s", async (_label, name, text, message) => {
    const error = await failure(await file(name, text));
    expect(error.code).toBe("invalid_input");
    expect(error.message).toContain(message);
  });

  it("says not_found for a missing file", async () => {
    expect((await failure(join(dir, "missing.yaml"))).code).toBe("not_found");
  });
});
