// Hostile rows for issue #8, hole 2 and the non-normal paths: a caller must not pick which
// workload's rules judge it (Host of another service, no Host, port/case/trailing-dot tricks,
// another workload's principal, a host outside a gateway's list), and a path that is not in
// normal form must not slip past path rules. Real Vigil servers on loopback, requests encoded
// with Envoy's official protos, one row per attack with its expected outcome and reason.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEnvoyClient, type DecodedCheckResponse, type EnvoyClient, type EnvoyLikeRequest } from "../support/envoy-client.js";
import { CRM_SYNC, DEPLOYER, IR_BOT, K1, K1_FP, SUPPORT_BOT } from "../support/example-world.js";
import { startTestVigil, type TestVigil } from "../support/vigil.js";

type Outcome = "allow" | "deny" | "step_up" | "delay" | "revoke";

/** The SVID of a demo workload's sidecar (what Envoy sends as destination.principal). */
const svid = (workload: string): string => `spiffe://example.org/ns/vigil-demo/sa/${workload}`;

function answer(res: DecodedCheckResponse): { outcome: Outcome; reason: string; rule: string } {
  const rule = res.dynamic_metadata?.fields?.rule?.stringValue ?? "";
  if (res.status?.code === undefined || res.status.code === 0) return { outcome: "allow", reason: "", rule };
  const body = JSON.parse(res.denied_response?.body ?? "{}") as { outcome: Outcome; reason: string };
  return { outcome: body.outcome, reason: body.reason, rule };
}

interface Row {
  attack: string;
  request: EnvoyLikeRequest;
  outcome: Outcome;
  /** A piece of the reason (denials) or the deciding rule (allows). */
  because: string;
}

/** Asserts one row; a denial must say why, so a row cannot pass for an unrelated reason. */
async function expectRow(client: EnvoyClient, row: Row): Promise<void> {
  const got = answer(await client.check(row.request));
  expect(got.outcome, row.attack).toBe(row.outcome);
  if (row.outcome === "allow") expect(got.rule, row.attack).toBe(row.because);
  else expect(got.reason, row.attack).toContain(row.because);
}

const NO_RULE = "no rule";

// The support bot may read tickets (tickets/support-bot-read), nothing on payments; the CRM sync
// job may read payments (payments/crm-sync-read).
const readTicket = (extra: EnvoyLikeRequest): EnvoyLikeRequest => ({ sourcePrincipal: SUPPORT_BOT, method: "GET", path: "/api/tickets/4711", ...extra });
const readPayment = (extra: EnvoyLikeRequest): EnvoyLikeRequest => ({ sourcePrincipal: CRM_SYNC, method: "GET", path: "/v1/payments/991", ...extra });

describe("the payments sidecar (--destination payments) cannot be talked into another workload's rules", () => {
  let vigil: TestVigil;
  let client: EnvoyClient;
  beforeAll(async () => {
    vigil = await startTestVigil({ destination: { name: "payments" } });
    client = createEnvoyClient(vigil.grpcAddress);
  });
  afterAll(async () => {
    client.close();
    await vigil.close();
  });

  const payments = { destination: "payments", destinationPrincipal: svid("payments") };
  const rows: Row[] = [
    { attack: "honest: the CRM job reads a payment", request: readPayment({ host: "payments", ...payments }), outcome: "allow", because: "payments/crm-sync-read" },
    { attack: "Host of another service (tickets)", request: readTicket({ host: "tickets", ...payments }), outcome: "deny", because: NO_RULE },
    { attack: "Host tickets with a port", request: readTicket({ host: "tickets:8443", ...payments }), outcome: "deny", because: NO_RULE },
    { attack: "Host TICKETS in upper case", request: readTicket({ host: "TICKETS", ...payments }), outcome: "deny", because: NO_RULE },
    { attack: "Host tickets. with a trailing dot", request: readTicket({ host: "tickets.", ...payments }), outcome: "deny", because: NO_RULE },
    { attack: "Host tickets, route sets no destination extension", request: readTicket({ host: "tickets", ...payments, destination: null }), outcome: "deny", because: NO_RULE },
    {
      attack: "Host absent: the destination does not need it",
      request: readPayment({ host: "", headers: { ":authority": null }, ...payments }), outcome: "allow", because: "payments/crm-sync-read",
    },
    { attack: "Host absent, tickets path", request: readTicket({ host: "", headers: { ":authority": null }, ...payments }), outcome: "deny", because: NO_RULE },
    {
      attack: "destination.principal of another workload (tickets)",
      request: readTicket({ host: "tickets", destination: null, destinationPrincipal: svid("tickets") }), outcome: "deny", because: NO_RULE,
    },
    {
      attack: "a route copied from the tickets sidecar (extension tickets, settings payments)",
      request: readTicket({ host: "tickets", destination: "tickets", destinationPrincipal: svid("payments") }), outcome: "deny", because: "destination is ambiguous",
    },
    {
      attack: "x-envoy-original-host / x-forwarded-host naming tickets",
      request: readTicket({ host: "payments", ...payments, headers: { "x-forwarded-host": "tickets", "x-envoy-original-host": "tickets" } }),
      outcome: "deny", because: NO_RULE,
    },
  ];

  it.each(rows)("$attack → $outcome", async (row) => {
    await expectRow(client, row);
  });
});

describe("a sidecar without --destination takes the route's extension, else its own SVID", () => {
  let vigil: TestVigil;
  let client: EnvoyClient;
  beforeAll(async () => {
    vigil = await startTestVigil({ destination: { principals: { [svid("edr")]: "edr" } } });
    client = createEnvoyClient(vigil.grpcAddress);
  });
  afterAll(async () => {
    client.close();
    await vigil.close();
  });

  const rows: Row[] = [
    { attack: "honest: route extension tickets", request: readTicket({ host: "tickets", destination: "tickets", destinationPrincipal: svid("tickets") }), outcome: "allow", because: "tickets/support-bot-read" },
    { attack: "route extension TICKETS (operator's case is folded)", request: readTicket({ host: "x", destination: "TICKETS" }), outcome: "allow", because: "tickets/support-bot-read" },
    {
      attack: "Host tickets, no extension, the SVID (unmapped) is the destination",
      request: readTicket({ host: "tickets", destination: null, destinationPrincipal: svid("tickets") }), outcome: "deny", because: NO_RULE,
    },
    {
      attack: "no extension, the SVID maps to edr by settings",
      request: { sourcePrincipal: IR_BOT, method: "POST", path: "/v1/hosts/h-42/quarantine", host: "tickets", destination: null, destinationPrincipal: svid("edr") },
      outcome: "allow", because: "edr/ir-quarantine",
    },
    {
      attack: "Host tickets, no extension, no principal",
      request: readTicket({ host: "tickets", destination: null, destinationPrincipal: "" }), outcome: "deny", because: "no destination",
    },
    {
      attack: "Host tickets, no extension, principal not a SPIFFE ID",
      request: readTicket({ host: "tickets", destination: null, destinationPrincipal: "tickets" }), outcome: "deny", because: "not a SPIFFE ID",
    },
    {
      attack: "principal named like an object member (constructor)",
      request: readTicket({ host: "tickets", destination: null, destinationPrincipal: "constructor" }), outcome: "deny", because: "not a SPIFFE ID",
    },
    {
      attack: "an empty destination extension counts as none",
      request: readTicket({ host: "tickets", destination: "", destinationPrincipal: "" }), outcome: "deny", because: "no destination",
    },
  ];

  it.each(rows)("$attack → $outcome", async (row) => {
    await expectRow(client, row);
  });
});

describe("a gateway (destination.source: host) judges only the hosts it lists", () => {
  let vigil: TestVigil;
  let client: EnvoyClient;
  beforeAll(async () => {
    vigil = await startTestVigil({ destination: { source: "host", hosts: ["tickets", "payments"] } });
    client = createEnvoyClient(vigil.grpcAddress);
  });
  afterAll(async () => {
    client.close();
    await vigil.close();
  });

  const gw = { destination: null, destinationPrincipal: svid("gateway") };
  const rows: Row[] = [
    { attack: "honest: Host tickets", request: readTicket({ host: "tickets", ...gw }), outcome: "allow", because: "tickets/support-bot-read" },
    { attack: "Host TICKETS:8443", request: readTicket({ host: "TICKETS:8443", ...gw }), outcome: "allow", because: "tickets/support-bot-read" },
    { attack: "Host tickets.", request: readTicket({ host: "tickets.", ...gw }), outcome: "allow", because: "tickets/support-bot-read" },
    { attack: "Host outside the list (deploy-api)", request: readTicket({ host: "deploy-api", ...gw }), outcome: "deny", because: "not one this gateway fronts" },
    { attack: "Host with a Kelvin sign (tic\u212Aets)", request: readTicket({ host: "tic\u212Aets", ...gw }), outcome: "deny", because: "not one this gateway fronts" },
    { attack: "Host tickets with a non-numeric port", request: readTicket({ host: "tickets:x", ...gw }), outcome: "deny", because: "gateway fronts" },
    { attack: "Host absent", request: readTicket({ host: "", headers: { ":authority": null }, ...gw }), outcome: "deny", because: "no destination" },
    { attack: "Host tickets, the route says payments", request: readTicket({ host: "tickets", ...gw, destination: "payments" }), outcome: "deny", because: NO_RULE },
  ];

  it.each(rows)("$attack → $outcome", async (row) => {
    await expectRow(client, row);
  });
});

describe("non-normal paths do not slip past path rules", () => {
  let vigil: TestVigil;
  let client: EnvoyClient;
  beforeAll(async () => {
    vigil = await startTestVigil();
    client = createEnvoyClient(vigil.grpcAddress);
  });
  afterAll(async () => {
    client.close();
    await vigil.close();
  });

  const tickets = (path: string): EnvoyLikeRequest => readTicket({ host: "tickets", destination: "tickets", path });
  const quarantine = (path: string): EnvoyLikeRequest => ({ sourcePrincipal: IR_BOT, method: "POST", host: "edr", destination: "edr", path });
  const rows: Row[] = [
    { attack: "honest: /api/tickets/4711 with dots in the query", request: tickets("/api/tickets/4711?next=../../admin"), outcome: "allow", because: "tickets/support-bot-read" },
    { attack: "honest: /api/tickets/v1.2...3", request: tickets("/api/tickets/v1.2...3"), outcome: "allow", because: "tickets/support-bot-read" },
    { attack: "/v1/deploy/../admin", request: { sourcePrincipal: DEPLOYER, method: "POST", destination: "deploy-api", path: "/v1/deploy/../admin", contextExtensions: { action: "deploy", env: "staging" } }, outcome: "deny", because: "dot segment" },
    { attack: "//v1/deploy", request: { sourcePrincipal: DEPLOYER, method: "POST", destination: "deploy-api", path: "//v1/deploy", contextExtensions: { action: "deploy", env: "staging" } }, outcome: "deny", because: "empty segment" },
    { attack: "/v1/hosts/%2F..%2Fx/quarantine (one * segment)", request: quarantine("/v1/hosts/%2F..%2Fx/quarantine"), outcome: "deny", because: "encoded slash" },
    { attack: "/v1/hosts/%2f..%2fx/quarantine (lower case)", request: quarantine("/v1/hosts/%2f..%2fx/quarantine"), outcome: "deny", because: "encoded slash" },
    { attack: "/v1/hosts/%5C..%5Cx/quarantine", request: quarantine("/v1/hosts/%5C..%5Cx/quarantine"), outcome: "deny", because: "encoded slash or backslash" },
    { attack: "/api/tickets/.. (matches * as written)", request: tickets("/api/tickets/.."), outcome: "deny", because: "dot segment" },
    { attack: "/api/tickets/. ", request: tickets("/api/tickets/."), outcome: "deny", because: "dot segment" },
    { attack: "/api/./tickets/1", request: tickets("/api/./tickets/1"), outcome: "deny", because: "dot segment" },
    { attack: "backslashes: /api/tickets/1\\..\\..\\admin", request: tickets("/api/tickets/1\\..\\..\\admin"), outcome: "deny", because: "backslash" },
    { attack: "encoded dots: /api/tickets/%2e%2e", request: tickets("/api/tickets/%2e%2e"), outcome: "deny", because: "encoded dot" },
    { attack: "double encoding: /api/tickets/%252F..", request: tickets("/api/tickets/%252F.."), outcome: "deny", because: "double percent-encoding" },
    { attack: "path parameter: /api/tickets/1;..", request: tickets("/api/tickets/1;.."), outcome: "deny", because: "semicolon" },
    { attack: "encoded NUL: /api/tickets/1%00", request: tickets("/api/tickets/1%00"), outcome: "deny", because: "control character" },
    { attack: "malformed encoding: /api/tickets/%zz", request: tickets("/api/tickets/%zz"), outcome: "deny", because: "malformed percent-encoding" },
    { attack: "relative path: api/tickets/1", request: tickets("api/tickets/1"), outcome: "deny", because: "does not start with /" },
    { attack: "absolute form: https://tickets/api/tickets/1", request: tickets("https://tickets/api/tickets/1"), outcome: "deny", because: "does not start with /" },
    { attack: "fragment: /api/tickets/1#x", request: tickets("/api/tickets/1#x"), outcome: "deny", because: "fragment" },
  ];

  it.each(rows)("$attack → $outcome", async (row) => {
    await expectRow(client, row);
  });

  it("keeps a revoke a revoke: a leaked key on a non-normal path is still revoked", async () => {
    const put = await vigil.admin("POST", "/v1/signals", { kind: "credential", subject: K1_FP, data: { state: "leaked", owner: DEPLOYER } });
    expect(put.status).toBe(201);
    const got = answer(await client.check(readTicket({ host: "tickets", destination: "tickets", path: "/api/tickets/..", apiKey: K1 })));
    expect(got).toMatchObject({ outcome: "revoke", rule: "guards/compromised-credential" });
  });
});
