// Hostile inputs that used to stall the event loop (issue #8, "Stalls"), sent over real gRPC with
// Envoy-encoded requests: long paths and hosts against multi-star globs, catastrophic regexes in
// CEL `matches`. Each row asserts the outcome only; how long a Check takes is measured in
// bench/stalls.bench.ts. Before the fix the first rows ran for seconds and every Check timed out.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEnvoyClient, type DecodedCheckResponse, type EnvoyClient, type EnvoyLikeRequest } from "../support/envoy-client.js";
import { KB60, STALL_POLICY as POLICY } from "../support/stall-policy.js";
import { startTestVigil, type TestVigil } from "../support/vigil.js";

function outcomeOf(res: DecodedCheckResponse): string {
  if (res.status?.code === undefined || res.status.code === 0) return "allow";
  const body = JSON.parse(res.denied_response?.body ?? "{}") as { outcome?: string };
  return body.outcome ?? "deny";
}

async function policyDir(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "vigil-stalls-"));
  await writeFile(join(dir, "stalls.yaml"), text);
  return dir;
}

describe("hostile inputs that stalled the event loop", () => {
  let vigil: TestVigil;
  let client: EnvoyClient;
  let dir: string;

  beforeAll(async () => {
    dir = await policyDir(POLICY);
    vigil = await startTestVigil({ policyDir: dir });
    client = createEnvoyClient(vigil.grpcAddress);
  });

  afterAll(async () => {
    client.close();
    await vigil.close();
    await rm(dir, { recursive: true, force: true });
  });

  const mesh = "api.prod.svc.cluster.local";
  it.each<{ attack: string; request: EnvoyLikeRequest; expected: string }>([
    { attack: "control: a short path the glob allows", request: { host: mesh, method: "GET", path: "/files/a.b.c" }, expected: "allow" },
    { attack: "a 60 KB segment without dots against /files/*.*.*", request: { host: mesh, method: "GET", path: `/files/${"a".repeat(KB60)}` }, expected: "deny" },
    { attack: "a 60 KB segment of dots against /files/*.*.*, one short", request: { host: mesh, method: "GET", path: `/files/${"a".repeat(KB60)}.b` }, expected: "deny" },
    { attack: "60 KB of dots, then a slash, against /files/*.*.*", request: { host: mesh, method: "GET", path: `/files/${".".repeat(KB60)}/` }, expected: "deny" },
    { attack: "a 60 KB segment the glob allows", request: { host: mesh, method: "GET", path: `/files/${"a.".repeat(KB60 / 2)}x` }, expected: "allow" },
    { attack: "a 60 KB path of segments against /files/*.*.*", request: { host: mesh, method: "GET", path: `/files${"/a.b".repeat(KB60 / 4)}` }, expected: "deny" },
    { attack: "a 60 KB Host of dots against *.*.svc.cluster.local", request: { host: `${".".repeat(KB60)}x`, method: "GET", path: "/files/a.b.c" }, expected: "deny" },
    { attack: "a 60 KB Host that would match *.*.svc.cluster.local", request: { host: `${"a.".repeat(KB60 / 2)}svc.cluster.local`, method: "GET", path: "/files/a.b.c" }, expected: "deny" },
    { attack: "control: a short path (a+)+$ allows", request: { host: "regex-api", method: "GET", path: "/re/aaaa" }, expected: "allow" },
    { attack: "a 60 KB miss against (a+)+$", request: { host: "regex-api", method: "GET", path: `/re/${"a".repeat(KB60)}!` }, expected: "deny" },
    { attack: "a 4 KB miss against (a+)+$ (under the matches input bound)", request: { host: "regex-api", method: "GET", path: `/re/${"a".repeat(4000)}!` }, expected: "deny" },
    { attack: "control: a header (\\w+\\s?)*$ allows", request: { host: "regex-api", method: "GET", path: "/hdr", headers: { "x-id": "build 42" } }, expected: "allow" },
    { attack: "a 60 KB header miss against ^(\\w+\\s?)*$", request: { host: "regex-api", method: "GET", path: "/hdr", headers: { "x-id": `${"a ".repeat(KB60 / 2)}!` } }, expected: "deny" },
    { attack: "control: a short path a split comprehension allows", request: { host: "regex-api", method: "GET", path: "/split/abc" }, expected: "allow" },
    { attack: "a 60 KB path split into characters for a comprehension", request: { host: "regex-api", method: "GET", path: `/split/${"a".repeat(KB60)}` }, expected: "deny" },
    { attack: "a 4 KB header miss against ^(\\w+\\s?)*$", request: { host: "regex-api", method: "GET", path: "/hdr", headers: { "x-id": `${"ab".repeat(2000)}!` } }, expected: "deny" },
  ])("$attack → $expected", async ({ request, expected }) => {
    expect(outcomeOf(await client.check(request))).toBe(expected);
  });
});

describe("policies that could stall are refused at load", () => {
  it.each([
    { what: "a backreference", when: "request.path.matches(\"^/(a+)\\\\1$\")", problem: "RE2 cannot run" },
    { what: "a lookahead", when: "request.path.matches(\"^(?=/admin)\")", problem: "RE2 cannot run" },
    { what: "nested comprehensions", when: "request.headers.all(k, request.headers.exists(j, j != k))", problem: "comprehension inside another" },
  ])("refuses $what, naming file, document and path", async ({ when, problem }) => {
    const dir = await policyDir(POLICY.replace("request.path.matches(\"^/re/(a+)+$\")", when));
    let refusal = "";
    try {
      const started = await startTestVigil({ policyDir: dir });
      await started.close();
    } catch (error) {
      refusal = error instanceof Error ? error.message : String(error);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(refusal).toMatch(/stalls\.yaml doc 2: spec\.rules\[0\]\.when/);
    expect(refusal).toContain(problem);
  });
});
