// examples/authzen-todo against a running Vigil configured by its own vigil.yaml: every case of
// the AuthZEN interop Todo and API-gateway scenarios in cases.yaml, sent as the interop harness
// sends it, must get exactly the expected answer (the harness compares the JSON as strings).

import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestVigil, type TestVigil } from "../support/vigil.js";

const DIR = "examples/authzen-todo";
const PEP_TOKEN = "test-todo-pep-token-0123456789abcdef";

interface Cases {
  evaluation: { name: string; request: unknown; decision: boolean }[];
  evaluations: { name: string; request: unknown; response: unknown }[];
  gateway: { name: string; request: unknown; decision: boolean }[];
}

const cases = parse(readFileSync(`${DIR}/cases.yaml`, "utf8")) as Cases;
const settings = parse(readFileSync(`${DIR}/vigil.yaml`, "utf8")) as { policyDir: string; entitiesFile: string; authzen: { destination: string } };

describe("the AuthZEN interop Todo scenario (examples/authzen-todo)", () => {
  let vigil: TestVigil;

  beforeAll(async () => {
    vigil = await startTestVigil({ ...settings, http: { adminTokens: [{ token: PEP_TOKEN, name: "todo-app", scopes: ["authzen:evaluate"] }] } });
  });

  afterAll(async () => {
    await vigil.close();
  });

  async function post(path: string, body: unknown): Promise<{ status: number; text: string }> {
    const res = await fetch(`${vigil.httpUrl}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${PEP_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, text: (await res.text()).trim() };
  }

  it("holds every interop case (40 evaluations, the batches, 25 gateway routes)", () => {
    expect(cases.evaluation).toHaveLength(40);
    expect(cases.evaluations.length).toBeGreaterThanOrEqual(3);
    expect(cases.gateway).toHaveLength(25);
    // Both answers occur: a policy that allowed (or denied) everything would fail some cases.
    expect(new Set(cases.evaluation.map((c) => c.decision))).toEqual(new Set([true, false]));
    expect(new Set(cases.gateway.map((c) => c.decision))).toEqual(new Set([true, false]));
  });

  it.each(cases.evaluation.map((c) => [c.name, c] as const))("Todo app: %s", async (_name, c) => {
    const res = await post("/access/v1/evaluation", c.request);
    expect(res.status).toBe(200);
    expect(res.text).toBe(JSON.stringify({ decision: c.decision }));
  });

  it.each(cases.evaluations.map((c) => [c.name, c] as const))("Todo app batch: %s", async (_name, c) => {
    const res = await post("/access/v1/evaluations", c.request);
    expect(res.status).toBe(200);
    expect(res.text).toBe(JSON.stringify(c.response));
  });

  it.each(cases.gateway.map((c) => [c.name, c] as const))("API gateway: %s", async (_name, c) => {
    const res = await post("/access/v1/evaluation", c.request);
    expect(res.status).toBe(200);
    expect(res.text).toBe(JSON.stringify({ decision: c.decision }));
  });
});
