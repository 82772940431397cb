// createDestinationResolver: which workload a request is judged under, from the route's context
// extension, the settings and the sidecar's own principal; a gateway's host allow-list. Plus the
// settings schema that refuses a gateway without a list.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseConfig, type DestinationConfig } from "../../src/config/index.js";
import { createDestinationResolver, gatewayHost, type AccessRequest } from "../../src/decision/index.js";

function request(opts: { host?: string; authority?: string; principal?: string; context?: Record<string, string> }): AccessRequest {
  return {
    receivedAt: 0,
    source: { principal: "spiffe://example.org/ns/agents/sa/support-bot", certificate: "", address: "", port: 0 },
    destination: { principal: opts.principal ?? "", certificate: "", address: "", port: 0 },
    requestId: "", method: "GET", path: "/", host: opts.host ?? "", scheme: "https", protocol: "HTTP/2",
    headers: opts.authority === undefined ? {} : { ":authority": opts.authority },
    body: "", contextExtensions: opts.context ?? {}, sni: "", malformed: [],
  };
}

const settings = (d: Partial<DestinationConfig>): DestinationConfig => parseConfig({ destination: d }).destination;
const PAYMENTS_SVID = "spiffe://example.org/ns/vigil-demo/sa/payments";

describe("createDestinationResolver (workload)", () => {
  it.each<[string, Partial<DestinationConfig>, Parameters<typeof request>[0], string]>([
    ["route extension", {}, { host: "tickets", context: { destination: "payments" } }, "payments"],
    ["route extension, case folded", {}, { context: { destination: "Payments" } }, "payments"],
    ["route extension, case folded after a lower-case start", {}, { context: { destination: "payMents-API" } }, "payments-api"],
    ["route extension already lower case, kept as is", {}, { context: { destination: "payments-api" } }, "payments-api"],
    ["route extension as a SPIFFE ID keeps its case", {}, { context: { destination: "spiffe://Example.org/x" } }, "spiffe://Example.org/x"],
    ["--destination, Host ignored", { name: "payments" }, { host: "tickets", principal: "spiffe://example.org/ns/x/sa/tickets" }, "payments"],
    ["route and settings agree", { name: "payments" }, { context: { destination: "payments" } }, "payments"],
    ["principal mapped by settings", { principals: { [PAYMENTS_SVID]: "payments" } }, { host: "tickets", principal: PAYMENTS_SVID }, "payments"],
    ["name wins over the mapping", { name: "edr", principals: { [PAYMENTS_SVID]: "payments" } }, { principal: PAYMENTS_SVID }, "edr"],
    ["unmapped principal, as a full SPIFFE ID", {}, { host: "tickets", principal: PAYMENTS_SVID }, PAYMENTS_SVID],
  ])("%s", (_name, d, req, expected) => {
    expect(createDestinationResolver(settings(d))(request(req))).toEqual({ name: expected });
  });

  it.each<[string, Partial<DestinationConfig>, Parameters<typeof request>[0], string]>([
    ["nothing at all, Host present", {}, { host: "tickets", authority: "tickets" }, "no destination"],
    ["empty route extension, nothing else", {}, { host: "tickets", context: { destination: "" } }, "no destination"],
    ["principal that is not a SPIFFE ID", {}, { host: "tickets", principal: "CN=tickets" }, "not a SPIFFE ID"],
    ["prototype member as principal", { principals: { [PAYMENTS_SVID]: "payments" } }, { principal: "constructor" }, "not a SPIFFE ID"],
    ["route and --destination disagree", { name: "payments" }, { context: { destination: "tickets" } }, "ambiguous"],
    ["route and the mapped principal disagree", { principals: { [PAYMENTS_SVID]: "payments" } }, { principal: PAYMENTS_SVID, context: { destination: "tickets" } }, "ambiguous"],
  ])("refuses: %s", (_name, d, req, because) => {
    expect(createDestinationResolver(settings(d))(request(req)).problem).toContain(because);
  });

  it("never takes the destination from the Host, whatever the Host says", () => {
    const resolve = createDestinationResolver(settings({ name: "payments" }));
    fc.assert(fc.property(fc.string(), fc.string(), (host, authority) => {
      expect(resolve(request({ host, authority, principal: PAYMENTS_SVID }))).toEqual({ name: "payments" });
    }));
  });
});

describe("createDestinationResolver (gateway: source host)", () => {
  const resolve = createDestinationResolver(settings({ source: "host", hosts: ["tickets", "payments.prod.svc"] }));
  it.each([
    ["tickets", "tickets"], ["TICKETS", "tickets"], ["tickets:8443", "tickets"], ["tickets.", "tickets"], ["Payments.Prod.Svc.:443", "payments.prod.svc"],
  ])("admits host %j as %s", (host, name) => {
    expect(resolve(request({ host }))).toEqual({ name });
  });

  it("reads :authority when the host field is empty", () => {
    expect(resolve(request({ authority: "tickets" }))).toEqual({ name: "tickets" });
  });

  it.each(["deploy-api", "tic\u212Aets", "tickets:x", "tickets..", "[::1]:443", "tickets\u0000", "*.tickets", "tickets:8443:1"])("refuses host %j", (host) => {
    expect(resolve(request({ host })).problem).toContain("not one this gateway fronts");
  });

  it("refuses a request without a host", () => {
    expect(resolve(request({})).problem).toContain("no destination");
  });

  it("lets the route's extension name the destination", () => {
    expect(resolve(request({ host: "tickets", context: { destination: "edr" } }))).toEqual({ name: "edr" });
  });

  it("admits nothing outside the list, whatever the host", () => {
    fc.assert(fc.property(fc.string(), (host) => {
      const got = resolve(request({ host }));
      if (got.name !== undefined) expect(["tickets", "payments.prod.svc"]).toContain(got.name);
    }));
  });

  it("gatewayHost folds ASCII only", () => {
    expect(gatewayHost("\u212A")).toBe("");
    expect(gatewayHost("ABC-1.x")).toBe("abc-1.x");
  });
});

describe("destination settings", () => {
  it.each<[string, unknown, string]>([
    ["a gateway without hosts", { source: "host" }, "hosts"],
    ["hosts without source host", { hosts: ["tickets"] }, "hosts"],
    ["a name with upper case", { name: "Payments" }, "name"],
    ["a name with a port", { name: "payments:8443" }, "name"],
    ["a mapping key that is not a SPIFFE ID", { principals: { payments: "payments" } }, "principals"],
    ["an unknown source", { source: "header" }, "source"],
  ])("refuses %s", (_name, destination, path) => {
    expect(() => parseConfig({ destination })).toThrow(path);
  });

  it("defaults to the workload, with no name", () => {
    expect(parseConfig({}).destination).toEqual({ source: "workload", name: "", principals: {}, hosts: [] });
  });
});
