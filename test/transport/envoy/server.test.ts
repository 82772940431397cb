import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AccessRequest, Decision } from "../../../src/model/index.js";
import { VigilError } from "../../../src/errors/index.js";
import {
  encodeTransportRefusal,
  FAIL_CLOSED_REASON,
  STATIC_FAIL_CLOSED,
  startAuthzServer,
  TRANSPORT_REFUSAL_REASON,
  type AuthzServer,
} from "../../../src/transport/envoy/index.js";
import { createEnvoyClient, decodeWithEnvoyProtos, headerValue, type EnvoyClient } from "../../support/envoy-client.js";
import { judgeBy } from "../../support/judge.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function decision(overrides: Partial<Decision> = {}): Decision {
  return {
    id: "d-42",
    outcome: "allow",
    rule: "rule-a",
    reason: "allowed",
    caller: "spiffe://example.org/ns/ci/sa/release-pipeline",
    trustDomain: "example.org",
    credentialFingerprint: "",
    headersToRemove: [],
    durationNs: 1,
    ...overrides,
  };
}

describe("ext_authz gRPC server", () => {
  let server: AuthzServer;
  let client: EnvoyClient;
  let decide: (req: AccessRequest) => Decision = () => decision();
  const seen: AccessRequest[] = [];
  const errors: unknown[] = [];

  beforeAll(async () => {
    server = await startAuthzServer({
      host: "127.0.0.1",
      port: 0,
      maxHeaderBytes: 8 * 1024,
      judge: judgeBy((req) => {
        seen.push(req);
        return decide(req);
      }),
      onError: (err) => errors.push(err),
    });
    client = createEnvoyClient(`127.0.0.1:${server.port}`);
  });

  afterAll(async () => {
    client.close();
    await server.close();
  });

  beforeEach(() => {
    seen.length = 0;
    errors.length = 0;
    decide = () => decision();
  });

  it("hands decide the request as Envoy sent it", async () => {
    await client.check({
      method: "POST",
      path: "/mcp",
      authorization: "Bearer t0k3n",
      contextExtensions: { action: "tools/call" },
      body: "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\"}",
      sni: "mcp.example",
    });
    expect(seen).toHaveLength(1);
    const req = seen[0]!;
    expect(req).toMatchObject({
      source: { principal: "spiffe://example.org/ns/ci/sa/release-pipeline", address: "10.0.1.17", port: 48212 },
      destination: { principal: "spiffe://example.org/ns/prod/sa/payments-api" },
      method: "POST",
      path: "/mcp",
      body: "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\"}",
      sni: "mcp.example",
      malformed: [],
    });
    expect(req.headers.authorization).toBe("Bearer t0k3n");
    expect(req.headers[":method"]).toBe("POST");
    expect(req.contextExtensions.action).toBe("tools/call");
  });

  it("allows with OK, identity headers for the upstream and the decision id for the client", async () => {
    decide = () => decision({ credentialFingerprint: "sha256:ff" });
    const res = await client.check();
    expect(res.status?.code ?? 0).toBe(0);
    expect(headerValue(res.ok_response?.headers, "x-vigil-decision-id")).toBe("d-42");
    expect(headerValue(res.ok_response?.headers, "x-vigil-caller")).toBe("spiffe://example.org/ns/ci/sa/release-pipeline");
    expect(headerValue(res.ok_response?.headers, "x-vigil-trust-domain")).toBe("example.org");
    expect(headerValue(res.ok_response?.headers, "x-vigil-credential-fingerprint")).toBe("sha256:ff");
    expect(headerValue(res.ok_response?.response_headers_to_add, "x-vigil-decision-id")).toBe("d-42");
  });

  it("strips every client-sent x-vigil-* header it does not set itself", async () => {
    const res = await client.check({ headers: { "x-vigil-caller": "spiffe://evil/x", "x-vigil-approval-id": "forged" } });
    expect(headerValue(res.ok_response?.headers, "x-vigil-caller")).toBe("spiffe://example.org/ns/ci/sa/release-pipeline");
    expect(res.ok_response?.headers_to_remove).toContain("x-vigil-approval-id");
    expect(res.ok_response?.headers_to_remove).not.toContain("x-vigil-caller");
  });

  it.each([
    { outcome: "deny", http: "Forbidden", extra: {} },
    { outcome: "revoke", http: "Forbidden", extra: {} },
    { outcome: "step_up", http: "Forbidden", extra: { approvalId: "apr-1" } },
    { outcome: "delay", http: "TooManyRequests", extra: { retryAfterSeconds: 30 } },
  ] as const)("answers $outcome as an OK RPC carrying PERMISSION_DENIED and HTTP $http", async ({ outcome, http, extra }) => {
    decide = () => decision({ outcome, reason: "change window closed", ...extra });
    const res = await client.check();
    expect(res.status).toEqual({ code: 7, message: "change window closed" });
    expect(res.denied_response?.status?.code).toBe(http);
    expect(JSON.parse(res.denied_response?.body ?? "")).toMatchObject({ decision_id: "d-42", outcome, reason: "change window closed" });
    if (outcome === "step_up") expect(headerValue(res.denied_response?.headers, "x-vigil-step-up")).toBe("approval");
    if (outcome === "delay") expect(headerValue(res.denied_response?.headers, "retry-after")).toBe("30");
  });

  it("denies, still as an OK RPC, when decide throws, and reports the error", async () => {
    const boom = new Error("policy index corrupted: secret detail");
    decide = () => {
      throw boom;
    };
    const res = await client.check();
    expect(res.status?.code).toBe(13);
    expect(res.denied_response?.status?.code).toBe("Forbidden");
    const body = JSON.parse(res.denied_response?.body ?? "") as { decision_id: string; outcome: string; reason: string };
    expect(body.reason).toBe(FAIL_CLOSED_REASON);
    expect(body.outcome).toBe("deny");
    expect(body.decision_id).toMatch(UUID);
    expect(headerValue(res.denied_response?.headers, "x-vigil-decision-id")).toBe(body.decision_id);
    expect(res.denied_response?.body).not.toContain("secret detail");
    expect(errors).toEqual([boom]);
  });

  it("denies when the decision cannot be encoded", async () => {
    decide = () => ({ ...decision(), id: undefined as unknown as string });
    const res = await client.check();
    expect(res.status?.code).toBe(13);
    expect(res.http_response).toBe("denied_response");
    expect(errors).toHaveLength(1);
  });

  it("still denies when the error reporter itself throws", async () => {
    const fragile = await startAuthzServer({
      host: "127.0.0.1",
      port: 0,
      maxHeaderBytes: 8192,
      judge: () => {
        throw new Error("no policy");
      },
      onError: () => {
        throw new Error("logger down");
      },
    });
    const c = createEnvoyClient(`127.0.0.1:${fragile.port}`);
    try {
      expect((await c.check()).status?.code).toBe(13);
    } finally {
      c.close();
      await fragile.close();
    }
  });

  // The rejection asserted here is the grpc-js client's own deadline; what the server answers a
  // late Check (a denial, never DEADLINE_EXCEEDED) is in test/e2e/hostile-transport.test.ts.
  it("does not decide a request whose deadline passed while it waited", async () => {
    let calls = 0;
    decide = () => {
      calls++;
      // Hold the event loop well past the second call's deadline, as a stalled process would.
      const until = Date.now() + 400;
      while (Date.now() < until) { /* busy */ }
      return decision();
    };
    const first = client.check({}, { deadlineMs: 5000 });
    const second = client.check({}, { deadlineMs: 100 });
    await expect(second).rejects.toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
    await first;
    expect(calls).toBe(1);
  });

  it("passes garbage to decide as a malformed request, and answers it", async () => {
    decide = (req) => decision(req.malformed.length > 0 ? { outcome: "deny", reason: req.malformed.join("; ") } : {});
    const res = await client.checkRaw(Buffer.from([0xff, 0x01, 0x02]));
    expect(res.status?.code).toBe(7);
    expect(seen[0]?.malformed.length).toBeGreaterThan(0);
  });

  it("enforces the configured header limit", async () => {
    await client.check({ headers: { "x-big": "x".repeat(9000) } });
    expect(seen[0]?.malformed).toEqual(["headers exceed 8192 bytes"]);
  });

  it("reports NOT_SERVING until told otherwise, for the server and the Authorization service", async () => {
    expect(await client.health("")).toBe("NOT_SERVING");
    expect(await client.health("envoy.service.auth.v3.Authorization")).toBe("NOT_SERVING");
    server.setServing(true);
    expect(await client.health("")).toBe("SERVING");
    expect(await client.health("envoy.service.auth.v3.Authorization")).toBe("SERVING");
    server.setServing(false);
    expect(await client.health("")).toBe("NOT_SERVING");
    await expect(client.health("no.such.Service")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });
});

describe("transport refusals", () => {
  it.each([
    { refusal: "oversized", grpc: 3, http: "PayloadTooLarge", reason: "CheckRequest larger than 2048 bytes; request denied" },
    { refusal: "late", grpc: 13, http: "Forbidden", reason: TRANSPORT_REFUSAL_REASON.late },
    { refusal: "transport", grpc: 13, http: "Forbidden", reason: FAIL_CLOSED_REASON },
  ] as const)("encodes $refusal as a denial Envoy reads", ({ refusal, grpc: code, http, reason }) => {
    const res = decodeWithEnvoyProtos(encodeTransportRefusal(refusal, "d-7", 2048));
    expect(res.status).toEqual({ code, message: reason });
    expect(res.http_response).toBe("denied_response");
    expect(res.denied_response?.status?.code).toBe(http);
    expect(JSON.parse(res.denied_response?.body ?? "")).toEqual({ decision_id: "d-7", outcome: "deny", reason });
    expect(headerValue(res.denied_response?.headers, "x-vigil-decision-id")).toBe("d-7");
  });

  it("has a static last-resort denial", () => {
    const res = decodeWithEnvoyProtos(STATIC_FAIL_CLOSED);
    expect(res.status).toEqual({ code: 13, message: FAIL_CLOSED_REASON });
    expect(res.denied_response?.status?.code).toBe("Forbidden");
  });

  it("reports each refusal with the decision id its denial carries, and survives a throwing reporter", async () => {
    const refused: [string, string][] = [];
    let throwing = false;
    const server = await startAuthzServer({
      host: "127.0.0.1", port: 0, maxHeaderBytes: 1024, maxRequestBytes: 2048, judge: judgeBy(() => decision()),
      onRefused: (refusal, id) => {
        refused.push([refusal, id]);
        if (throwing) throw new Error("metrics down");
      },
    });
    const client = createEnvoyClient(`127.0.0.1:${server.port}`);
    try {
      for (const t of [false, true]) {
        throwing = t;
        const res = await client.checkRaw(Buffer.alloc(4096, 0x0a));
        expect(res.denied_response?.status?.code).toBe("PayloadTooLarge");
        const body = JSON.parse(res.denied_response?.body ?? "") as { decision_id: string };
        expect(refused.at(-1)).toEqual(["oversized", body.decision_id]);
        expect(body.decision_id).toMatch(UUID);
      }
      // At the limit the request is decoded and decided.
      expect((await client.checkRaw(Buffer.alloc(2048))).http_response).toBe("ok_response");
    } finally {
      client.close();
      await server.close();
    }
  });
});

describe("server lifecycle", () => {
  it("refuses a port that is taken with an unavailable VigilError", async () => {
    const first = await startAuthzServer({ host: "127.0.0.1", port: 0, maxHeaderBytes: 1024, judge: judgeBy(() => decision()) });
    try {
      const second = startAuthzServer({ host: "127.0.0.1", port: first.port, maxHeaderBytes: 1024, judge: judgeBy(() => decision()) });
      await expect(second).rejects.toBeInstanceOf(VigilError);
      await expect(second).rejects.toMatchObject({ code: "unavailable" });
    } finally {
      await first.close();
    }
  });

  it("closes once, goes NOT_SERVING, and stops answering", async () => {
    const server = await startAuthzServer({ host: "127.0.0.1", port: 0, maxHeaderBytes: 1024, judge: judgeBy(() => decision()) });
    server.setServing(true);
    const client = createEnvoyClient(`127.0.0.1:${server.port}`);
    try {
      expect(await client.health()).toBe("SERVING");
      await Promise.all([server.close(), server.close()]);
      await expect(client.check({}, { deadlineMs: 1000 })).rejects.toMatchObject({ code: expect.any(Number) as number });
    } finally {
      client.close();
    }
  });
});
