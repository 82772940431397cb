// Behaviour baselines end to end (issue #12): synthetic traffic through the real gRPC server,
// a learning period, then each anomaly kind becomes a `behavior` signal in the store, and the
// example policy steps up privileged actions on it. Opt-outs, acceptance through the admin API
// (with its scope, audited) and a restart that keeps the baseline.

import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createEnvoyClient, type DecodedCheckResponse, type EnvoyClient, type EnvoyLikeRequest } from "../support/envoy-client.js";
import { CRM_SYNC, SUPPORT_BOT } from "../support/example-world.js";
import { ADMIN_TOKEN, READ_ONLY_TOKEN, startTestVigil, type TestVigil } from "../support/vigil.js";

const BEHAVIOR_TOKEN = "test-behavior-token-0123456789abcdef";
const LEARNING_MS = 60_000;
const WINDOW_MS = 10_000;

const settings = {
  behavior: { learningPeriodMs: LEARNING_MS, windowMs: WINDOW_MS, rateMinimum: 20, rateBurst: 3, fanoutAllowance: 1 },
  http: {
    adminTokens: [
      { token: ADMIN_TOKEN, name: "ops-admin", scopes: ["signals:write" as const, "signals:reinstate" as const] },
      { token: BEHAVIOR_TOKEN, name: "soc-analyst", scopes: ["behavior:write" as const] },
      { token: READ_ONLY_TOKEN, name: "auditor", scopes: [] },
    ],
  },
};

const ticket = (n: number, extra: EnvoyLikeRequest = {}): EnvoyLikeRequest => ({
  sourcePrincipal: SUPPORT_BOT, host: "tickets", method: "GET", path: `/api/tickets/T-${String(n)}`, ...extra,
});
const paymentStatus: EnvoyLikeRequest = { sourcePrincipal: SUPPORT_BOT, host: "payments", method: "GET", path: "/v1/payments/p-77/status" };

function outcome(res: DecodedCheckResponse): { outcome: string; rule: string } {
  const rule = res.dynamic_metadata?.fields?.rule?.stringValue ?? "";
  if (res.status?.code === undefined || res.status.code === 0) return { outcome: "allow", rule };
  const body = JSON.parse(res.denied_response?.body ?? "{}") as { outcome?: string };
  return { outcome: body.outcome ?? "?", rule };
}

async function learnTickets(vigil: TestVigil, client: EnvoyClient): Promise<void> {
  for (let i = 0; i < 5; i++) expect(outcome(await client.check(ticket(i))).outcome).toBe("allow");
  await vigil.behavior.settled();
}

function vigilCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { timeout: 30_000, env: { ...process.env, VIGIL_ADMIN_TOKEN: "" } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr });
    });
  });
}

function anomaliesOf(vigil: TestVigil, caller: string): string[] {
  return vigil.store.get(caller, "behavior", "", vigil.clock.now)?.data.anomalies ?? [];
}

describe("behaviour baselines through the real gRPC server", () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-behavior-"));
  const open: { vigil: TestVigil; client: EnvoyClient }[] = [];
  afterEach(async () => {
    for (const { vigil, client } of open.splice(0)) {
      client.close();
      await vigil.close();
    }
  });
  afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

  async function start(overrides: Parameters<typeof startTestVigil>[0] = {}): Promise<{ vigil: TestVigil; client: EnvoyClient }> {
    const vigil = await startTestVigil({ ...settings, ...overrides, behavior: { ...settings.behavior, ...overrides.behavior } });
    const client = createEnvoyClient(vigil.grpcAddress);
    open.push({ vigil, client });
    return { vigil, client };
  }

  it("steps up an agent that starts calling payments after only tickets, from its first request (scenario 17)", async () => {
    const { vigil, client } = await start();
    await learnTickets(vigil, client);
    // While learning, the same lookup would simply be learned: nothing is flagged.
    expect(anomaliesOf(vigil, SUPPORT_BOT)).toEqual([]);

    vigil.clock.now += LEARNING_MS;
    expect(outcome(await client.check(ticket(9)))).toEqual({ outcome: "allow", rule: "tickets/support-bot-read" });
    const first = outcome(await client.check(paymentStatus));
    expect(first).toEqual({ outcome: "step_up", rule: "guards/behavior-anomaly-privileged" });

    await vigil.behavior.settled();
    const signal = vigil.store.get(SUPPORT_BOT, "behavior", "", vigil.clock.now);
    expect(signal?.data.anomalies).toEqual(["new_action"]);
    expect(signal?.data.reason).toContain("new action payments GET /v1/payments/*/status");
    expect(signal?.expiresAt).toBeGreaterThan(vigil.clock.now);
    // An unprivileged read keeps following its own rule.
    expect(outcome(await client.check(ticket(10))).outcome).toBe("allow");
  });

  it("reports a new source network, a rate spike and a fan-out as behavior signals", async () => {
    const { vigil, client } = await start();
    await learnTickets(vigil, client);
    vigil.clock.now += LEARNING_MS;

    await client.check(ticket(1, { sourceAddress: "192.0.2.44" }));
    await vigil.behavior.settled();
    expect(anomaliesOf(vigil, SUPPORT_BOT)).toEqual(["new_source_network"]);

    for (let i = 0; i < 25; i++) await client.check(ticket(i));
    await vigil.behavior.settled();
    expect(anomaliesOf(vigil, SUPPORT_BOT)).toEqual(["new_source_network", "rate_spike"]);
    expect(vigil.store.get(SUPPORT_BOT, "behavior")?.data.reason).toMatch(/rate spike: 2\d requests in 10 s/);

    // The CRM job learned one destination per window; three in one window is a fan-out.
    const crm = (host: string): EnvoyLikeRequest => ({ sourcePrincipal: CRM_SYNC, host, method: "GET", path: "/v1/customers/c-1" });
    await client.check(crm("payments"));
    await vigil.behavior.settled();
    vigil.clock.now += LEARNING_MS;
    for (const host of ["payments", "tickets", "storage"]) await client.check(crm(host));
    await vigil.behavior.settled();
    expect(anomaliesOf(vigil, CRM_SYNC)).toContain("fan_out");

    const scrape = await (await fetch(`${vigil.httpUrl}/metrics`)).text();
    expect(scrape).toMatch(/vigil_behavior_anomalies_total\{kind="fan_out"\} [1-9]/);
    expect(scrape).toMatch(/vigil_behavior_anomalies_total\{kind="rate_spike"\} 1/);
    expect(scrape).toMatch(/vigil_behavior_callers 2/);
  });

  it("accepts a new action through the admin API, with its scope, and stops stepping it up", async () => {
    const { vigil, client } = await start();
    await learnTickets(vigil, client);
    vigil.clock.now += LEARNING_MS;
    expect(outcome(await client.check(paymentStatus)).outcome).toBe("step_up");
    await vigil.behavior.settled();

    const shown = await vigil.admin("GET", `/v1/behavior?caller=${encodeURIComponent(SUPPORT_BOT)}`, undefined, READ_ONLY_TOKEN);
    expect(shown.status).toBe(200);
    expect(shown.json).toMatchObject({
      caller: SUPPORT_BOT, learning: false, actions: ["tickets GET /api/tickets/*"], networks: ["10.0.1.0/24"],
      pending: [{ kind: "action", label: "payments GET /v1/payments/*/status" }],
    });

    const body = { caller: SUPPORT_BOT, actions: ["payments GET /v1/payments/*/status"] };
    expect((await vigil.admin("POST", "/v1/behavior/accept", body, "")).status).toBe(401);
    expect((await vigil.admin("POST", "/v1/behavior/accept", body, READ_ONLY_TOKEN)).status).toBe(403);
    expect((await vigil.admin("POST", "/v1/behavior/accept", body, ADMIN_TOKEN)).status).toBe(403);
    expect((await vigil.admin("POST", "/v1/behavior/accept", { caller: "not-a-spiffe-id" }, BEHAVIOR_TOKEN)).status).toBe(400);
    expect((await vigil.admin("POST", "/v1/behavior/accept", { caller: SUPPORT_BOT, networks: ["10.0.1.7/24"] }, BEHAVIOR_TOKEN)).status).toBe(400);
    expect((await vigil.admin("POST", "/v1/behavior/accept", { caller: "spiffe://example.org/ns/x/sa/never-seen" }, BEHAVIOR_TOKEN)).status).toBe(404);

    const accepted = await vigil.admin("POST", "/v1/behavior/accept", body, BEHAVIOR_TOKEN);
    expect(accepted.status).toBe(200);
    expect(accepted.json).toMatchObject({ caller: SUPPORT_BOT, actions: body.actions, cleared: ["new_action"] });
    await vigil.behavior.settled();
    expect(anomaliesOf(vigil, SUPPORT_BOT)).toEqual([]);
    expect(outcome(await client.check(paymentStatus))).toEqual({ outcome: "allow", rule: "payments/support-bot-payment-status" });
  });

  it("learns nothing from and reports nothing about an excluded caller or an excluded rule", async () => {
    const { vigil, client } = await start({ behavior: { excludeCallers: ["spiffe://example.org/ns/agents/**"] } });
    await learnTickets(vigil, client);
    vigil.clock.now += LEARNING_MS;
    expect(outcome(await client.check(paymentStatus)).outcome).toBe("allow");
    await vigil.behavior.settled();
    expect(anomaliesOf(vigil, SUPPORT_BOT)).toEqual([]);
    expect(vigil.behavior.show(SUPPORT_BOT)).toBeUndefined();

    const other = await start({ behavior: { excludeRules: ["payments/support-bot-payment-status"] } });
    await learnTickets(other.vigil, other.client);
    other.vigil.clock.now += LEARNING_MS;
    // The opted-out rule's requests are not learned and not written as anomalies; the baseline
    // still knows its other actions.
    await other.client.check(paymentStatus);
    await other.vigil.behavior.settled();
    expect(anomaliesOf(other.vigil, SUPPORT_BOT)).toEqual([]);
    expect(other.vigil.behavior.show(SUPPORT_BOT)?.pending).toEqual([]);
  });

  it("keeps the baseline across a restart: learning does not open again", async () => {
    const journalPath = join(dir, "restart", "journal.jsonl");
    const first = await start({ store: { journalPath } });
    await learnTickets(first.vigil, first.client);
    const learnedAt = first.vigil.clock.now;
    first.client.close();
    await first.vigil.close();
    open.splice(0);
    expect(existsSync(join(dir, "restart", "behavior.json"))).toBe(true);

    const second = await start({ store: { journalPath } });
    second.vigil.clock.now = learnedAt + LEARNING_MS;
    expect(second.vigil.behavior.show(SUPPORT_BOT)?.actions).toEqual(["tickets GET /api/tickets/*"]);
    expect(outcome(await second.client.check(ticket(3))).outcome).toBe("allow");
    expect(outcome(await second.client.check(paymentStatus)).outcome).toBe("step_up");
  });

  it("`vigil behavior show` and `vigil behavior accept` go through the admin API with the token's scope", async () => {
    const { vigil, client } = await start();
    await learnTickets(vigil, client);
    vigil.clock.now += LEARNING_MS;
    expect(outcome(await client.check(paymentStatus)).outcome).toBe("step_up");
    await vigil.behavior.settled();
    const tokenFile = join(dir, "soc.token");
    writeFileSync(tokenFile, `${BEHAVIOR_TOKEN}\n`, { mode: 0o600 });
    const url = ["--url", vigil.httpUrl, "--token-file", tokenFile];

    const shown = await vigilCli(["behavior", "show", ...url, SUPPORT_BOT]);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ pending: [{ kind: "action", label: "payments GET /v1/payments/*/status" }] });

    const refused = await vigilCli(["behavior", "accept", ...url, "raw-secret-not-a-caller"]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).not.toContain("raw-secret-not-a-caller");

    const accepted = await vigilCli(["behavior", "accept", ...url, SUPPORT_BOT, "--action", "payments GET /v1/payments/*/status"]);
    expect(accepted.code).toBe(0);
    expect(JSON.parse(accepted.stdout)).toMatchObject({ cleared: ["new_action"] });
    expect(outcome(await client.check(paymentStatus)).outcome).toBe("allow");
  }, 60_000);
});
