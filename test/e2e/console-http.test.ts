// The console over HTTP against the real server (gRPC Checks from a real client): sign-in and
// sessions, CSRF and origin checks, scopes, approvals decided from a form, revocation from the
// identity page, the live decision stream, escaping of attacker-chosen values, and the headers
// every page carries. The browser-driven test (console-browser.test.ts) covers the same flows in
// Chromium; this one pins each refusal exactly.

import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConsoleClient } from "../support/console-client.js";
import { createEnvoyClient, type DecodedCheckResponse, type EnvoyClient, type EnvoyLikeRequest } from "../support/envoy-client.js";
import { DEPLOYER, IR_BOT, K1, SUPPORT_BOT } from "../support/example-world.js";
import { ADMIN_TOKEN, APPROVER_TOKEN, IR_BOT_TOKEN, READ_ONLY_TOKEN, startTestVigil, type TestVigil } from "../support/vigil.js";

const sidecarOf = (service: string): EnvoyLikeRequest => ({ host: service, destination: service, destinationPrincipal: `spiffe://example.org/ns/vigil-demo/sa/${service}` });
const CHANGE: EnvoyLikeRequest = {
  sourcePrincipal: SUPPORT_BOT, ...sidecarOf("change-mgmt"), method: "POST", path: "/mcp",
  headers: { "content-type": "application/json" }, contextExtensions: { env: "prod" },
  body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "create_change", arguments: {} } }),
};
const DEPLOY: EnvoyLikeRequest = { sourcePrincipal: DEPLOYER, ...sidecarOf("deploy-api"), method: "POST", path: "/v1/deploy", contextExtensions: { action: "deploy", env: "staging" } };
const IR_DELETE: EnvoyLikeRequest = { sourcePrincipal: IR_BOT, ...sidecarOf("edr"), method: "DELETE", path: "/v1/forensics/f-1" };

function approvalIdOf(res: DecodedCheckResponse): string {
  return (JSON.parse(res.denied_response?.body ?? "{}") as { approval_id?: string }).approval_id ?? "";
}
const allowed = (res: DecodedCheckResponse): boolean => (res.status?.code ?? 0) === 0;

describe("console disabled (the default)", () => {
  it("answers 404 under /console", async () => {
    const vigil = await startTestVigil();
    try {
      expect((await fetch(`${vigil.httpUrl}/console/approvals`)).status).toBe(404);
    } finally {
      await vigil.close();
    }
  });
});

describe("console over HTTP", () => {
  let vigil: TestVigil;
  let envoy: EnvoyClient;

  beforeAll(async () => {
    vigil = await startTestVigil({ console: { enabled: true, maxFailedSignInsPerMinute: 3 } });
    envoy = createEnvoyClient(vigil.grpcAddress);
  });
  afterAll(async () => {
    envoy.close();
    await vigil.close();
  });

  it("sends a visitor without a session to sign-in, keeping where they were going", async () => {
    const res = await new ConsoleClient(vigil.httpUrl).get("/console/approvals/apr_x");
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/console/sign-in?next=%2Fconsole%2Fapprovals%2Fapr_x");
  });

  it.each([
    { name: "an absolute URL", next: "https://evil.example/", to: "/console/approvals" },
    { name: "a protocol-relative URL", next: "//evil.example/console", to: "/console/approvals" },
    { name: "a path outside the console", next: "/v1/signals", to: "/console/approvals" },
    { name: "a console page", next: "/console/policy", to: "/console/policy" },
  ])("after sign-in goes only to console pages: $name", async ({ next, to }) => {
    const client = new ConsoleClient(vigil.httpUrl);
    const res = await client.post("/console/sign-in", { token: ADMIN_TOKEN, next });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(to);
  });

  it("sets an HttpOnly, SameSite=Strict cookie that holds no token; Secure behind TLS", async () => {
    const plain = await fetch(`${vigil.httpUrl}/console/sign-in`, {
      method: "POST", redirect: "manual", body: new URLSearchParams({ token: ADMIN_TOKEN }).toString(),
      headers: { "content-type": "application/x-www-form-urlencoded", origin: vigil.httpUrl },
    });
    const cookie = plain.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/^vigil_console=[^;]+; Path=\/console; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
    expect(cookie).not.toContain(ADMIN_TOKEN);
    const value = /^vigil_console=([^;]+)/.exec(cookie)?.[1] ?? "";
    expect(Buffer.from(value.split(".")[0] ?? "", "base64url").toString()).not.toContain(ADMIN_TOKEN.slice(0, 12));
    const tls = await fetch(`${vigil.httpUrl}/console/sign-in`, {
      method: "POST", redirect: "manual", body: new URLSearchParams({ token: ADMIN_TOKEN }).toString(),
      headers: { "content-type": "application/x-www-form-urlencoded", origin: `https://${new URL(vigil.httpUrl).host}`, "x-forwarded-proto": "https" },
    });
    expect(tls.headers.get("set-cookie")).toMatch(/; Secure$/);
  });

  it("puts a strict Content-Security-Policy and the other security headers on every page", async () => {
    const client = new ConsoleClient(vigil.httpUrl);
    for (const res of [await client.get("/console/sign-in"), (await client.signIn(ADMIN_TOKEN), await client.get("/console/approvals"))]) {
      const csp = res.headers.get("content-security-policy") ?? "";
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain("unsafe-inline");
      expect(csp).not.toContain("unsafe-eval");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("cache-control")).toBe("no-store");
      expect(res.text).not.toMatch(/<script>|<script [^>]*>[^<]|style="| on[a-z]+="/);
    }
  });

  it("serves its own assets and the vendored libraries, and nothing else", async () => {
    for (const name of ["console.css", "console.js", "htmx.min.js", "sse.js"]) {
      const res = await fetch(`${vigil.httpUrl}/console/static/${name}`);
      expect(res.status, name).toBe(200);
    }
    for (const name of ["../index.ts", "..%2Findex.ts", "vendor/htmx.min.js", "toString", "__proto__", "console.css/"]) {
      const res = await fetch(`${vigil.httpUrl}/console/static/${name}`, { redirect: "manual" });
      // "../" is resolved by the client to /console/index.ts: a page that asks for sign-in, no file.
      expect([303, 404], name).toContain(res.status);
      expect(await res.text(), name).not.toContain("createConsole");
    }
  });

  it("refuses a wrong token, then rate-limits the address", async () => {
    const client = new ConsoleClient(vigil.httpUrl);
    const wrong = "not-a-valid-token-at-all-0000";
    for (let i = 0; i < 3; i += 1) {
      const res = await client.signIn(wrong);
      expect(res.status).toBe(401);
      expect(res.text).not.toContain(wrong);
      expect(client.cookie).toBe("");
    }
    const limited = await client.signIn(ADMIN_TOKEN);
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("60");
    vigil.clock.now += 61_000;
    expect((await client.signIn(ADMIN_TOKEN)).status).toBe(303);
  });

  it("refuses a sign-in form posted from another site", async () => {
    const client = new ConsoleClient(vigil.httpUrl);
    const res = await client.post("/console/sign-in", { token: ADMIN_TOKEN }, { origin: "https://evil.example", "sec-fetch-site": "cross-site" });
    expect(res.status).toBe(403);
    expect(client.cookie).toBe("");
  });

  it("lets an approver approve from the form; exactly one retry goes through", async () => {
    const id = approvalIdOf(await envoy.check(CHANGE));
    const approver = new ConsoleClient(vigil.httpUrl);
    await approver.signIn(APPROVER_TOKEN);
    const list = await approver.get("/console/approvals/pending");
    expect(list.text).toContain(id);
    expect(list.text).toContain("tools/call create_change");
    const page = await approver.get(`/console/approvals/${id}`);
    expect(page.text).toContain('value="approve"');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? "";
    const res = await approver.post(`/console/approvals/${id}/decide`, { _csrf: csrf, decision: "approve", comment: "CHG-42 <b>ok</b>" });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`/console/approvals/${id}?done=approved`);
    const decided = await approver.get(`/console/approvals/${id}?done=approved`);
    expect(decided.text).toContain("CHG-42 &lt;b&gt;ok&lt;/b&gt;");
    expect(decided.text).toContain("spiffe://example.org/ns/ops/sa/change-approver");
    expect(allowed(await envoy.check(CHANGE))).toBe(true);
    expect(allowed(await envoy.check(CHANGE))).toBe(false);
  });

  it.each([
    { name: "no CSRF token", fields: (_csrf: string) => ({ decision: "approve" }), headers: {} },
    { name: "a CSRF token of another session", fields: (_csrf: string) => ({ decision: "approve", _csrf: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }), headers: {} },
    { name: "the right token from another origin", fields: (csrf: string) => ({ decision: "approve", _csrf: csrf }), headers: { origin: "https://evil.example", "sec-fetch-site": "cross-site" } },
  ] as { name: string; fields: (csrf: string) => Record<string, string>; headers: Record<string, string> }[])("refuses a decision with $name and decides nothing", async ({ fields, headers }) => {
    const id = approvalIdOf(await envoy.check(CHANGE));
    const approver = new ConsoleClient(vigil.httpUrl);
    await approver.signIn(APPROVER_TOKEN);
    const csrf = await approver.csrf(`/console/approvals/${id}`);
    const res = await approver.post(`/console/approvals/${id}/decide`, fields(csrf), headers);
    expect(res.status).toBe(403);
    expect(((await vigil.admin("GET", `/v1/approvals/${id}`)).json as { status: string }).status).toBe("pending");
  });

  it("explains a refusal in words: self-approval, and a holder who is not a named approver", async () => {
    const id = approvalIdOf(await envoy.check(IR_DELETE));
    const irBot = new ConsoleClient(vigil.httpUrl);
    await irBot.signIn(IR_BOT_TOKEN);
    const self = await irBot.post(`/console/approvals/${id}/decide`, { _csrf: await irBot.csrf(`/console/approvals/${id}`), decision: "approve" });
    expect(self.status).toBe(403);
    expect(self.text).toContain("made by you or by an identity you own");
    const other = new ConsoleClient(vigil.httpUrl);
    await other.signIn(APPROVER_TOKEN);
    const notNamed = await other.post(`/console/approvals/${id}/decide`, { _csrf: await other.csrf(`/console/approvals/${id}`), decision: "approve" });
    expect(notNamed.status).toBe(403);
    expect(notNamed.text).toContain("not among the approvers this rule names");
  });

  it("offers a read-only holder no buttons, and refuses its posted decision", async () => {
    const id = approvalIdOf(await envoy.check(IR_DELETE));
    const reader = new ConsoleClient(vigil.httpUrl);
    await reader.signIn(READ_ONLY_TOKEN);
    const page = await reader.get(`/console/approvals/${id}`);
    expect(page.text).not.toContain('value="approve"');
    expect(page.text).toContain("lacks the scope approvals:decide");
    const res = await reader.post(`/console/approvals/${id}/decide`, { _csrf: await reader.csrf(`/console/approvals/${id}`), decision: "approve" });
    expect(res.status).toBe(403);
    expect(res.text).toContain("approvals:decide");
  });

  it("shows attacker-chosen paths, headers and tool names escaped and inert", async () => {
    const evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    await envoy.check({ sourcePrincipal: `spiffe://example.org/ns/x/sa/${encodeURIComponent("\"><svg>")}`, ...sidecarOf("edr"), method: "DELETE", path: `/v1/forensics/${encodeURIComponent(evil)}`, headers: { "x-evil": evil } });
    await envoy.check({ ...CHANGE, body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: evil, arguments: {} } }) });
    const client = new ConsoleClient(vigil.httpUrl);
    await client.signIn(ADMIN_TOKEN);
    for (const path of ["/console/approvals", "/console/decisions", "/console/decisions?caller=%3Cscript%3E"]) {
      const page = await client.get(path);
      expect(page.text, path).not.toContain("<script>alert");
      expect(page.text, path).not.toContain("<img src=x");
      expect(page.text, path).not.toContain("<svg>");
    }
  });

  it("ends a session after the idle timeout, and at sign-out", async () => {
    const client = new ConsoleClient(vigil.httpUrl);
    await client.signIn(ADMIN_TOKEN);
    expect((await client.get("/console/policy")).status).toBe(200);
    const kept = client.cookie;
    vigil.clock.now += 16 * 60_000;
    expect((await client.get("/console/policy")).status).toBe(303);
    const again = new ConsoleClient(vigil.httpUrl);
    await again.signIn(ADMIN_TOKEN);
    const signedIn = again.cookie;
    const out = await again.post("/console/sign-out", { _csrf: await again.csrf() });
    expect(out.status).toBe(303);
    expect(again.cookie).toBe("");
    // The old cookie, replayed, is refused too.
    for (const replay of [kept, signedIn]) {
      const res = await fetch(`${vigil.httpUrl}/console/policy`, { redirect: "manual", headers: { cookie: replay } });
      expect(res.status).toBe(303);
    }
  });

  it("refuses a forged or tampered cookie", async () => {
    const client = new ConsoleClient(vigil.httpUrl);
    await client.signIn(READ_ONLY_TOKEN);
    const [payload = "", mac = ""] = client.cookie.replace("vigil_console=", "").split(".");
    const fields = JSON.parse(Buffer.from(payload, "base64url").toString()) as unknown[];
    fields[3] = (fields[3] as number) + 1;
    const tampered = `vigil_console=${Buffer.from(JSON.stringify(fields)).toString("base64url")}.${mac}`;
    for (const cookie of [tampered, "vigil_console=e30.AAAA", "vigil_console=" + "A".repeat(600)]) {
      const res = await fetch(`${vigil.httpUrl}/console/policy`, { redirect: "manual", headers: { cookie } });
      expect(res.status).toBe(303);
    }
  });

  it("revokes and reinstates from the identity page: the next Check is denied, then allowed", async () => {
    const admin = new ConsoleClient(vigil.httpUrl);
    await admin.signIn(ADMIN_TOKEN);
    expect(allowed(await envoy.check(DEPLOY))).toBe(true);
    const q = `/console/identity?q=${encodeURIComponent(DEPLOYER)}`;
    const page = await admin.get(q);
    expect(page.text).toContain('action="/console/identity/revoke"');
    const revoked = await admin.post("/console/identity/revoke", { _csrf: await admin.csrf(q), subject: DEPLOYER, reason: "pipeline compromised <b>" });
    expect(revoked.status).toBe(303);
    expect(allowed(await envoy.check(DEPLOY))).toBe(false);
    const after = await admin.get(q);
    expect(after.text).toContain("pipeline compromised &lt;b&gt;");
    expect(after.text).toContain("admin:ops-admin");
    const reinstated = await admin.post("/console/identity/reinstate", { _csrf: await admin.csrf(q), subject: DEPLOYER, reason: "rotated and checked" });
    expect(reinstated.status).toBe(303);
    expect(allowed(await envoy.check(DEPLOY))).toBe(true);
  });

  it("never shows back a raw key typed into the identity search", async () => {
    const admin = new ConsoleClient(vigil.httpUrl);
    await admin.signIn(ADMIN_TOKEN);
    const res = await admin.get(`/console/identity?q=${encodeURIComponent(K1)}`);
    expect(res.status).toBe(400);
    expect(res.text).not.toContain(K1);
    expect(res.text).toContain("not shown back");
  });

  it("streams decisions as they are made, filtered, over server-sent events", async () => {
    const admin = new ConsoleClient(vigil.httpUrl);
    await admin.signIn(ADMIN_TOKEN);
    const controller = new AbortController();
    const res = await fetch(`${vigil.httpUrl}/console/decisions/stream?outcome=allow&caller=deployer`, { headers: { cookie: admin.cookie }, signal: controller.signal });
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const reader = res.body?.getReader();
    if (reader === undefined) throw new Error("no body");
    let text = "";
    const seen = (async () => {
      while (!text.includes("event: decision")) {
        const chunk = await reader.read();
        if (chunk.done) break;
        text += Buffer.from(chunk.value).toString();
      }
    })();
    await envoy.check(IR_DELETE); // filtered out: another caller, not an allow
    await envoy.check(DEPLOY);
    await seen;
    controller.abort();
    expect(text).toContain("event: decision");
    expect(text).toContain(DEPLOYER);
    expect(text).not.toContain(IR_BOT);
    expect((await fetch(`${vigil.httpUrl}/console/decisions/stream`, { redirect: "manual" })).status).toBe(401);
  });

  it("shows the active policy's version and rules", async () => {
    const admin = new ConsoleClient(vigil.httpUrl);
    await admin.signIn(READ_ONLY_TOKEN);
    const page = await admin.get("/console/policy");
    expect(page.text).toContain(vigil.policy().version);
    expect(page.text).toContain("change-mgmt/");
    expect((page.text.match(/<tr><td>/g) ?? []).length).toBe(vigil.policy().ruleCount);
  });
});

describe("console policy page with a rule in shadow", () => {
  let vigil: TestVigil;
  let envoy: EnvoyClient;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "vigil-console-shadow-"));
    cpSync("examples/policies", dir, { recursive: true, filter: (src) => !src.includes("/tests") });
    writeFileSync(join(dir, "trial.yaml"), [
      "apiVersion: vigil.dev/v1alpha1", "kind: Policy", "metadata:", "  name: staging-freeze-trial", "spec:",
      "  destinations: [\"deploy-api\"]", "  rules:", "    - name: freeze-staging", "      shadow: true", "      methods: [POST]",
      "      paths: [\"/v1/deploy\"]", "      context: { env: staging }", "      outcome: deny", "      reason: staging is frozen (trial)", "",
    ].join("\n"));
    vigil = await startTestVigil({ policyDir: dir, console: { enabled: true } });
    envoy = createEnvoyClient(vigil.grpcAddress);
  });
  afterAll(async () => {
    envoy.close();
    await vigil.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("lists the shadow rule and what it would have decided, while the answer stays an allow", async () => {
    const admin = new ConsoleClient(vigil.httpUrl);
    await admin.signIn(READ_ONLY_TOKEN);
    expect((await admin.get("/console/policy")).text).toContain("not triggered yet");
    expect(allowed(await envoy.check(DEPLOY))).toBe(true);
    expect(allowed(await envoy.check(DEPLOY))).toBe(true);
    const page = await admin.get("/console/policy");
    expect(page.text).toContain('data-testid="shadow-rules"');
    expect(page.text).toMatch(/staging-freeze-trial\/freeze-staging<\/td><td><span class="status deny">deny<\/span><\/td><td><span class="status deny">deny ×2<\/span>/);
  });
});
