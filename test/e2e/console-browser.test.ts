// The console in a real browser: playwright-core driving Debian's chromium (installed by
// scripts/setup-system.sh) against the real server, with Checks over real gRPC. Sign in; a
// stepped-up Check appears on the approvals page without a reload; approving it in the browser
// lets exactly one retry through; the live feed shows a decision; revoking from the identity page
// denies the next Check; attacker-chosen HTML stays text and runs nothing; CSRF and idle expiry
// hold. With VIGIL_SCREENSHOTS=DIR each page is saved there (README's screenshots come from it).
// Without chromium the suite is skipped saying why, except under CI=true, where that fails.

import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEnvoyClient, type DecodedCheckResponse, type EnvoyClient, type EnvoyLikeRequest } from "../support/envoy-client.js";
import { DEPLOYER, SUPPORT_BOT } from "../support/example-world.js";
import { ADMIN_TOKEN, APPROVER_TOKEN, startTestVigil, type TestVigil } from "../support/vigil.js";

const CHROMIUM = process.env.VIGIL_CHROMIUM ?? "/usr/bin/chromium";
const available = existsSync(CHROMIUM);
if (!available && process.env.CI === "true") {
  throw new Error(`console browser tests need chromium at ${CHROMIUM} (scripts/setup-system.sh installs it); under CI=true a missing browser is a failure`);
}
if (!available) console.warn(`console browser tests skipped: no chromium at ${CHROMIUM} (run scripts/setup-system.sh)`);

const SHOTS = process.env.VIGIL_SCREENSHOTS;
/** How long a page may take to show what the server already has (polling is every 2 s). */
const SHOWS_WITHIN = { timeout: 10_000 };

const sidecarOf = (service: string): EnvoyLikeRequest => ({ host: service, destination: service, destinationPrincipal: `spiffe://example.org/ns/vigil-demo/sa/${service}` });
const CHANGE: EnvoyLikeRequest = {
  sourcePrincipal: SUPPORT_BOT, ...sidecarOf("change-mgmt"), method: "POST", path: "/mcp",
  headers: { "content-type": "application/json" }, contextExtensions: { env: "prod" },
  body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "create_change", arguments: { ticket: "CHG-7" } } }),
};
const DEPLOY: EnvoyLikeRequest = { sourcePrincipal: DEPLOYER, ...sidecarOf("deploy-api"), method: "POST", path: "/v1/deploy", contextExtensions: { action: "deploy", env: "staging" } };
const allowed = (res: DecodedCheckResponse): boolean => (res.status?.code ?? 0) === 0;
const approvalIdOf = (res: DecodedCheckResponse): string => (JSON.parse(res.denied_response?.body ?? "{}") as { approval_id?: string }).approval_id ?? "";

describe.skipIf(!available)("console in chromium", () => {
  let vigil: TestVigil;
  let envoy: EnvoyClient;
  let browser: Browser;
  const dialogs: string[] = [];

  beforeAll(async () => {
    vigil = await startTestVigil({ console: { enabled: true } });
    envoy = createEnvoyClient(vigil.grpcAddress);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
    if (SHOTS !== undefined) mkdirSync(SHOTS, { recursive: true });
  }, 60_000);

  afterAll(async () => {
    await browser.close();
    envoy.close();
    await vigil.close();
  });

  async function signedIn(token: string): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1360, height: 860 } });
    // Marks when htmx has opened the live event stream (through the DevTools protocol: the page's CSP allows no inline script).
    await page.addInitScript({ content: "document.addEventListener('htmx:sseOpen', () => { document.documentElement.dataset.sseOpen = 'yes'; });" });
    page.on("dialog", (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    await page.goto(`${vigil.httpUrl}/console/approvals`);
    await page.fill("input[name=token]", token);
    await page.click("button[type=submit]");
    await page.waitForURL("**/console/approvals");
    return page;
  }

  async function shot(page: Page, name: string): Promise<void> {
    if (SHOTS !== undefined) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  }

  it("signs in, shows a new step-up without a reload, and approving it lets exactly one retry through", async () => {
    const page = await signedIn(APPROVER_TOKEN);
    await expect.poll(() => page.locator("[data-testid=no-pending]").count()).toBe(1);
    const id = approvalIdOf(await envoy.check(CHANGE));
    expect(id).toMatch(/^apr_/);
    const row = page.locator(`tr[data-approval="${id}"]`);
    await row.waitFor(SHOWS_WITHIN);
    expect(await row.innerText()).toContain("tools/call create_change");
    await shot(page, "approvals");
    await row.locator("a").click();
    await page.waitForURL(`**/console/approvals/${id}`);
    await page.fill("textarea[name=comment]", "CHG-7 reviewed");
    await shot(page, "approval");
    await page.click("button[value=approve]");
    await page.waitForURL(`**/console/approvals/${id}?done=approved`);
    expect(await page.locator(".notice.ok").innerText()).toContain("Approved");
    expect(await page.locator("[data-testid=approval]").innerText()).toContain("CHG-7 reviewed");
    expect(allowed(await envoy.check(CHANGE))).toBe(true);
    expect(allowed(await envoy.check(CHANGE))).toBe(false);
    await page.close();
  }, 60_000);

  it("shows a decision in the live feed as it is made", async () => {
    const page = await signedIn(ADMIN_TOKEN);
    await page.goto(`${vigil.httpUrl}/console/decisions?caller=deployer`);
    // htmx opens the event stream once the page has loaded; wait for it before deciding.
    await page.waitForFunction("document.documentElement.dataset.sseOpen === 'yes'");
    const before = await page.locator("[data-testid=decision]").count();
    await envoy.check(DEPLOY);
    await expect.poll(() => page.locator("[data-testid=decision]").count(), SHOWS_WITHIN).toBe(before + 1);
    const item = page.locator("[data-testid=decision]").first();
    expect(await item.innerText()).toContain(DEPLOYER);
    await item.locator("summary").click();
    expect(await item.locator("dl").innerText()).toContain("decision_id");
    await shot(page, "decisions");
    await page.close();
  }, 60_000);

  it("revokes from the identity page, and the next Check is denied", async () => {
    const page = await signedIn(ADMIN_TOKEN);
    expect(allowed(await envoy.check(DEPLOY))).toBe(true);
    await page.goto(`${vigil.httpUrl}/console/identity`);
    await page.fill("input[name=q]", DEPLOYER);
    await page.click("form.search button");
    await page.fill("form.revoke input[name=reason]", "pipeline token exposed in a build log");
    await page.click("form.revoke button");
    await page.waitForURL("**/console/identity?**done=revoked");
    expect(allowed(await envoy.check(DEPLOY))).toBe(false);
    expect(await page.locator("[data-testid=signals]").innerText()).toContain("pipeline token exposed");
    await shot(page, "identity");
    await page.fill("form.reinstate input[name=reason]", "token rotated");
    await page.click("form.reinstate button");
    await page.waitForURL("**/console/identity?**done=reinstated");
    expect(allowed(await envoy.check(DEPLOY))).toBe(true);
    await page.goto(`${vigil.httpUrl}/console/policy`);
    await shot(page, "policy");
    await page.close();
  }, 60_000);

  it("shows HTML and script from a request's path, headers and tool name as text, and runs none of it", async () => {
    const evil = "<img src=x onerror=alert(1)><script>alert(2)</script>";
    await envoy.check({ ...CHANGE, path: `/mcp?q=${encodeURIComponent(evil)}`, headers: { "content-type": "application/json", "x-evil": evil },
      body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/call", params: { name: `create_change${evil}`, arguments: {} } }) });
    const page = await signedIn(ADMIN_TOKEN);
    await page.goto(`${vigil.httpUrl}/console/decisions`);
    const item = page.locator("[data-testid=decision]").first();
    await item.waitFor(SHOWS_WITHIN);
    await item.locator("summary").click();
    expect(await item.innerText()).toContain("<img src=x onerror=alert(1)>");
    expect(await page.locator("img").count()).toBe(0);
    expect(await page.locator("main script").count()).toBe(0);
    expect(dialogs).toEqual([]);
    await page.close();
  }, 60_000);

  it("refuses a form whose CSRF token was changed, and ends an idle session", async () => {
    const page = await signedIn(APPROVER_TOKEN);
    const id = approvalIdOf(await envoy.check({ ...CHANGE, body: JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "create_change", arguments: { ticket: "CHG-8" } } }) }));
    await page.goto(`${vigil.httpUrl}/console/approvals/${id}`);
    await page.evaluate("document.querySelector('form.decide input[name=_csrf]').value = 'forged'");
    const [response] = await Promise.all([page.waitForResponse((r) => r.url().endsWith("/decide")), page.click("form.decide button[value=approve]")]);
    expect(response.status()).toBe(403);
    expect(((await vigil.admin("GET", `/v1/approvals/${id}`)).json as { status: string }).status).toBe("pending");
    vigil.clock.now += 16 * 60_000;
    await page.goto(`${vigil.httpUrl}/console/approvals`);
    expect(page.url()).toContain("/console/sign-in");
    await shot(page, "sign-in");
    await page.close();
  }, 60_000);
});
