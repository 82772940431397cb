import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_MAX_HEADER_BYTES,
  createCheckRequestDecoder,
  decodeCheckRequest,
} from "../../../src/transport/envoy/index.js";
import { buildCheckRequest, buildCheckRequestBytes, encodeWithEnvoyProtos } from "../../support/envoy-client.js";

const LEN = 2;
const tag = (field: number, wireType: number): number => (field << 3) | wireType;

/** Hand-built wire bytes, for shapes Envoy's encoder would never produce. */
function wire(build: (w: protobuf.Writer) => void): Buffer {
  const w = protobuf.Writer.create();
  build(w);
  return Buffer.from(w.finish());
}

/** CheckRequest { attributes { <inner> } }. */
function attributes(inner: (w: protobuf.Writer) => void): Buffer {
  return wire((w) => {
    w.uint32(tag(1, LEN)).fork();
    inner(w);
    w.ldelim();
  });
}

describe("decodeCheckRequest", () => {
  it("defaults the header limit to config's 64 KiB", () => {
    expect(DEFAULT_MAX_HEADER_BYTES).toBe(64 * 1024);
  });

  it("marks an empty CheckRequest malformed", () => {
    expect(decodeCheckRequest(Buffer.alloc(0)).malformed).toEqual(["CheckRequest has no attributes"]);
  });

  it("marks garbage malformed instead of throwing", () => {
    for (const bytes of [Buffer.from([0xff, 0xff, 0xff]), Buffer.from([0x00, 0x00]), Buffer.from("hello world"), Buffer.from([0x0f])]) {
      const request = decodeCheckRequest(bytes);
      expect(request.malformed.length, bytes.toString("hex")).toBeGreaterThan(0);
    }
  });

  it("marks every truncation of a real request malformed", () => {
    const bytes = buildCheckRequestBytes({ body: "{}", contextExtensions: { action: "read" } });
    for (let cut = 0; cut < bytes.length; cut++) {
      expect(decodeCheckRequest(bytes.subarray(0, cut)).malformed.length, `cut at ${cut}`).toBeGreaterThan(0);
    }
    expect(decodeCheckRequest(bytes).malformed).toEqual([]);
  });

  it("names a known field sent with the wrong wire type, and keeps reading", () => {
    const bytes = attributes((w) => {
      w.uint32(tag(1, LEN)).fork();
      w.uint32(tag(4, 0)).uint32(7); // principal as a varint
      w.uint32(tag(5, LEN)).string("pem");
      w.ldelim();
    });
    const request = decodeCheckRequest(bytes);
    expect(request.malformed).toEqual(["attributes.source.principal: wrong wire type 0"]);
    expect(request.source.principal).toBe("");
    expect(request.source.certificate).toBe("pem");
  });

  it("refuses a nested length that runs past its parent", () => {
    const bytes = wire((w) => {
      w.uint32(tag(1, LEN)).uint32(4); // attributes: 4 bytes
      w.uint32(tag(1, LEN)).uint32(10); // source claims 10
      w.uint32(0).uint32(0).uint32(0).uint32(0).uint32(0).uint32(0).uint32(0).uint32(0).uint32(0).uint32(0);
    });
    expect(decodeCheckRequest(bytes).malformed).toEqual(["attributes: field length 10 runs past the end of its message"]);
  });

  it("refuses field number 0 and a port above 65535", () => {
    expect(decodeCheckRequest(Buffer.from([0x02, 0x02, 0x00, 0x00])).malformed[0]).toMatch(/field number 0/);
    const bytes = attributes((w) => {
      w.uint32(tag(1, LEN)).fork();
      w.uint32(tag(1, LEN)).fork().uint32(tag(1, LEN)).fork();
      w.uint32(tag(2, LEN)).string("10.0.0.1").uint32(tag(3, 0)).uint32(70000);
      w.ldelim().ldelim().ldelim();
    });
    const request = decodeCheckRequest(bytes);
    expect(request.malformed).toEqual(["attributes.source.address.socket_address.port_value: 70000 is not a port"]);
    expect(request.source.address).toBe("10.0.0.1");
  });

  it("skips fields it does not know (newer Envoy) without complaint", () => {
    const bytes = attributes((w) => {
      w.uint32(tag(99, LEN)).string("future");
      w.uint32(tag(98, 0)).uint32(1);
      w.uint32(tag(97, 5)).fixed32(1);
      w.uint32(tag(96, 1)).fixed64(1);
      w.uint32(tag(12, LEN)).fork().uint32(tag(1, LEN)).string("api.example").ldelim();
    });
    const request = decodeCheckRequest(bytes);
    expect(request.malformed).toEqual([]);
    expect(request.sni).toBe("api.example");
  });

  it("fails closed once headers exceed the limit, counted over all headers", () => {
    const request = buildCheckRequest({ headers: { "x-big": "v".repeat(300) } });
    const bytes = encodeWithEnvoyProtos(request);
    expect(decodeCheckRequest(bytes, 300).malformed).toEqual(["headers exceed 300 bytes"]);
    expect(decodeCheckRequest(bytes, 4096).malformed).toEqual([]);
    const raw = encodeWithEnvoyProtos(buildCheckRequest({ encodeRawHeaders: true, headers: { "x-big": "v".repeat(300) } }));
    expect(decodeCheckRequest(raw, 300).malformed).toEqual(["headers exceed 300 bytes"]);
  });

  it("lower-cases header names and keeps prototype-looking names as plain keys", () => {
    // header_map: protobufjs's own map encoder would drop a "__proto__" key on the way out.
    const request = decodeCheckRequest(buildCheckRequestBytes({
      encodeRawHeaders: true,
      headers: { ["__proto__"]: "p", "constructor": "c", "toString": "t" },
    }));
    expect(request.headers.__proto__).toBe("p");
    expect(request.headers.constructor).toBe("c");
    expect(request.headers.tostring).toBe("t");
    expect(Object.getPrototypeOf(request.headers)).toBeNull();
    expect("hasOwnProperty" in decodeCheckRequest(buildCheckRequestBytes()).headers).toBe(false);
  });

  it("reports a plain-text caller as an empty principal", () => {
    const request = decodeCheckRequest(buildCheckRequestBytes({ sourcePrincipal: "" }));
    expect(request.source.principal).toBe("");
    expect(request.malformed).toEqual([]);
  });
});

describe("createCheckRequestDecoder", () => {
  it("decodes exactly like the one-off decoder, request after request", () => {
    const decode = createCheckRequestDecoder();
    const variants = [
      buildCheckRequestBytes(),
      buildCheckRequestBytes({ method: "PUT", sourcePrincipal: "spiffe://example.org/ns/a/sa/b" }),
      buildCheckRequestBytes({ method: "GET", headers: { "user-agent": "agent/é", accept: "text/html" } }),
      buildCheckRequestBytes({ method: "GEt", host: "a", scheme: "http", contextExtensions: { env: "dev" } }),
      buildCheckRequestBytes({ encodeRawHeaders: true, headers: { "user-agent": "naïve" } }),
    ];
    for (let round = 0; round < 3; round++) {
      for (const bytes of variants) {
        const { receivedAt: _a, ...expected } = decodeCheckRequest(bytes);
        const { receivedAt: _b, ...actual } = decode(bytes);
        expect(actual).toEqual(expected);
      }
    }
  });

  it("never confuses two strings that land in the same slot", () => {
    const decode = createCheckRequestDecoder();
    // Thousands of distinct same-length principals guarantee slot collisions in a 4096-slot table.
    for (let i = 0; i < 6000; i++) {
      const principal = `spiffe://example.org/ns/n/sa/${String(i).padStart(5, "0")}`;
      const bytes = attributes((w) => w.uint32(tag(1, LEN)).fork().uint32(tag(4, LEN)).string(principal).ldelim());
      expect(decode(bytes).source.principal).toBe(principal);
    }
  });

  it("uses its own header limit", () => {
    const decode = createCheckRequestDecoder({ maxHeaderBytes: 100 });
    expect(decode(buildCheckRequestBytes()).malformed).toEqual(["headers exceed 100 bytes"]);
  });
});
