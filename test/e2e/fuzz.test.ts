// Random CheckRequests against the real server and the real pipeline: every one gets an answer,
// none is an allow without an identity, and the server stays up.

import { connect } from "node:http2";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEnvoyClient, decodeWithEnvoyProtos, type EnvoyClient, type EnvoyLikeRequest } from "../support/envoy-client.js";
import { frame, rawCall } from "../support/raw-grpc.js";
import { startTestVigil, type TestVigil } from "../support/vigil.js";

describe("random CheckRequests against the real pipeline", () => {
  let vigil: TestVigil;
  let client: EnvoyClient;

  beforeAll(async () => {
    vigil = await startTestVigil({ identity: { xfccTrustedHops: 1 } });
    client = createEnvoyClient(vigil.grpcAddress);
  });
  afterAll(async () => {
    client.close();
    await vigil.close();
  });

  const text = fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: "binary", maxLength: 80 }), fc.constantFrom("", "spiffe://example.org/ns/ci/sa/deployer", "spiffe://EXAMPLE.org/x", "spiffe://example.org:80/a", "%ZZ", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"));
  const request: fc.Arbitrary<EnvoyLikeRequest> = fc.record({
    sourcePrincipal: text,
    sourceCertificatePem: text,
    sourceAddress: fc.oneof(fc.ipV4(), fc.ipV6(), text),
    method: fc.oneof(fc.constantFrom("GET", "POST", "DELETE", ""), text),
    path: fc.oneof(fc.webPath(), text),
    host: fc.oneof(fc.constantFrom("deploy-api", "payments", "change-mgmt", "storage:8443", "[::1]:80"), text),
    authorization: fc.oneof(fc.constant("Bearer abc"), text),
    apiKey: text,
    xfcc: fc.oneof(text, fc.constant("By=spiffe://a/b;URI=spiffe://example.org/ns/ci/sa/deployer"), fc.constant("URI=\"spiffe://x/\\\"y\";;,,=")),
    headers: fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), fc.oneof(text, fc.constant(null)), { maxKeys: 8 }),
    contextExtensions: fc.dictionary(fc.string({ maxLength: 10 }), text, { maxKeys: 4 }),
    body: fc.oneof(text, fc.json(), fc.constant("{\"method\":\"tools/call\",\"params\":{\"name\":\"create_change\"}}")),
  }, { requiredKeys: [] });

  it("answers every request with a CheckResponse and stays up", async () => {
    await fc.assert(fc.asyncProperty(request, async (req) => {
      const res = await client.check(req);
      expect(res.status).toBeDefined();
      if ((res.status?.code ?? 0) !== 0) expect(res.denied_response).toBeDefined();
      else expect(res.ok_response).toBeDefined();
    }), { numRuns: 300 });
    expect(await client.health()).toBe("SERVING");
  });

  it("answers garbage bytes with a fail-closed deny, never an RPC error", async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), async (bytes) => {
      const res = await client.checkRaw(Buffer.from(bytes));
      expect(res.status?.code).not.toBe(0);
    }), { numRuns: 200 });
  });

  it("answers garbage behind garbled gRPC framing with a denial on an OK RPC", async () => {
    const session = connect(`http://${vigil.grpcAddress}`);
    try {
      const call = fc.record({
        bytes: fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
        declared: fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }),
        grpcTimeout: fc.option(fc.constantFrom("0m", "1n", "200m", "soon"), { nil: undefined }),
      });
      await fc.assert(fc.asyncProperty(call, async ({ bytes, declared, grpcTimeout }) => {
        const answer = await rawCall(session, { send: [frame(bytes, { declared })], ...(grpcTimeout === undefined ? {} : { grpcTimeout }) });
        expect(answer.grpcStatus).toBe(0);
        expect(answer.messages).toHaveLength(1);
        const res = decodeWithEnvoyProtos(answer.messages[0]!);
        expect(res.status?.code ?? 0).not.toBe(0);
        expect(res.http_response).toBe("denied_response");
      }), { numRuns: 100 });
    } finally {
      session.close();
    }
  });
});
