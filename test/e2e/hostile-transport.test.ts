// Hostile input at the gRPC transport (issue #8, hole 5): every Check gets a CheckResponse, as an
// OK RPC carrying a non-OK status and a denied_response, however it arrives: oversized, late,
// undecodable, compressed into a bomb, framed wrongly, or while decide throws. An RPC error is what
// Envoy's failure_mode_allow: true would turn into an allow.
//
// Requests go over real HTTP/2 to a server in this process. Most rows use a raw node:http2
// client, not grpc-js's: it sends exactly the frames and grpc-timeout a row asks for and enforces
// no deadline of its own, so what it reads is what the server answered.

import { connect, type ClientHttp2Session } from "node:http2";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccessRequest, Decision } from "../../src/model/index.js";
import { startAuthzServer, type AuthzServer } from "../../src/transport/envoy/index.js";
import { SUPPORT_BOT } from "../support/example-world.js";
import {
  buildCheckRequestBytes,
  createEnvoyClient,
  decodeWithEnvoyProtos,
  type DecodedCheckResponse,
  type EnvoyLikeRequest,
} from "../support/envoy-client.js";
import { frame, rawCall, type RawAnswer, type RawCall } from "../support/raw-grpc.js";
import { judgeBy } from "../support/judge.js";
import { startTestVigil, type TestVigil } from "../support/vigil.js";

const MiB = 1024 * 1024;
/** Vigil's default grpc.maxRequestBytes. */
const LIMIT = MiB;

/** An honest request the example policy allows (scenario 6). */
const HONEST: EnvoyLikeRequest = { sourcePrincipal: SUPPORT_BOT, host: "tickets", method: "GET", path: "/api/tickets/4711" };

/** Envoy-encoded request bytes padded with a body to exactly `size` bytes. */
function requestOfSize(size: number): Buffer {
  let pad = size - buildCheckRequestBytes({ ...HONEST, body: "" }).length;
  for (;;) {
    const bytes = buildCheckRequestBytes({ ...HONEST, body: "x".repeat(pad) });
    if (bytes.length === size) return bytes;
    pad += size - bytes.length;
  }
}

/** The one CheckResponse of an answer that must be an OK RPC. */
function checkResponseOf(answer: RawAnswer): DecodedCheckResponse {
  expect(answer.grpcStatus).toBe(0);
  expect(answer.messages).toHaveLength(1);
  return decodeWithEnvoyProtos(answer.messages[0]!);
}

type Expected =
  | { kind: "denied"; http: string; reason: RegExp }
  /** Decided by the pipeline exactly as the same request without the hostile part. */
  | { kind: "as honest" };

interface Row {
  attack: string;
  call: () => RawCall;
  expected: Expected;
}

const honestBytes = (): Buffer => buildCheckRequestBytes(HONEST);
const LATE = /^deadline passed before the check was answered/;
const OVERSIZED = new RegExp(`^CheckRequest larger than ${String(LIMIT)} bytes`);
const MALFORMED = /^malformed request: /;
const TRANSPORT = /^authorization failed; request denied$/;

const rows: Row[] = [
  { attack: "honest request (baseline)", call: () => ({ send: [frame(honestBytes())] }), expected: { kind: "as honest" } },
  { attack: "exactly grpc.maxRequestBytes", call: () => ({ send: [frame(requestOfSize(LIMIT))] }), expected: { kind: "as honest" } },
  {
    attack: "one byte over grpc.maxRequestBytes",
    call: () => ({ send: [frame(requestOfSize(LIMIT + 1))] }),
    expected: { kind: "denied", http: "PayloadTooLarge", reason: OVERSIZED },
  },
  {
    attack: "4 MiB + 1 byte (over grpc-js's own default)",
    call: () => ({ send: [frame(requestOfSize(4 * MiB + 1))] }),
    expected: { kind: "denied", http: "PayloadTooLarge", reason: OVERSIZED },
  },
  {
    attack: "length prefix claims 4 GiB, a few bytes follow",
    call: () => ({ send: [frame(honestBytes(), { declared: 0xffffffff })] }),
    expected: { kind: "denied", http: "PayloadTooLarge", reason: OVERSIZED },
  },
  {
    attack: "gzip bomb: 8 KiB that inflates to 8 MiB",
    call: () => ({ grpcEncoding: "gzip", send: [frame(gzipSync(Buffer.alloc(8 * MiB)), { compressed: true })] }),
    expected: { kind: "denied", http: "PayloadTooLarge", reason: OVERSIZED },
  },
  {
    attack: "compressed with an encoding grpc-js does not know",
    call: () => ({ grpcEncoding: "br", send: [frame(honestBytes(), { compressed: true })] }),
    expected: { kind: "denied", http: "Forbidden", reason: TRANSPORT },
  },
  {
    attack: "compressed flag set, gzip announced, bytes not gzip",
    call: () => ({ grpcEncoding: "gzip", send: [frame(honestBytes(), { compressed: true })] }),
    expected: { kind: "denied", http: "Forbidden", reason: TRANSPORT },
  },
  { attack: "grpc-timeout 0m: late on arrival", call: () => ({ grpcTimeout: "0m", send: [frame(honestBytes())] }), expected: { kind: "denied", http: "Forbidden", reason: LATE } },
  { attack: "grpc-timeout 1n: rounds to nothing", call: () => ({ grpcTimeout: "1n", send: [frame(honestBytes())] }), expected: { kind: "denied", http: "Forbidden", reason: LATE } },
  {
    attack: "grpc-timeout 1m, message arrives after the deadline",
    call: () => ({ grpcTimeout: "1m", send: [30, frame(honestBytes()).subarray(0, 3), 30, frame(honestBytes()).subarray(3)] }),
    expected: { kind: "denied", http: "Forbidden", reason: LATE },
  },
  {
    attack: "grpc-timeout 1m, stream never sends its message",
    call: () => ({ grpcTimeout: "1m", send: [50] }),
    expected: { kind: "denied", http: "Forbidden", reason: LATE },
  },
  {
    // grpc-js multiplies into a 32-bit integer: 99999999 minutes comes out negative, already past.
    attack: "grpc-timeout 99999999M: overflows grpc-js's arithmetic into the past",
    call: () => ({ grpcTimeout: "99999999M", send: [frame(honestBytes())] }),
    expected: { kind: "denied", http: "Forbidden", reason: LATE },
  },
  { attack: "malformed grpc-timeout", call: () => ({ grpcTimeout: "soon", send: [frame(honestBytes())] }), expected: { kind: "denied", http: "Forbidden", reason: TRANSPORT } },
  { attack: "stream with no message", call: () => ({ send: [] }), expected: { kind: "denied", http: "Forbidden", reason: TRANSPORT } },
  {
    attack: "two messages in one unary call",
    call: () => ({ send: [Buffer.concat([frame(honestBytes()), frame(honestBytes())])] }),
    expected: { kind: "denied", http: "Forbidden", reason: TRANSPORT },
  },
  { attack: "empty message", call: () => ({ send: [frame(Buffer.alloc(0))] }), expected: { kind: "denied", http: "Forbidden", reason: MALFORMED } },
  { attack: "undecodable bytes", call: () => ({ send: [frame(Buffer.from([0xff, 0xff, 0xff, 0x01, 0x02]))] }), expected: { kind: "denied", http: "Forbidden", reason: MALFORMED } },
  {
    attack: "truncated protobuf",
    call: () => ({ send: [frame(honestBytes().subarray(0, Math.floor(honestBytes().length / 2)))] }),
    expected: { kind: "denied", http: "Forbidden", reason: MALFORMED },
  },
  {
    attack: "wrong wire type: attributes as a varint",
    call: () => ({ send: [frame(Buffer.from([0x08, 0x96, 0x01]))] }),
    expected: { kind: "denied", http: "Forbidden", reason: MALFORMED },
  },
  {
    attack: "wrong wire type: request.http as a fixed64 inside valid attributes",
    // attributes (1, len 11) { request (4, len 9) { http (2) as wire type 1, 8 bytes } }
    call: () => ({ send: [frame(Buffer.from([0x0a, 0x0b, 0x22, 0x09, 0x11, 1, 2, 3, 4, 5, 6, 7, 8]))] }),
    expected: { kind: "denied", http: "Forbidden", reason: MALFORMED },
  },
  {
    attack: "length-delimited field longer than the message",
    call: () => ({ send: [frame(Buffer.from([0x0a, 0xff, 0xff, 0x03, 0x22]))] }),
    expected: { kind: "denied", http: "Forbidden", reason: MALFORMED },
  },
];

describe("hostile transport against the real sidecar", () => {
  let vigil: TestVigil;
  let session: ClientHttp2Session;
  let honest: DecodedCheckResponse;

  beforeAll(async () => {
    vigil = await startTestVigil();
    session = connect(`http://${vigil.grpcAddress}`);
    honest = checkResponseOf(await rawCall(session, { send: [frame(honestBytes())] }));
    // The baseline must be a real decision, or "as honest" would prove nothing.
    expect(honest.http_response).toBe("ok_response");
  });

  afterAll(async () => {
    session.close();
    await vigil.close();
  });

  it.each(rows)("$attack", async ({ call, expected }) => {
    const res = checkResponseOf(await rawCall(session, call()));
    if (expected.kind === "as honest") {
      expect(res.http_response).toBe(honest.http_response);
      expect(res.status?.code ?? 0).toBe(honest.status?.code ?? 0);
      expect(res.dynamic_metadata?.fields?.rule).toEqual(honest.dynamic_metadata?.fields?.rule);
      return;
    }
    expect(res.status?.code ?? 0).not.toBe(0);
    expect(res.http_response).toBe("denied_response");
    expect(res.denied_response?.status?.code).toBe(expected.http);
    expect(res.status?.message).toMatch(expected.reason);
    const body = JSON.parse(res.denied_response?.body ?? "") as { outcome: string; reason: string; decision_id: string };
    expect(body.outcome).toBe("deny");
    expect(body.reason).toMatch(expected.reason);
    expect(body.decision_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("answers a 24 MiB request sent by grpc-js as Envoy would with a 413 denial, and counts it", async () => {
    const client = createEnvoyClient(vigil.grpcAddress);
    try {
      const before = (await vigil.metrics.checkErrors.get()).values.find((v) => v.labels.reason === "oversized")?.value ?? 0;
      const res = await client.checkRaw(buildCheckRequestBytes({ ...HONEST, body: "x".repeat(24 * MiB) }), { deadlineMs: 60_000 });
      expect(res.status?.code).toBe(3);
      expect(res.denied_response?.status?.code).toBe("PayloadTooLarge");
      const after = (await vigil.metrics.checkErrors.get()).values.find((v) => v.labels.reason === "oversized")?.value ?? 0;
      expect(after).toBeGreaterThan(before);
      // The connection and the server are still fine.
      expect((await client.check(HONEST)).http_response).toBe("ok_response");
    } finally {
      client.close();
    }
  }, 60_000);

  it("keeps grpc.health.v1 serving after all of it", async () => {
    const client = createEnvoyClient(vigil.grpcAddress);
    try {
      expect(await client.health("")).toBe("SERVING");
      expect(await client.health("envoy.service.auth.v3.Authorization")).toBe("SERVING");
    } finally {
      client.close();
    }
  });
});

function allow(req: AccessRequest): Decision {
  return {
    id: "d-1", outcome: "allow", rule: "r", reason: "ok", caller: req.source.principal,
    trustDomain: "example.org", credentialFingerprint: "", headersToRemove: [], durationNs: 0,
  };
}

describe("hostile transport against a failing or stalled decision", () => {
  let server: AuthzServer;
  let session: ClientHttp2Session;
  let decide: (req: AccessRequest) => Decision = allow;
  let decided = 0;

  beforeAll(async () => {
    server = await startAuthzServer({
      host: "127.0.0.1", port: 0, maxHeaderBytes: 64 * 1024,
      judge: judgeBy((req) => {
        decided++;
        return decide(req);
      }),
    });
    session = connect(`http://127.0.0.1:${String(server.port)}`);
  });

  afterAll(async () => {
    session.close();
    await server.close();
  });

  it("denies with a fixed reason when decide throws", async () => {
    decide = () => {
      throw new Error("policy index corrupted: internal detail");
    };
    const res = checkResponseOf(await rawCall(session, { send: [frame(honestBytes())] }));
    expect(res.status?.code).toBe(13);
    expect(res.denied_response?.status?.code).toBe("Forbidden");
    expect(res.status?.message).toMatch(TRANSPORT);
    expect(res.denied_response?.body).not.toContain("internal detail");
  });

  it("denies a Check whose deadline passed while the loop was stalled by the one before it", async () => {
    decided = 0;
    decide = (req) => {
      // The first decision holds the event loop past the second Check's deadline, as a stalled
      // process would; both Checks were read before the stall.
      if (decided === 1) {
        const until = Date.now() + 100;
        while (Date.now() < until) { /* busy */ }
      }
      return allow(req);
    };
    const [first, second] = await Promise.all([
      rawCall(session, { send: [frame(honestBytes())] }),
      rawCall(session, { grpcTimeout: "20m", send: [frame(honestBytes())] }),
    ]);
    expect(checkResponseOf(first).http_response).toBe("ok_response");
    const late = checkResponseOf(second);
    expect(late.http_response).toBe("denied_response");
    expect(late.status?.message).toMatch(LATE);
    // The late Check was not decided: no approvals or revocations for a request nobody awaits.
    expect(decided).toBe(1);
  });
});
