// `vigil test` as CI runs it: the example policy's own tests pass through the real CLI, a copy of
// the policy with one outcome flipped fails naming the case, and broken test documents get the
// same file/document/path errors as policies, with exit codes 0 / 1 / 2.

import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

function vigilCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

const EXAMPLES = "examples/policies";
const work = mkdtempSync(join(tmpdir(), "vigil-policy-tests-"));

/** A copy of the example policy and its tests, with `edit` applied to one file. */
function mutatedCopy(name: string, file: string, edit: (text: string) => string): string {
  const dir = join(work, name);
  cpSync(EXAMPLES, dir, { recursive: true });
  const path = join(dir, file);
  const before = readFileSync(path, "utf8");
  const after = edit(before);
  expect(after, "the mutation changed nothing").not.toBe(before);
  writeFileSync(path, after);
  return dir;
}

const TEST_DOC = (cases: string): string => `apiVersion: vigil.dev/v1alpha1
kind: PolicyTest
metadata: { name: extra }
spec:
  now: "2026-06-10T10:00:00Z"
  cases:
${cases}`;

describe("vigil test", () => {
  afterAll(() => { rmSync(work, { recursive: true, force: true }); });

  it("passes the example policy's tests and reports every rule exercised", async () => {
    const junit = join(work, "examples.xml");
    const res = await vigilCli(["test", "--policy", EXAMPLES, "--junit", junit]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    expect(res.stdout).not.toContain("FAIL");
    const summary = /^(\d+) passed, 0 failed, (\d+) case\(s\); policy version [0-9a-f]{16}$/m.exec(res.stdout);
    expect(summary?.[1]).toBe(summary?.[2]);
    const coverage = /^coverage: (\d+)\/(\d+) rule\(s\) exercised$/m.exec(res.stdout);
    expect(coverage?.[1]).toBe(coverage?.[2]);
    const xml = readFileSync(junit, "utf8");
    expect(xml).toContain(`tests="${summary?.[1] ?? ""}" failures="0" errors="0"`);
    expect(xml).toContain("<testcase classname=\"examples/policies/tests/deploy-api.yaml.deploy-api\" name=\"allows the CI deployer&apos;s staging deploy\"");
  });

  it("covers every acceptance scenario of scenarios.md that one sidecar decides (18 needs a second replica)", () => {
    const texts = ["deploy-api.yaml", "agents.yaml", "data-secops-payments.yaml"].map((f) => readFileSync(join(EXAMPLES, "tests", f), "utf8")).join("\n");
    const scenarios = new Set([...texts.matchAll(/scenario: "?([\d, ]+)"?/g)].flatMap((m) => (m[1] ?? "").split(",").map((s) => s.trim())));
    for (let n = 1; n <= 17; n++) expect(scenarios, `scenario ${n}`).toContain(String(n));
  });

  it("fails a copy of the policy with one outcome flipped, naming the file and case that caught it", async () => {
    const dir = mutatedCopy("flipped", "deploy-api.yaml", (text) => text.replace("outcome: allow\n      reason: staging deploy allowed", "outcome: deny\n      reason: staging deploy allowed"));
    const junit = join(work, "flipped.xml");
    const res = await vigilCli(["test", "--policy", dir, "--junit", junit]);
    expect(res.code).toBe(1);
    const failures = res.stdout.split("\n").filter((line) => line.startsWith("FAIL "));
    expect(failures).toEqual([
      `FAIL ${join(dir, "tests", "deploy-api.yaml")} doc 1 case "allows the CI deployer's staging deploy": expected outcome allow, got deny (rule deploy-api/staging-deploy: "staging deploy allowed")`,
    ]);
    expect(res.stdout).toMatch(/^\d+ passed, 1 failed, \d+ case\(s\)/m);
    const xml = readFileSync(junit, "utf8");
    expect(xml).toMatch(/<testsuites name="vigil test" tests="\d+" failures="1" errors="0"/);
    expect(xml).toContain("<failure message=\"expected outcome allow, got deny");
  });

  it("fails when a delay's retry-after changes, comparing the header Envoy would send", async () => {
    const dir = mutatedCopy("window", "deploy-api.yaml", (text) => text.replace("start: \"09:00\"", "start: \"10:00\""));
    const res = await vigilCli(["test", "--policy", dir]);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain("case \"delays a production deploy on Saturday until Monday 09:00 UTC\": expected header retry-after: \"169200\", got \"172800\"");
  });

  it("lists a rule no case exercises", async () => {
    const dir = mutatedCopy("uncovered", "tickets.yaml", (text) => `${text}
    - name: never-tested
      sources: ["spiffe://example.org/ns/agents/sa/support-bot"]
      methods: [DELETE]
      paths: ["/api/tickets/*"]
      outcome: deny
`);
    const res = await vigilCli(["test", "--policy", dir]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^coverage: (\d+)\/(\d+) rule\(s\) exercised; not exercised by any case:\n {2}tickets\/never-tested\n$/m);
  });

  it("refuses a broken test document with file, document, path and line, exit code 2", async () => {
    const dir = join(work, "broken");
    cpSync(EXAMPLES, dir, { recursive: true });
    writeFileSync(join(dir, "tests", "zz-broken.yaml"), `---\n${TEST_DOC(`    - name: typo
      request: {}
      expect: { outcome: allw, rul: x }
`)}`);
    const res = await vigilCli(["test", "--policy", dir]);
    expect(res.code).toBe(2);
    const file = join(dir, "tests", "zz-broken.yaml");
    expect(res.stderr).toContain(`${file} doc 1: spec.cases[0].expect.outcome: expected one of allow|deny|step_up|delay|revoke, got "allw" (line 10)`);
    expect(res.stderr).toContain(`${file} doc 1: spec.cases[0].expect.rul: unknown field (line 10)`);
    expect(res.stdout).toBe("");
  });

  it("reports a case whose request or signals are unusable against that case, and goes on", async () => {
    const dir = join(work, "bad-case");
    cpSync(EXAMPLES, dir, { recursive: true });
    writeFileSync(join(dir, "tests", "zz-bad-case.yaml"), TEST_DOC(`    - name: header value is not a string
      request: { request: { http: { headers: { x-n: 5 } } } }
      expect: { outcome: deny }
    - name: signal of an unknown kind
      request: {}
      signals: [{ id: s1, kind: mood, subject: "spiffe://example.org/x", source: t, observedAt: "2026-06-01T00:00:00Z", data: {} }]
      expect: { outcome: deny }
    - name: nothing matched
      request: {}
      expect: { outcome: deny, rule: "" }
`));
    const res = await vigilCli(["test", "--policy", dir]);
    expect(res.code).toBe(1);
    const file = join(dir, "tests", "zz-bad-case.yaml");
    expect(res.stdout).toContain(`FAIL ${file} doc 1 case "header value is not a string": error: invalid CheckRequest JSON: attributes.request.http.headers: string{k:string} expected`);
    expect(res.stdout).toMatch(new RegExp(`FAIL ${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} doc 1 case "signal of an unknown kind": error: spec\\.cases\\[1\\]\\.signals\\[0\\]: kind`));
    expect(res.stdout).not.toContain("case \"nothing matched\"");
    expect(res.stdout).toMatch(/ 2 failed, /);
  });

  it("reads test documents beside the policies, which vigil validate and serve skip", async () => {
    const dir = join(work, "beside");
    cpSync(EXAMPLES, dir, { recursive: true });
    rmSync(join(dir, "tests"), { recursive: true });
    writeFileSync(join(dir, "zz-tests.yaml"), TEST_DOC(`    - name: staging deploy by an unknown caller
      caller: spiffe://example.org/ns/ci/sa/stranger
      request: { request: { http: { method: POST, path: /v1/deploy } }, context_extensions: { destination: deploy-api, env: staging } }
      expect: { outcome: deny, rule: "", reason: no rule allows this request }
`));
    const validate = await vigilCli(["validate", "--policy", dir]);
    expect(validate.code).toBe(0);
    const res = await vigilCli(["test", "--policy", dir]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^1 passed, 0 failed, 1 case\(s\)/m);
  });

  it("exits 2 when there is no test to run, or no policy", async () => {
    const dir = join(work, "no-tests");
    cpSync(EXAMPLES, dir, { recursive: true });
    rmSync(join(dir, "tests"), { recursive: true });
    const none = await vigilCli(["test", "--policy", dir]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("no policy tests (kind: PolicyTest)");
    const noPolicy = await vigilCli(["test", join(EXAMPLES, "tests")]);
    expect(noPolicy.code).toBe(2);
    expect(noPolicy.stderr).toContain("test needs --policy DIR");
  });
});
