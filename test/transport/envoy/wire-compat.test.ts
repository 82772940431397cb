// Vigil's trimmed proto/ files, fast decoder and hand-written encoder against Envoy's official
// definitions (shipped in @grpc/grpc-js-xds): same numbers and types, same bytes understood.

import { existsSync } from "node:fs";
import { join } from "node:path";
import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import type { Decision } from "../../../src/model/index.js";
import {
  EXTERNAL_AUTH_PROTO,
  PROTO_DIR,
  decodeCheckRequest,
  encodeCheckResponse,
  loadAuthorizationPackage,
  type CheckRequest,
} from "../../../src/transport/envoy/index.js";
import {
  TO_OBJECT_OPTIONS,
  buildCheckRequest,
  decodeWithEnvoyProtos,
  encodeWithEnvoyProtos,
  envoyOfficialRoot,
  envoyType,
  headerValue,
} from "../../support/envoy-client.js";

function loadOurRoot(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    const candidate = join(PROTO_DIR, target);
    return existsSync(candidate) ? candidate : protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(EXTERNAL_AUTH_PROTO, { keepCase: true });
  root.resolveAll();
  return root;
}
const ours = loadOurRoot();

/** Every message and enum Vigil defines itself (well-known google.protobuf types excluded). */
function ourDefinitions(): (protobuf.Type | protobuf.Enum)[] {
  const found: (protobuf.Type | protobuf.Enum)[] = [];
  const visit = (ns: protobuf.NamespaceBase): void => {
    for (const nested of ns.nestedArray) {
      if (nested.fullName.startsWith(".google.protobuf")) continue;
      if (nested instanceof protobuf.Type || nested instanceof protobuf.Enum) found.push(nested);
      if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type) visit(nested);
    }
  };
  visit(ours);
  return found;
}

/** A CheckRequest using every field Envoy may send, including the ones Vigil skips. */
const fullRequest: CheckRequest = {
  attributes: {
    source: {
      address: { socket_address: { protocol: "TCP", address: "10.0.1.17", port_value: 48212 } },
      service: "ci-runner",
      labels: { app: "release-pipeline" },
      principal: "spiffe://example.org/ns/ci/sa/release-pipeline",
      certificate: "-----BEGIN%20CERTIFICATE-----%0AMIIB...%0A-----END%20CERTIFICATE-----%0A",
    },
    destination: {
      address: { pipe: { path: "/var/run/payments.sock", mode: 420 } },
      service: "payments",
      labels: { version: "v2" },
      principal: "spiffe://example.org/ns/prod/sa/payments-api",
    },
    request: {
      time: { seconds: "1768478400", nanos: 123000000 },
      http: {
        id: "8437160528471365923",
        method: "POST",
        headers: {
          ":authority": "payments.prod.svc",
          ":method": "POST",
          ":path": "/v1/payments?limit=10",
          "authorization": "Bearer abc",
          "x-api-key": "k-123",
          "x-request-id": "4c1f7d2e",
        },
        path: "/v1/payments?limit=10",
        host: "payments.prod.svc",
        scheme: "https",
        query: "",
        fragment: "",
        size: "27",
        protocol: "HTTP/1.1",
        body: "{\"jsonrpc\":\"2.0\",\"id\":1}",
      },
    },
    context_extensions: { action: "pay", env: "prod" },
    metadata_context: {
      filter_metadata: { "envoy.filters.http.jwt_authn": { fields: { sub: { stringValue: "svc" } } } },
    },
    tls_session: { sni: "payments.prod.svc" },
    route_metadata_context: {
      filter_metadata: { "vigil": { fields: { tier: { numberValue: 1 } } } },
    },
  },
};

function decision(overrides: Partial<Decision>): Decision {
  return {
    id: "d-0001",
    outcome: "allow",
    rule: "ci-may-deploy",
    reason: "allowed",
    caller: "spiffe://example.org/ns/ci/sa/release-pipeline",
    trustDomain: "example.org",
    credentialFingerprint: "sha256:ab12",
    headersToRemove: [],
    durationNs: 1000,
    ...overrides,
  };
}

describe("proto/ matches Envoy's official definitions", () => {
  const official = envoyOfficialRoot();

  it.each(ourDefinitions().map((d) => [d.fullName.slice(1), d] as const))("%s has Envoy's numbers and types", (_name, def) => {
    const theirs = official.lookup(def.fullName);
    if (def instanceof protobuf.Enum) {
      expect(theirs).toBeInstanceOf(protobuf.Enum);
      for (const [name, value] of Object.entries(def.values)) expect((theirs as protobuf.Enum).values[name]).toBe(value);
      return;
    }
    expect(theirs).toBeInstanceOf(protobuf.Type);
    const theirType = theirs as protobuf.Type;
    for (const field of def.fieldsArray) {
      const match = theirType.fields[field.name];
      expect(match, `${def.fullName}.${field.name}`).toBeDefined();
      expect(match!.id).toBe(field.id);
      expect(match!.repeated).toBe(field.repeated);
      expect(match!.map).toBe(field.map);
      expect(match!.resolvedType?.fullName ?? match!.type).toBe(field.resolvedType?.fullName ?? field.type);
      if (field instanceof protobuf.MapField) {
        expect(match).toBeInstanceOf(protobuf.MapField);
        expect((match as unknown as protobuf.MapField).keyType).toBe(field.keyType);
      }
      expect(match!.partOf?.name).toBe(field.partOf?.name);
    }
  });

  it("keeps every field Envoy has in the messages Vigil reads", () => {
    for (const name of [
      "envoy.service.auth.v3.AttributeContext", "envoy.service.auth.v3.AttributeContext.Peer",
      "envoy.service.auth.v3.AttributeContext.HttpRequest", "envoy.service.auth.v3.CheckResponse",
      "envoy.service.auth.v3.OkHttpResponse", "envoy.service.auth.v3.DeniedHttpResponse",
      "envoy.config.core.v3.HeaderValueOption", "envoy.config.core.v3.HeaderValue",
    ]) {
      expect(Object.keys(ours.lookupType(name).fields).sort(), name).toEqual(Object.keys(envoyType(name).fields).sort());
    }
  });
});

describe("CheckRequest encoded by Envoy's definitions", () => {
  const bytes = encodeWithEnvoyProtos(fullRequest);
  const theirObject = envoyType("envoy.service.auth.v3.CheckRequest").toObject(
    envoyType("envoy.service.auth.v3.CheckRequest").decode(bytes), TO_OBJECT_OPTIONS,
  );

  it("decodes to the same object with Vigil's proto files (proto-loader, as gen/ types describe)", () => {
    const deserialize = loadAuthorizationPackage()["envoy.service.auth.v3.Authorization"] as unknown as {
      Check: { requestDeserialize: (b: Buffer) => unknown; requestSerialize: (v: CheckRequest) => Buffer };
    };
    expect(deserialize.Check.requestDeserialize(bytes)).toEqual(theirObject);
    // toMatchObject: oneofs:true adds the virtual oneof names (address: "pipe", …) on decode.
    expect(theirObject).toMatchObject(fullRequest);
    // And back: Vigil's definitions encode what Envoy's decode to the same thing.
    expect(decodeOfficialRequest(deserialize.Check.requestSerialize(fullRequest))).toEqual(theirObject);
  });

  it("decodes with the fast decoder to the values a decision reads", () => {
    const request = decodeCheckRequest(bytes);
    expect(request).toMatchObject({
      source: {
        principal: "spiffe://example.org/ns/ci/sa/release-pipeline",
        certificate: "-----BEGIN%20CERTIFICATE-----%0AMIIB...%0A-----END%20CERTIFICATE-----%0A",
        address: "10.0.1.17",
        port: 48212,
      },
      destination: {
        principal: "spiffe://example.org/ns/prod/sa/payments-api",
        certificate: "",
        address: "/var/run/payments.sock",
        port: 0,
      },
      requestId: "8437160528471365923",
      method: "POST",
      path: "/v1/payments?limit=10",
      host: "payments.prod.svc",
      scheme: "https",
      protocol: "HTTP/1.1",
      body: "{\"jsonrpc\":\"2.0\",\"id\":1}",
      sni: "payments.prod.svc",
      malformed: [],
    });
    expect({ ...request.headers }).toEqual(fullRequest.attributes!.request!.http!.headers);
    expect({ ...request.contextExtensions }).toEqual({ action: "pay", env: "prod" });
    expect(request.receivedAt).toBeGreaterThan(Date.now() - 60_000);
  });

  it("reads header_map (encode_raw_headers) into the same headers, joining duplicates", () => {
    const raw = buildCheckRequest({ encodeRawHeaders: true, headers: { "x-trace": "t1" } });
    raw.attributes!.request!.http!.header_map!.headers!.push(
      { key: "X-Dup", raw_value: Buffer.from("a") },
      { key: "x-dup", raw_value: Buffer.from("b") },
      { key: "x-value-only", value: "v" },
    );
    const request = decodeCheckRequest(encodeWithEnvoyProtos(raw));
    expect(request.malformed).toEqual([]);
    expect(request.headers[":method"]).toBe("GET");
    expect(request.headers["x-trace"]).toBe("t1");
    expect(request.headers["x-dup"]).toBe("a,b");
    expect(request.headers["x-value-only"]).toBe("v");
  });

  it("reads raw_body as UTF-8 when body is empty (pack_as_bytes)", () => {
    const body = "{\"method\":\"tools/call\",\"params\":{\"name\":\"déployer\"}}";
    const request = decodeCheckRequest(encodeWithEnvoyProtos(buildCheckRequest({ body, packBodyAsBytes: true })));
    expect(request.body).toBe(body);
  });
});

function decodeOfficialRequest(bytes: Uint8Array): Record<string, unknown> {
  const type = envoyType("envoy.service.auth.v3.CheckRequest");
  return type.toObject(type.decode(bytes), TO_OBJECT_OPTIONS);
}

describe("CheckResponse encoded by Vigil, decoded by Envoy's definitions", () => {
  const overwrite = { value: false };

  it("allow: OK, identity headers set with append false, client copies removed, id echoed to the client", () => {
    const bytes = encodeCheckResponse(decision({ headersToRemove: ["x-forwarded-client-cert", "X-Vigil-Caller", "x-vigil-bogus"] }));
    const res = decodeWithEnvoyProtos(bytes);
    expect(res.status?.code ?? 0).toBe(0);
    expect(res.http_response).toBe("ok_response");
    expect(res.ok_response?.headers).toEqual([
      { header: { key: "x-vigil-decision-id", value: "d-0001" }, append: overwrite },
      { header: { key: "x-vigil-caller", value: "spiffe://example.org/ns/ci/sa/release-pipeline" }, append: overwrite },
      { header: { key: "x-vigil-trust-domain", value: "example.org" }, append: overwrite },
      { header: { key: "x-vigil-credential-fingerprint", value: "sha256:ab12" }, append: overwrite },
    ]);
    // Envoy applies set before remove: a header that is set must never be listed.
    expect(res.ok_response?.headers_to_remove).toEqual(["x-forwarded-client-cert", "x-vigil-bogus"]);
    expect(res.ok_response?.response_headers_to_add).toEqual([
      { header: { key: "x-vigil-decision-id", value: "d-0001" }, append: overwrite },
    ]);
    expect(res.dynamic_metadata?.fields).toEqual({
      decision_id: { stringValue: "d-0001", kind: "stringValue" },
      outcome: { stringValue: "allow", kind: "stringValue" },
      rule: { stringValue: "ci-may-deploy", kind: "stringValue" },
    });
  });

  it("allow without caller or credential: removes the identity headers it did not set", () => {
    const res = decodeWithEnvoyProtos(encodeCheckResponse(decision({ caller: "", trustDomain: "", credentialFingerprint: "" })));
    expect(res.ok_response?.headers?.map((h) => h.header?.key)).toEqual(["x-vigil-decision-id"]);
    expect(res.ok_response?.headers_to_remove).toEqual([
      "x-vigil-caller", "x-vigil-trust-domain", "x-vigil-credential-fingerprint",
    ]);
  });

  it("allow: never forwards a header value with control characters, strips it instead", () => {
    const res = decodeWithEnvoyProtos(encodeCheckResponse(decision({ caller: "spiffe://x/y\r\nx-admin: 1" })));
    expect(headerValue(res.ok_response?.headers, "x-vigil-caller")).toBeUndefined();
    expect(res.ok_response?.headers_to_remove).toContain("x-vigil-caller");
  });

  it("allow: ignores pseudo-headers and host in headersToRemove (Envoy cannot remove them)", () => {
    const res = decodeWithEnvoyProtos(encodeCheckResponse(decision({ headersToRemove: [":path", "host", "authorization"] })));
    expect(res.ok_response?.headers_to_remove).toEqual(["authorization"]);
  });

  const refusals = [
    { outcome: "deny", http: 403, extra: {} },
    { outcome: "revoke", http: 403, extra: {} },
    { outcome: "step_up", http: 403, extra: { approvalId: "apr-42" } },
    { outcome: "delay", http: 429, extra: { retryAfterSeconds: 119.2 } },
  ] as const;

  it.each(refusals)("$outcome: PERMISSION_DENIED, HTTP $http, JSON body with the decision id", ({ outcome, http, extra }) => {
    const bytes = encodeCheckResponse(decision({ outcome, reason: "not now", ...extra }));
    const res = decodeWithEnvoyProtos(bytes);
    expect(res.status).toEqual({ code: 7, message: "not now" });
    expect(res.http_response).toBe("denied_response");
    expect(res.ok_response).toBeUndefined();
    expect(res.denied_response?.status).toEqual({ code: http === 403 ? "Forbidden" : "TooManyRequests" });
    const headers = res.denied_response?.headers;
    expect(headerValue(headers, "content-type")).toBe("application/json");
    expect(headerValue(headers, "x-vigil-decision-id")).toBe("d-0001");
    for (const h of headers ?? []) expect(h.append).toEqual(overwrite);
    const body = JSON.parse(res.denied_response?.body ?? "") as Record<string, unknown>;
    expect(body).toMatchObject({ decision_id: "d-0001", outcome, reason: "not now" });
    expect(res.dynamic_metadata?.fields?.outcome).toEqual({ stringValue: outcome, kind: "stringValue" });

    if (outcome === "step_up") {
      expect(headerValue(headers, "x-vigil-step-up")).toBe("approval");
      expect(headerValue(headers, "x-vigil-approval-id")).toBe("apr-42");
      expect(body.approval_id).toBe("apr-42");
    }
    if (outcome === "delay") {
      expect(headerValue(headers, "retry-after")).toBe("120");
      expect(body.retry_after_seconds).toBe(120);
    }
  });

  it("fails closed on an outcome outside the union", () => {
    const res = decodeWithEnvoyProtos(encodeCheckResponse(decision({ outcome: "maybe" as Decision["outcome"] })));
    expect(res.status?.code).toBe(7);
    expect(res.denied_response?.status).toEqual({ code: "Forbidden" });
    expect(JSON.parse(res.denied_response?.body ?? "")).toMatchObject({ outcome: "deny" });
  });

  it.each(["allow", "deny", "step_up", "delay", "revoke"] as const)(
    "%s: Envoy's re-encoding of the answer decodes identically with Vigil's proto files",
    (outcome) => {
      const bytes = encodeCheckResponse(decision({ outcome, approvalId: "a", retryAfterSeconds: 5 }));
      const theirType = envoyType("envoy.service.auth.v3.CheckResponse");
      const ourType = ours.lookupType("envoy.service.auth.v3.CheckResponse");
      const reencoded = theirType.encode(theirType.decode(bytes)).finish();
      expect(ourType.toObject(ourType.decode(reencoded), TO_OBJECT_OPTIONS))
        .toEqual(theirType.toObject(theirType.decode(bytes), TO_OBJECT_OPTIONS));
      expect(ourType.toObject(ourType.decode(bytes), TO_OBJECT_OPTIONS)).toEqual(decodeWithEnvoyProtos(bytes));
    },
  );
});
