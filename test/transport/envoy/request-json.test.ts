// `vigil check`'s JSON → CheckRequest bytes → the server's decoder. Whatever the JSON, the answer
// is bytes the decoder reads without a problem, or an invalid_input error naming the field: never
// a crash, never a request read differently from what was written.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { VigilError } from "../../../src/errors/index.js";
import { checkRequestFromJson, decodeCheckRequest, encodeCheckRequestJson } from "../../../src/transport/envoy/index.js";

/** Encodes and decodes; returns the AccessRequest or the VigilError's message. */
function roundTrip(json: unknown): ReturnType<typeof decodeCheckRequest> | string {
  let bytes: Buffer;
  try {
    bytes = encodeCheckRequestJson(json);
  } catch (err) {
    if (err instanceof VigilError && err.code === "invalid_input") return err.message;
    throw err;
  }
  return decodeCheckRequest(bytes);
}

describe("CheckRequest JSON", () => {
  it("reads snake_case and camelCase, with or without the attributes wrapper, into the same request", () => {
    const snake = {
      attributes: {
        source: { principal: "spiffe://example.org/ns/ci/sa/deployer", address: { socket_address: { address: "10.0.0.7", port_value: 4431 } } },
        request: { http: { id: "r-1", method: "POST", path: "/v1/deploy?x=1", host: "deploy-api", headers: { "X-Api-Key": "k", ":authority": "deploy-api" }, body: "{}" } },
        context_extensions: { destination: "deploy-api" },
        tls_session: { sni: "deploy-api.svc" },
      },
    };
    const camel = {
      source: { principal: "spiffe://example.org/ns/ci/sa/deployer", address: { socketAddress: { address: "10.0.0.7", portValue: 4431 } } },
      request: { http: { id: "r-1", method: "POST", path: "/v1/deploy?x=1", host: "deploy-api", headers: { "X-Api-Key": "k", ":authority": "deploy-api" }, body: "{}" } },
      contextExtensions: { destination: "deploy-api" },
      tlsSession: { sni: "deploy-api.svc" },
    };
    const a = roundTrip(snake);
    const b = roundTrip(camel);
    if (typeof a === "string") throw new Error(`refused: ${a}`);
    if (typeof b === "string") throw new Error(`refused: ${b}`);
    expect({ ...a, receivedAt: 0 }).toEqual({ ...b, receivedAt: 0 });
    expect(a).toMatchObject({
      malformed: [],
      source: { principal: "spiffe://example.org/ns/ci/sa/deployer", address: "10.0.0.7", port: 4431 },
      requestId: "r-1", method: "POST", path: "/v1/deploy?x=1", host: "deploy-api", body: "{}",
      // Header names as Envoy sends them: lower case (the decoder's rule, not the CLI's).
      headers: { "x-api-key": "k", ":authority": "deploy-api" },
      contextExtensions: { destination: "deploy-api" },
      sni: "deploy-api.svc",
    });
  });

  it.each([
    // The input that once crashed `vigil check`: null is "unset", as proto3 JSON says.
    ["a null method", { attributes: { request: { http: { method: null } } } }, undefined],
    ["a null message", { attributes: { source: null } }, undefined],
    ["empty attributes", { attributes: { source: {} } }, undefined],
    ["a number for a string", { attributes: { request: { http: { method: 7 } } } }, "method: string expected"],
    ["a string for a message", { attributes: { request: "GET /" } }, "attributes.request: object expected"],
    ["an array for a message", { attributes: { source: [] } }, "attributes.source: object expected"],
    ["a number for headers", { attributes: { request: { http: { headers: 3 } } } }, "headers: object expected"],
    ["an object for a header value", { attributes: { request: { http: { headers: { a: { b: 1 } } } } } }, "headers: string{k:string} expected"],
    ["a fraction for a port", { attributes: { source: { address: { socket_address: { port_value: 1.5 } } } } }, "port_value: integer expected"],
    // fast-check found it: a uint32 the decoder refuses as no port (Envoy's own rule: at most 65535).
    ["a port past 65535", { attributes: { source: { address: { socket_address: { port_value: 65536 } } } } }, "attributes.source.address.socket_address.port_value: at most 65535"],
    ["the last port", { attributes: { source: { address: { socket_address: { port_value: 65535 } } } } }, undefined],
    ["a typo'd field", { attributes: { request: { http: { methd: "GET" } } } }, "attributes.request.http.methd: no such field"],
    ["an inherited name as a field", JSON.parse('{"attributes":{"__proto__":{"x":1}}}') as unknown, "__proto__: no such field"],
    ["not bytes in a bytes field", { attributes: { request: { http: { raw_body: "***" } } } }, "attributes.request.http.raw_body: base64 expected"],
    ["base64 in a bytes field", { attributes: { request: { http: { raw_body: "e30=" } } } }, undefined],
    ["an array", [], "a CheckRequest must be a JSON object"],
    ["a string", "GET /", "a CheckRequest must be a JSON object"],
    ["null", null, "a CheckRequest must be a JSON object"],
  ])("%s: read with defaults or refused with the field named", (_name, json, refusal) => {
    const result = roundTrip(json);
    if (refusal === undefined) {
      if (typeof result === "string") throw new Error(`refused: ${result}`);
      expect(result.malformed).toEqual([]);
    } else {
      expect(result).toEqual(expect.stringContaining(refusal));
      expect(result).toMatch(/^invalid CheckRequest JSON: /);
    }
  });

  it("a null field is read as the decoder's default, exactly like a missing one", () => {
    const withNull = roundTrip({ attributes: { request: { http: { method: null, path: "/x" } } } });
    const without = roundTrip({ attributes: { request: { http: { path: "/x" } } } });
    expect(typeof withNull).toBe("object");
    expect({ ...(withNull as object), receivedAt: 0 }).toEqual({ ...(without as object), receivedAt: 0 });
  });

  it("checkRequestFromJson (what --server sends) names fields as the proto does", () => {
    expect(checkRequestFromJson({ contextExtensions: { myKey: "v" }, request: { http: { rawBody: "AA==" } } })).toEqual({
      attributes: { context_extensions: { myKey: "v" }, request: { http: { raw_body: "AA==" } } },
    });
  });

  // Any JSON whatsoever, at the top and in every place a field may be.
  const anyJson = fc.jsonValue({ maxDepth: 3 });
  const field = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> => fc.oneof(arb, anyJson, fc.constant(null));
  const nearlyRight = fc.record({
    attributes: field(fc.record({
      source: field(fc.record({ principal: field(fc.string()), address: field(fc.record({ socket_address: field(fc.record({ address: field(fc.string()), port_value: field(fc.nat()) }, { requiredKeys: [] })) }, { requiredKeys: [] })) }, { requiredKeys: [] })),
      request: field(fc.record({
        http: field(fc.record({
          method: field(fc.constantFrom("GET", "POST")), path: field(fc.string()), host: field(fc.string()),
          headers: field(fc.dictionary(fc.string(), field(fc.string()))), body: field(fc.string()),
        }, { requiredKeys: [] })),
      }, { requiredKeys: [] })),
      context_extensions: field(fc.dictionary(fc.string(), field(fc.string()))),
    }, { requiredKeys: [] })),
  }, { requiredKeys: [] });

  it("any JSON, and any mangling of a right one: bytes the decoder reads, or a clear refusal", () => {
    fc.assert(fc.property(fc.oneof(anyJson, nearlyRight), (json) => {
      const result = roundTrip(json);
      if (typeof result === "string") expect(result).toMatch(/^invalid CheckRequest JSON: \S/);
      // Without attributes the server's decoder refuses the request, and so the CLI does.
      else expect(result.malformed.filter((m) => m !== "CheckRequest has no attributes")).toEqual([]);
    }), { numRuns: 2000 });
  });

  it("well-typed JSON comes out of the decoder as written", () => {
    const headerName = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);
    fc.assert(fc.property(
      fc.record({ method: fc.constantFrom("GET", "POST", "DELETE"), path: fc.string(), host: fc.string(), principal: fc.string(), headers: fc.dictionary(headerName, fc.string()), ext: fc.dictionary(headerName, fc.string()) }),
      ({ method, path, host, principal, headers, ext }) => {
        const result = roundTrip({ attributes: { source: { principal }, request: { http: { method, path, host, headers } }, context_extensions: ext } });
        if (typeof result === "string") throw new Error(result);
        expect(result).toMatchObject({ method, path, host, source: { principal }, malformed: [] });
        expect({ ...result.headers }).toEqual(headers);
        expect({ ...result.contextExtensions }).toEqual(ext);
      },
    ), { numRuns: 500 });
  });
});
