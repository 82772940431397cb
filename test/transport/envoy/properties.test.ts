import { connect, type ClientHttp2Session } from "node:http2";
import fc from "fast-check";
import protobuf from "protobufjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccessRequest, Decision } from "../../../src/model/index.js";
import {
  createCheckRequestDecoder,
  decodeCheckRequest,
  encodeCheckResponse,
  startAuthzServer,
  type AuthzServer,
} from "../../../src/transport/envoy/index.js";
import {
  buildCheckRequest,
  buildCheckRequestBytes,
  createEnvoyClient,
  decodeWithEnvoyProtos,
  encodeWithEnvoyProtos,
  headerValue,
  type EnvoyClient,
  type EnvoyLikeRequest,
} from "../../support/envoy-client.js";
import { frame, rawCall, type RawCall } from "../../support/raw-grpc.js";
import { judgeBy } from "../../support/judge.js";

// protobufjs's map encoder would silently drop a "__proto__" key, so it cannot round-trip.
const notProto = (s: string): boolean => s !== "__proto__";
const text = fc.string({ unit: "binary", maxLength: 80 });
const headerName = fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789-_:".split("")), minLength: 1, maxLength: 30 })
  .filter(notProto);

const envoyLikeRequest: fc.Arbitrary<EnvoyLikeRequest> = fc.record({
  sourcePrincipal: fc.oneof(fc.constant(""), fc.constant("spiffe://example.org/ns/a/sa/b"), text),
  destinationPrincipal: text,
  sourceCertificatePem: fc.option(text, { nil: undefined }),
  sourceAddress: fc.oneof(fc.ipV4(), fc.ipV6()),
  sourcePort: fc.integer({ min: 0, max: 65535 }),
  method: fc.oneof(fc.constantFrom("GET", "POST", "DELETE"), text),
  path: text,
  host: text,
  scheme: fc.constantFrom("http", "https"),
  streamId: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String),
  authorization: fc.option(text, { nil: undefined }),
  apiKey: fc.option(text, { nil: undefined }),
  xfcc: fc.option(text, { nil: undefined }),
  headers: fc.dictionary(headerName, text, { maxKeys: 12 }),
  contextExtensions: fc.option(fc.dictionary(text.filter(notProto), text, { maxKeys: 4 }), { nil: undefined }),
  body: fc.option(fc.string({ unit: "binary", maxLength: 400 }), { nil: undefined }),
  packBodyAsBytes: fc.boolean(),
  encodeRawHeaders: fc.boolean(),
  sni: fc.option(text, { nil: undefined }),
}, { requiredKeys: [] });

/** Valid bytes with a few bytes flipped, cut or inserted: what a corrupted stream looks like. */
/** Real requests from `requests`, each with one to four bytes set, cut off or inserted. */
const corruptedFrom = (requests: typeof envoyLikeRequest) => fc.tuple(requests, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom("set", "cut", "insert")), { minLength: 1, maxLength: 4 }))
  .map(([request, edits]) => {
    let bytes = buildCheckRequestBytes(request);
    for (const [at, value, kind] of edits) {
      const i = bytes.length === 0 ? 0 : at % bytes.length;
      if (kind === "set") bytes[i] = value;
      else if (kind === "cut") bytes = bytes.subarray(0, i);
      else bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from([value]), bytes.subarray(i)]);
    }
    return bytes;
  });
const corrupted = corruptedFrom(envoyLikeRequest);

function expectWellFormedShape(req: AccessRequest): void {
  for (const peer of [req.source, req.destination]) {
    expect(typeof peer.principal).toBe("string");
    expect(Number.isInteger(peer.port) && peer.port >= 0 && peer.port <= 65535).toBe(true);
  }
  for (const value of Object.values(req.headers)) expect(typeof value).toBe("string");
  expect(Array.isArray(req.malformed)).toBe(true);
}

describe("decoder properties", () => {
  it("never throws on arbitrary bytes", () => {
    const decode = createCheckRequestDecoder();
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1024 }), (bytes) => {
      expectWellFormedShape(decode(Buffer.from(bytes)));
    }), { numRuns: 2000 });
  });

  it("never throws on corrupted real requests", () => {
    const decode = createCheckRequestDecoder();
    fc.assert(fc.property(corrupted, (bytes) => {
      expectWellFormedShape(decode(bytes));
    }), { numRuns: 500 });
  });

  it("reads every structurally valid request exactly as Envoy's definitions describe it", () => {
    const decode = createCheckRequestDecoder();
    fc.assert(fc.property(envoyLikeRequest, (opts) => {
      const message = buildCheckRequest(opts);
      const bytes = encodeWithEnvoyProtos(message);
      const req = decode(bytes);
      const attrs = message.attributes!;
      const http = attrs.request!.http!;
      const headers = http.headers ?? Object.fromEntries((http.header_map?.headers ?? []).map((h) => [h.key!, Buffer.from(h.raw_value as Buffer).toString("utf8")]));
      expect(req.malformed).toEqual([]);
      expect(req.source.principal).toBe(attrs.source!.principal ?? "");
      expect(req.source.certificate).toBe(attrs.source!.certificate ?? "");
      expect(req.source.address).toBe(attrs.source!.address!.socket_address!.address);
      expect(req.source.port).toBe(attrs.source!.address!.socket_address!.port_value);
      expect(req.destination.principal).toBe(attrs.destination!.principal);
      expect(req.requestId).toBe(http.id);
      expect(req.method).toBe(http.method);
      expect(req.path).toBe(http.path);
      expect(req.host).toBe(http.host);
      expect(req.scheme).toBe(http.scheme);
      expect({ ...req.headers }).toEqual({ ...headers });
      expect(req.body).toBe(opts.body ?? "");
      expect({ ...req.contextExtensions }).toEqual({ ...attrs.context_extensions });
      expect(req.sni).toBe(attrs.tls_session?.sni ?? "");
      // The shared string table never changes a value.
      const { receivedAt: _a, ...fresh } = decodeCheckRequest(bytes);
      const { receivedAt: _b, ...shared } = req;
      expect(shared).toEqual(fresh);
    }), { numRuns: 300 });
  });

  // A long-lived decoder keeps recently seen strings; with a table of one or two slots every
  // string collides with the last ones, so a hit that was not verified byte for byte, or the same
  // bytes read as a header name (lower-cased) and as a value (as sent) sharing one entry, would
  // show as a value that differs from a fresh decode.
  it("keeps no string that changes a value, even when every string collides", () => {
    const pool = fc.constantFrom("GET", "get", "Content-Type", "content-type", "X-Trace", "x-trace", "svc", "SVC", "é", "\u00e9t\u00e9", "a".repeat(64), "a".repeat(65), "ab", "ba", "");
    const mixedName = fc.oneof(pool, headerName).filter((n) => n !== "" && notProto(n));
    const request: fc.Arbitrary<EnvoyLikeRequest> = fc.record({
      sourcePrincipal: pool,
      destinationPrincipal: pool,
      method: pool,
      host: pool,
      path: pool,
      headers: fc.dictionary(mixedName, pool, { maxKeys: 6 }),
      contextExtensions: fc.dictionary(pool.filter(notProto), pool, { maxKeys: 3 }),
      encodeRawHeaders: fc.boolean(),
    }, { requiredKeys: [] });
    // buildCheckRequest lower-cases header names, as Envoy does; `shout` sends them upper-cased.
    const requests = fc.array(fc.tuple(request, fc.boolean()), { minLength: 2, maxLength: 12 });
    fc.assert(fc.property(fc.constantFrom(1, 2, 4096), requests, (size, sequence) => {
      const decode = createCheckRequestDecoder({ stringTableSize: size });
      for (const [opts, shout] of sequence) {
        const message = buildCheckRequest(opts);
        const http = message.attributes?.request?.http ?? {};
        if (shout) {
          if (http.headers) http.headers = Object.fromEntries(Object.entries(http.headers).map(([name, value]) => [name.toUpperCase(), value]));
          for (const header of http.header_map?.headers ?? []) header.key = header.key?.toUpperCase() ?? "";
        }
        const bytes = encodeWithEnvoyProtos(message);
        const { receivedAt: _a, ...shared } = decode(bytes);
        const { receivedAt: _b, ...fresh } = decodeCheckRequest(bytes);
        expect(shared).toEqual(fresh);
        for (const name of Object.keys(shared.headers)) expect(name).toBe(name.toLowerCase());
      }
    }), { numRuns: 300 });
  });
});

describe("header entries in any layout", () => {
  // The decoder reads an entry's key and then its value in place, and falls back to the general
  // walk for anything else: fields in another order, repeated, unknown, or missing. Either way the
  // entry must read as protobuf says: the last key and value win, unknown fields are skipped, a
  // header_map entry's raw_value wins over its value, and repeated header_map names are joined.
  type EntryField = { kind: "key" | "value" | "raw"; text: string } | { kind: "unknown"; n: number };
  const entryField: fc.Arbitrary<EntryField> = fc.oneof(
    fc.record({ kind: fc.constant("key" as const), text: headerName }),
    fc.record({ kind: fc.constantFrom("value" as const, "raw" as const), text: fc.string({ maxLength: 12 }) }),
    fc.record({ kind: fc.constant("unknown" as const), n: fc.nat(1_000) }),
  );
  const usual = fc.tuple(headerName, fc.string({ maxLength: 12 }), fc.constantFrom("value" as const, "raw" as const))
    .map(([key, text, kind]): EntryField[] => [{ kind: "key", text: key }, { kind, text }]);
  const entries = fc.array(fc.oneof(usual, fc.array(entryField, { maxLength: 5 })), { maxLength: 6 });

  function requestBytes(list: EntryField[][], asHeaderMap: boolean): Uint8Array {
    const http = protobuf.Writer.create();
    const headerMap = protobuf.Writer.create();
    for (const fields of list) {
      const entry = protobuf.Writer.create();
      for (const f of fields) {
        if (f.kind === "unknown") entry.uint32((4 << 3) | 0).uint32(f.n);
        else entry.uint32(f.kind === "key" ? 0x0a : f.kind === "value" ? 0x12 : 0x1a).bytes(Buffer.from(f.text));
      }
      if (asHeaderMap) headerMap.uint32(0x0a).bytes(entry.finish());
      else http.uint32(0x1a).bytes(entry.finish());
    }
    if (asHeaderMap) http.uint32((13 << 3) | 2).bytes(headerMap.finish());
    const request = protobuf.Writer.create().uint32(0x12).bytes(http.finish()).finish();
    const attributes = protobuf.Writer.create().uint32((4 << 3) | 2).bytes(request).finish();
    return protobuf.Writer.create().uint32(0x0a).bytes(attributes).finish();
  }

  // A Map, not an object: a header may be named "constructor" or "__proto__", which a plain
  // object would read from its prototype or take as its prototype.
  function expected(list: EntryField[][], asHeaderMap: boolean): Record<string, string> {
    const out = new Map<string, string>();
    for (const fields of list) {
      let key = "";
      let value = "";
      let raw: string | undefined;
      for (const f of fields) {
        if (f.kind === "key") key = f.text;
        else if (f.kind === "value") value = f.text;
        else if (f.kind === "raw") raw = f.text;
      }
      const before = out.get(key);
      if (!asHeaderMap) out.set(key, value);
      else out.set(key, before === undefined ? raw ?? value : `${before},${raw ?? value}`);
    }
    return Object.fromEntries(out);
  }

  it("reads every entry as protobuf says, whatever the order, repeats and unknown fields", () => {
    const decode = createCheckRequestDecoder();
    fc.assert(fc.property(entries, fc.boolean(), (list, asHeaderMap) => {
      const bytes = requestBytes(list, asHeaderMap);
      const fresh = decodeCheckRequest(bytes);
      const shared = decode(bytes);
      expect(fresh.malformed).toEqual([]);
      expect({ ...fresh.headers }).toEqual(expected(list, asHeaderMap));
      expect({ ...shared.headers }).toEqual({ ...fresh.headers });
    }), { numRuns: 1_000 });
  });

  // Header names arrive lower-cased: these two are the lower-case names an object holds already.
  it.each(["constructor", "__proto__"])("reads a header named %j as any other", (name) => {
    for (const asHeaderMap of [false, true]) {
      const list: EntryField[][] = [[{ kind: "key", text: name }, { kind: "value", text: "" }], [{ kind: "key", text: name }, { kind: "raw", text: "x" }]];
      const headers = decodeCheckRequest(requestBytes(list, asHeaderMap)).headers;
      expect(Object.hasOwn(headers, name)).toBe(true);
      expect({ ...headers }).toEqual(expected(list, asHeaderMap));
      expect(headers[name]).toBe(asHeaderMap ? ",x" : "");
    }
  });
});

describe("decoding only the headers a decision reads", () => {
  const wantedBy = (names: ReadonlySet<string>) => (name: string): boolean => names.has(name) || name.startsWith("x-vigil-");

  it("keeps exactly the selected values (and x-vigil-*), everything else as a whole decode, with any limit", () => {
    const withVigil = envoyLikeRequest.chain((opts) => fc.record({
      opts: fc.constant(opts),
      vigil: fc.dictionary(fc.constantFrom("x-vigil-caller", "x-vigil-decision-id", "x-vigil-x"), text, { maxKeys: 2 }),
      pick: fc.subarray(Object.keys(opts.headers ?? {})),
      extra: fc.array(headerName, { maxLength: 3 }),
      limit: fc.oneof(fc.constant(64 * 1024), fc.integer({ min: 0, max: 2000 })),
    }));
    fc.assert(fc.property(withVigil, ({ opts, vigil, pick, extra, limit }) => {
      const bytes = encodeWithEnvoyProtos(buildCheckRequest({ ...opts, headers: { ...opts.headers, ...vigil } }));
      const names = new Set([...pick, ...extra, "authorization"]);
      const decode = createCheckRequestDecoder({ maxHeaderBytes: limit });
      const selective = decode(bytes, { all: false, names });
      const whole = decodeCheckRequest(bytes, limit);
      const keep = wantedBy(names);
      const { receivedAt: _a, headers: partHeaders, ...part } = selective;
      const { receivedAt: _b, headers: allHeaders, ...all } = whole;
      expect(part).toEqual(all);
      expect({ ...partHeaders }).toEqual(Object.fromEntries(Object.entries(allHeaders).filter(([name]) => keep(name))));
      // `all` decodes every header, as no selection does.
      const { receivedAt: _c, ...every } = decode(bytes, { all: true, names: new Set() });
      expect(every).toEqual({ ...all, headers: allHeaders });
    }), { numRuns: 400 });
  });

  it("reads a value sent before its name and drops it when the name is not selected", () => {
    const entry = (w: protobuf.Writer, first: [number, string], second: [number, string]): void => {
      w.uint32((3 << 3) | 2).fork();
      w.uint32((first[0] << 3) | 2).string(first[1]);
      w.uint32((second[0] << 3) | 2).string(second[1]);
      w.ldelim();
    };
    const w = protobuf.Writer.create();
    w.uint32((1 << 3) | 2).fork(); // attributes
    w.uint32((4 << 3) | 2).fork(); // request
    w.uint32((2 << 3) | 2).fork(); // http
    entry(w, [2, "kept-value"], [1, "x-kept"]);
    entry(w, [2, "dropped-value"], [1, "x-dropped"]);
    entry(w, [1, "x-vigil-caller"], [2, "forged"]);
    w.ldelim().ldelim().ldelim();
    const bytes = Buffer.from(w.finish());
    const req = createCheckRequestDecoder()(bytes, { all: false, names: new Set(["x-kept"]) });
    expect(req.malformed).toEqual([]);
    expect({ ...req.headers }).toEqual({ "x-kept": "kept-value", "x-vigil-caller": "forged" });
  });

  it("counts skipped headers against maxHeaderBytes: a large unread header still fails closed", () => {
    const bytes = buildCheckRequestBytes({ headers: { "x-padding": "p".repeat(5000) } });
    const req = createCheckRequestDecoder({ maxHeaderBytes: 1000 })(bytes, { all: false, names: new Set() });
    expect(req.malformed).toEqual(["headers exceed 1000 bytes"]);
    expect(req.headers["x-padding"]).toBeUndefined();
  });
});

/** What a string becomes after a UTF-8 round trip (lone surrogates turn into U+FFFD). */
const utf8 = (s: string): string => Buffer.from(s, "utf8").toString("utf8");
// eslint-disable-next-line no-control-regex -- control characters are exactly what is looked for
const hasControl = (s: string): boolean => /[\u0000-\u0008\u000a-\u001f\u007f]/.test(s);

const anyText = fc.string({ unit: fc.oneof(fc.constant("\ud800"), fc.constant("\u0007"), fc.string({ unit: "binary", minLength: 1, maxLength: 1 })), maxLength: 300 });
const randomDecision: fc.Arbitrary<Decision> = fc.record({
  id: anyText,
  outcome: fc.constantFrom("allow", "deny", "step_up", "delay", "revoke"),
  rule: anyText,
  reason: anyText,
  caller: anyText,
  trustDomain: anyText,
  credentialFingerprint: anyText,
  retryAfterSeconds: fc.option(fc.double({ min: -10, max: 1e6, noNaN: true }), { nil: undefined }),
  approvalId: fc.option(anyText, { nil: undefined }),
  headersToRemove: fc.array(anyText, { maxLength: 5 }),
  durationNs: fc.nat(),
}, { requiredKeys: ["id", "outcome", "rule", "reason", "caller", "trustDomain", "credentialFingerprint", "headersToRemove", "durationNs"] });

describe("encoder properties", () => {
  it("writes every decision so that Envoy's definitions read back the same values", () => {
    fc.assert(fc.property(randomDecision, (d) => {
      const res = decodeWithEnvoyProtos(encodeCheckResponse(d));
      expect(res.dynamic_metadata?.fields?.decision_id?.stringValue).toBe(utf8(d.id));
      expect(res.dynamic_metadata?.fields?.rule?.stringValue).toBe(utf8(d.rule));
      if (d.outcome === "allow") {
        expect(res.status?.code ?? 0).toBe(0);
        const ok = res.ok_response!;
        const set = (ok.headers ?? []).map((h) => h.header!.key!);
        for (const name of ok.headers_to_remove ?? []) expect(set).not.toContain(name);
        for (const [name, value] of [["x-vigil-decision-id", d.id], ["x-vigil-caller", d.caller], ["x-vigil-trust-domain", d.trustDomain]] as const) {
          if (value === "" || hasControl(value)) {
            expect(ok.headers_to_remove).toContain(name);
          } else {
            expect(headerValue(ok.headers, name)).toBe(utf8(value));
          }
        }
      } else {
        expect(res.status?.code).toBe(7);
        expect(res.status?.message ?? "").toBe(utf8(d.reason));
        const body = JSON.parse(res.denied_response!.body!) as Record<string, unknown>;
        expect(body.reason).toBe(d.reason);
        expect(body.decision_id).toBe(d.id);
      }
    }), { numRuns: 1000 });
  });
});

describe("server under random input", () => {
  let server: AuthzServer;
  let client: EnvoyClient;
  let answered = 0;

  beforeAll(async () => {
    server = await startAuthzServer({
      host: "127.0.0.1",
      port: 0,
      maxHeaderBytes: 64 * 1024,
      judge: judgeBy((req): Decision => {
        answered++;
        return {
          id: `d-${answered}`,
          outcome: req.malformed.length > 0 ? "deny" : "allow",
          rule: "",
          reason: req.malformed.join("; "),
          caller: req.source.principal,
          trustDomain: "",
          credentialFingerprint: "",
          headersToRemove: [],
          durationNs: 0,
        };
      }),
    });
    server.setServing(true);
    client = createEnvoyClient(`127.0.0.1:${server.port}`);
  });

  afterAll(async () => {
    client.close();
    await server.close();
  });

  it("answers every payload with a decision and stays up", async () => {
    const payload = fc.oneof(
      fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
      corrupted,
      envoyLikeRequest.map((r) => buildCheckRequestBytes(r)),
    );
    await fc.assert(fc.asyncProperty(payload, async (bytes) => {
      const res = await client.checkRaw(bytes);
      expect(res.http_response === "ok_response" || res.http_response === "denied_response").toBe(true);
      // Allowed only when the payload decoded cleanly; a control character in the caller is stripped, not fatal.
      if (res.http_response === "denied_response") expect(res.status?.code).toBe(7);
    }), { numRuns: 150 });
    expect(await client.health()).toBe("SERVING");
  });
});

describe("server under garbled framing", () => {
  const CALLER = "spiffe://example.org/ns/ci/sa/release-pipeline";
  let server: AuthzServer;
  let session: ClientHttp2Session;

  beforeAll(async () => {
    server = await startAuthzServer({
      host: "127.0.0.1",
      port: 0,
      maxHeaderBytes: 64 * 1024,
      maxRequestBytes: 4096,
      // Allows only a clean request from one caller: garbage can never be it.
      judge: judgeBy((req): Decision => ({
        id: "d-1",
        outcome: req.malformed.length === 0 && req.source.principal === CALLER ? "allow" : "deny",
        rule: "",
        reason: req.malformed.join("; "),
        caller: "",
        trustDomain: "",
        credentialFingerprint: "",
        headersToRemove: [],
        durationNs: 0,
      })),
    });
    server.setServing(true);
    session = connect(`http://127.0.0.1:${String(server.port)}`);
  });

  afterAll(async () => {
    session.close();
    await server.close();
  });

  /**
   * A message body: random bytes, a corrupted real request, or a real one from another caller.
   * The corrupted ones come from another caller too: a byte flip can leave a request valid (say
   * in a header name), and a valid request from CALLER is rightly allowed.
   */
  const fromOther = envoyLikeRequest.map((r) => ({ ...r, sourcePrincipal: "spiffe://example.org/ns/x/sa/other" }));
  const body = fc.oneof(
    fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)),
    corruptedFrom(fromOther),
    fromOther.map((r) => buildCheckRequestBytes(r)),
  );
  /** What a hostile or broken client does to the gRPC framing around it. */
  const garbled: fc.Arbitrary<RawCall> = fc.record({
    messages: fc.array(fc.record({
      bytes: body,
      compressed: fc.boolean(),
      // The length prefix: true, a little off, or anything up to 4 GiB.
      declared: fc.oneof(fc.constant(undefined), fc.integer({ min: -8, max: 8 }), fc.integer({ min: 0, max: 0xffffffff })),
    }), { maxLength: 2 }),
    grpcTimeout: fc.option(fc.constantFrom("0m", "1n", "1m", "200m", "5S", "soon", "99999999M", ""), { nil: undefined }),
    grpcEncoding: fc.option(fc.constantFrom("identity", "gzip", "deflate", "snappy"), { nil: undefined }),
    cuts: fc.array(fc.nat(), { maxLength: 3 }),
  }).map(({ messages, grpcTimeout, grpcEncoding, cuts }) => {
    const bytes = Buffer.concat(messages.map((m) => frame(m.bytes, {
      compressed: m.compressed,
      declared: m.declared === undefined ? undefined : m.declared > 8 ? m.declared : Math.max(0, m.bytes.length + m.declared),
    })));
    // The same bytes, split into DATA frames at random points.
    const at = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
    const send = [0, ...at].map((from, i) => bytes.subarray(from, at[i] ?? bytes.length));
    return { send, ...(grpcTimeout === undefined ? {} : { grpcTimeout }), ...(grpcEncoding === undefined ? {} : { grpcEncoding }) };
  });

  it("answers every call with one denial CheckResponse on an OK RPC", async () => {
    await fc.assert(fc.asyncProperty(garbled, async (call) => {
      const answer = await rawCall(session, call);
      expect(answer.grpcStatus).toBe(0);
      expect(answer.messages).toHaveLength(1);
      const res = decodeWithEnvoyProtos(answer.messages[0]!);
      expect(res.status?.code ?? 0).not.toBe(0);
      expect(res.http_response).toBe("denied_response");
    }), { numRuns: 200 });
    expect(await createEnvoyClientHealth(server.port)).toBe("SERVING");
  });
});

async function createEnvoyClientHealth(port: number): Promise<string> {
  const client = createEnvoyClient(`127.0.0.1:${String(port)}`);
  try {
    return await client.health();
  } finally {
    client.close();
  }
}
