// Turns CheckRequest bytes straight into an AccessRequest. It walks the protobuf wire format
// with protobufjs's Reader and materialises only the fields a decision reads (hot-path.md: the
// cost is the strings, so everything else is skipped, and strings that repeat from request to
// request are reused). It never throws: anything wrong with the bytes ends up in `malformed`,
// which makes the decision fail closed.

import protobuf from "protobufjs/minimal.js";
import { configSchema } from "../../config/schema.js";
import type { AccessRequest, PeerInfo } from "../../model/index.js";

const { Reader } = protobuf;

/** The default of config `grpc.maxHeaderBytes` (64 KiB), read from the one schema. */
export const DEFAULT_MAX_HEADER_BYTES: number = configSchema.shape.grpc.parse(undefined).maxHeaderBytes;

// Wire types (protobuf encoding spec).
const VARINT = 0;
const LEN = 2;

/** Buffer#utf8Slice skips the argument juggling of toString(); protobufjs relies on it too. */
interface Utf8Buffer extends Buffer {
  utf8Slice(start: number, end: number): string;
  latin1Slice(start: number, end: number): string;
}

/** A bounds problem found by our own checks; other throws come from protobufjs's Reader. */
class WireError extends Error {}

interface DecodeContext {
  readonly r: protobuf.Reader;
  readonly buf: Utf8Buffer;
  readonly out: AccessRequest;
  readonly maxHeaderBytes: number;
  readonly strings: StringTable | undefined;
  headerBytes: number;
  headersTooLarge: boolean;
  rawBody: string;
  /** Path of the message being read, for error messages. */
  at: string;
}

function emptyPeer(): PeerInfo {
  return { principal: "", certificate: "", address: "", port: 0 };
}

/** A fresh AccessRequest with every field present, so all requests share one object shape. */
function emptyAccessRequest(receivedAt: number): AccessRequest {
  return {
    receivedAt,
    source: emptyPeer(),
    destination: emptyPeer(),
    requestId: "",
    method: "",
    path: "",
    host: "",
    scheme: "",
    protocol: "",
    // Null prototype: header names come from the network; "__proto__" or "constructor" must be
    // plain keys, never inherited members.
    headers: Object.create(null) as Record<string, string>,
    body: "",
    contextExtensions: Object.create(null) as Record<string, string>,
    sni: "",
    malformed: [],
  };
}

/** Decodes one CheckRequest into an AccessRequest; never throws. */
export type CheckRequestDecoder = (bytes: Uint8Array) => AccessRequest;

export interface CheckRequestDecoderOptions {
  /**
   * Bound on the encoded size of all request headers (names, values and their few bytes of
   * protobuf framing). Past it the request is marked malformed ("headers exceed N bytes") and
   * further headers are skipped. Default: config grpc.maxHeaderBytes' default, 64 KiB.
   */
  maxHeaderBytes?: number;
}

/**
 * A decoder for a long-lived server: it keeps a small table of recently seen strings (principals,
 * addresses, header names, low-cardinality header values) so the same bytes need not become a new
 * string on every request.
 */
export function createCheckRequestDecoder(options: CheckRequestDecoderOptions = {}): CheckRequestDecoder {
  const maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  const strings = createStringTable();
  return (bytes) => decode(bytes, maxHeaderBytes, strings);
}

/** One-off decode (tests, `vigil check`); a server should use createCheckRequestDecoder. */
export function decodeCheckRequest(
  bytes: Uint8Array,
  maxHeaderBytes: number = DEFAULT_MAX_HEADER_BYTES,
): AccessRequest {
  return decode(bytes, maxHeaderBytes, undefined);
}

function decode(bytes: Uint8Array, maxHeaderBytes: number, strings: StringTable | undefined): AccessRequest {
  const out = emptyAccessRequest(Date.now());
  // grpc-js hands us a Buffer; anything else is viewed as one without copying.
  const buf = (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as Utf8Buffer;
  const c: DecodeContext = {
    r: Reader.create(buf),
    buf,
    out,
    maxHeaderBytes,
    strings,
    headerBytes: 0,
    headersTooLarge: false,
    rawBody: "",
    at: "CheckRequest",
  };
  try {
    if (!readCheckRequest(c)) out.malformed.push("CheckRequest has no attributes");
    if (out.body === "" && c.rawBody !== "") out.body = c.rawBody;
  } catch (err) {
    out.malformed.push(describeFailure(c, err));
  }
  return out;
}

function describeFailure(c: DecodeContext, err: unknown): string {
  if (err instanceof WireError) return err.message;
  // protobufjs throws RangeError("index out of range …") when bytes run out.
  if (err instanceof RangeError) return `${c.at}: truncated at byte ${c.r.pos}`;
  return `${c.at}: not valid protobuf at byte ${c.r.pos}`;
}

/** Reads a field tag; field number 0 does not exist, and is what zeroed garbage looks like. */
function nextTag(c: DecodeContext): number {
  const tag = c.r.uint32();
  if (tag < 8) throw new WireError(`${c.at}: field number 0 at byte ${c.r.pos}`);
  return tag;
}

/** Reads a length prefix and returns where that field ends, refusing to cross `end`. */
function fieldEnd(c: DecodeContext, end: number): number {
  const length = c.r.uint32();
  const stop = c.r.pos + length;
  if (stop > end) throw new WireError(`${c.at}: field length ${length} runs past the end of its message`);
  return stop;
}

/** A field value that becomes a fresh string every time (unique or possibly secret). */
function readString(c: DecodeContext, end: number): string {
  const stop = fieldEnd(c, end);
  const start = c.r.pos;
  c.r.pos = stop;
  return start === stop ? "" : c.buf.utf8Slice(start, stop);
}

/**
 * Recently seen strings, one per slot of a direct-mapped table. Making a string from bytes costs
 * far more than hashing and comparing a few dozen ASCII bytes (hot-path.md), and most strings in
 * a CheckRequest repeat. A hit is verified byte for byte, so the table can only save work, never
 * change a value; memory is bounded by STRING_TABLE_SIZE * MAX_SHARED_BYTES.
 */
interface StringTable {
  readonly slots: (string | undefined)[];
}

const STRING_TABLE_SIZE = 4096;
const MAX_SHARED_BYTES = 64;

function createStringTable(): StringTable {
  return { slots: new Array<string | undefined>(STRING_TABLE_SIZE).fill(undefined) };
}

/**
 * A field value that repeats across requests and is never a secret: only those are kept, so no
 * credential outlives its request in the table.
 */
function readShared(c: DecodeContext, end: number): string {
  const table = c.strings;
  if (table === undefined) return readString(c, end);
  const stop = fieldEnd(c, end);
  const start = c.r.pos;
  c.r.pos = stop;
  const length = stop - start;
  const buf = c.buf;
  if (length === 0) return "";
  if (length > MAX_SHARED_BYTES) return buf.utf8Slice(start, stop);
  // FNV-1a over the bytes; non-ASCII strings are not shared (their bytes and chars differ).
  let hash = 0x811c9dc5 ^ length;
  for (let i = start; i < stop; i++) {
    const byte = buf[i] ?? 0;
    if (byte >= 0x80) return buf.utf8Slice(start, stop);
    hash = Math.imul(hash ^ byte, 0x01000193);
  }
  const slot = (hash ^ (hash >>> 16)) & (STRING_TABLE_SIZE - 1);
  const seen = table.slots[slot];
  if (seen?.length === length) {
    let i = 0;
    while (i < length && seen.charCodeAt(i) === buf[start + i]) i++;
    if (i === length) return seen;
  }
  const fresh = buf.latin1Slice(start, stop);
  table.slots[slot] = fresh;
  return fresh;
}

/** Header values worth sharing: low-cardinality and never credentials. */
const SHARED_HEADER_VALUES: ReadonlySet<string> = new Set([
  ":authority", ":method", ":scheme", "accept", "accept-encoding", "accept-language",
  "content-type", "te", "user-agent", "x-envoy-auth-partial-body", "x-forwarded-proto",
]);

/** A known field arrived with the wrong wire type: Envoy never does that, so fail closed. */
function wrongWireType(c: DecodeContext, field: string, wireType: number): void {
  c.out.malformed.push(`${c.at}.${field}: wrong wire type ${wireType}`);
  c.r.skipType(wireType);
}

/** Skipped unknown fields are only checked against the whole buffer; check the message bound. */
function checkEnd(c: DecodeContext, end: number): void {
  if (c.r.pos !== end) throw new WireError(`${c.at}: field runs past the end of its message`);
}

function readCheckRequest(c: DecodeContext): boolean {
  const { r } = c;
  const end = r.len;
  let sawAttributes = false;
  while (r.pos < end) {
    const tag = nextTag(c);
    const wireType = tag & 7;
    if (tag >>> 3 === 1) {
      if (wireType !== LEN) {
        wrongWireType(c, "attributes", wireType);
        continue;
      }
      sawAttributes = true;
      const stop = fieldEnd(c, end);
      c.at = "attributes";
      readAttributes(c, stop);
      c.at = "CheckRequest";
    } else {
      r.skipType(wireType);
    }
  }
  checkEnd(c, end);
  return sawAttributes;
}

function readAttributes(c: DecodeContext, end: number): void {
  const { r, out } = c;
  while (r.pos < end) {
    const tag = nextTag(c);
    const wireType = tag & 7;
    switch (tag >>> 3) {
      case 1:
      case 2: {
        const name = tag >>> 3 === 1 ? "source" : "destination";
        if (wireType !== LEN) {
          wrongWireType(c, name, wireType);
          break;
        }
        const stop = fieldEnd(c, end);
        c.at = `attributes.${name}`;
        readPeer(c, stop, tag >>> 3 === 1 ? out.source : out.destination);
        c.at = "attributes";
        break;
      }
      case 4: {
        if (wireType !== LEN) {
          wrongWireType(c, "request", wireType);
          break;
        }
        const stop = fieldEnd(c, end);
        c.at = "attributes.request";
        readRequest(c, stop);
        c.at = "attributes";
        break;
      }
      case 10: {
        if (wireType !== LEN) {
          wrongWireType(c, "context_extensions", wireType);
          break;
        }
        const stop = fieldEnd(c, end);
        c.at = "attributes.context_extensions";
        readMapEntry(c, stop, out.contextExtensions, false);
        c.at = "attributes";
        break;
      }
      case 12: {
        if (wireType !== LEN) {
          wrongWireType(c, "tls_session", wireType);
          break;
        }
        const stop = fieldEnd(c, end);
        c.at = "attributes.tls_session";
        readTlsSession(c, stop);
        c.at = "attributes";
        break;
      }
      default:
        // metadata_context, route_metadata_context and anything newer: not read by decisions.
        r.skipType(wireType);
    }
  }
  checkEnd(c, end);
}

function readPeer(c: DecodeContext, end: number, peer: PeerInfo): void {
  const { r } = c;
  const at = c.at;
  while (r.pos < end) {
    const tag = nextTag(c);
    const wireType = tag & 7;
    switch (tag >>> 3) {
      case 1:
        if (wireType !== LEN) {
          wrongWireType(c, "address", wireType);
          break;
        }
        {
          const stop = fieldEnd(c, end);
          c.at = `${at}.address`;
          readAddress(c, stop, peer);
          c.at = at;
        }
        break;
      case 4:
        if (wireType !== LEN) wrongWireType(c, "principal", wireType);
        else peer.principal = readShared(c, end);
        break;
      case 5:
        if (wireType !== LEN) wrongWireType(c, "certificate", wireType);
        else peer.certificate = readString(c, end);
        break;
      default:
        // service and labels are not read by decisions.
        r.skipType(wireType);
    }
  }
  checkEnd(c, end);
}

function readAddress(c: DecodeContext, end: number, peer: PeerInfo): void {
  const { r } = c;
  const at = c.at;
  while (r.pos < end) {
    const tag = nextTag(c);
    const wireType = tag & 7;
    switch (tag >>> 3) {
      case 1:
        if (wireType !== LEN) {
          wrongWireType(c, "socket_address", wireType);
          break;
        }
        {
          const stop = fieldEnd(c, end);
          c.at = `${at}.socket_address`;
          readSocketAddress(c, stop, peer);
          c.at = at;
        }
        break;
      case 2:
        if (wireType !== LEN) {
          wrongWireType(c, "pipe", wireType);
          break;
        }
        {
          const stop = fieldEnd(c, end);
          c.at = `${at}.pipe`;
          // A oneof: the pipe replaces any socket address read before it.
          peer.port = 0;
          readPipe(c, stop, peer);
          c.at = at;
        }
        break;
      default:
        // envoy_internal_address has no IP or path a rule could match.
        r.skipType(wireType);
    }
  }
  checkEnd(c, end);
}

function readSocketAddress(c: DecodeContext, end: number, peer: PeerInfo): void {
  const { r } = c;
  while (r.pos < end) {
    const tag = nextTag(c);
    const wireType = tag & 7;
    switch (tag >>> 3) {
      case 2:
        if (wireType !== LEN) wrongWireType(c, "address", wireType);
        else peer.address = readShared(c, end);
        break;
      case 3:
        if (wireType !== VARINT) {
          wrongWireType(c, "port_value", wireType);
          break;
        }
        {
          const port = r.uint32();
          if (port > 65535) c.out.malformed.push(`${c.at}.port_value: ${port} is not a port`);
          else peer.port = port;
        }
        break;
      default:
        r.skipType(wireType);
    }
  }
  checkEnd(c, end);
}

function readPipe(c: DecodeContext, end: number, peer: PeerInfo): void {
  const { r } = c;
  while (r.pos < end) {
    const tag = nextTag(c);
    const wireType = tag & 7;
    if (tag >>> 3 === 1) {
      if (wireType !== LEN) wrongWireType(c, "path", wireType);
      else peer.address = readShared(c, end);
    } else {
      r.skipType(wireType);
    }
  }
  checkEnd(c, end);
}

function readRequest(c: DecodeContext, end: number): void {
  const { r } = c;
  while (r.pos < end) {
    const tag = nextTag(c);
    const wireType = tag & 7;
    if (tag >>> 3 === 2) {
      if (wireType !== LEN) {
        wrongWireType(c, "http", wireType);
        continue;
      }
      const stop = fieldEnd(c, end);
      c.at = "attributes.request.http";
      readHttpRequest(c, stop);
      c.at = "attributes.request";
    } else {
      // time: Vigil stamps receivedAt itself.
      r.skipType(wireType);
    }
  }
  checkEnd(c, end);
}

function readHttpRequest(c: DecodeContext, end: number): void {
  const { r, out } = c;
  while (r.pos < end) {
    const tag = nextTag(c);
    const wireType = tag & 7;
    const field = tag >>> 3;
    switch (field) {
      case 3: {
        if (wireType !== LEN) {
          wrongWireType(c, "headers", wireType);
          break;
        }
        const stop = fieldEnd(c, end);
        c.at = "attributes.request.http.headers";
        readMapEntry(c, stop, out.headers, true);
        c.at = "attributes.request.http";
        break;
      }
      case 13: {
        if (wireType !== LEN) {
          wrongWireType(c, "header_map", wireType);
          break;
        }
        const stop = fieldEnd(c, end);
        c.at = "attributes.request.http.header_map";
        readHeaderMap(c, stop);
        c.at = "attributes.request.http";
        break;
      }
      case 1:
      case 2:
      case 4:
      case 5:
      case 6:
      case 10:
      case 11:
        if (wireType !== LEN) {
          wrongWireType(c, HTTP_STRING_FIELDS[field] ?? String(field), wireType);
          break;
        }
        assignHttpString(out, field, SHARED_HTTP_FIELDS.has(field) ? readShared(c, end) : readString(c, end));
        break;
      case 12:
        if (wireType !== LEN) wrongWireType(c, "raw_body", wireType);
        else c.rawBody = readString(c, end);
        break;
      default:
        // query and fragment are always empty; size is not read by decisions.
        r.skipType(wireType);
    }
  }
  checkEnd(c, end);
}

const HTTP_STRING_FIELDS: Readonly<Partial<Record<number, string>>> = {
  1: "id", 2: "method", 4: "path", 5: "host", 6: "scheme", 10: "protocol", 11: "body",
};
/** method, host, scheme, protocol repeat; id is unique, and path and body may carry secrets. */
const SHARED_HTTP_FIELDS: ReadonlySet<number> = new Set([2, 5, 6, 10]);

function assignHttpString(out: AccessRequest, field: number, value: string): void {
  switch (field) {
    case 1: out.requestId = value; break;
    case 2: out.method = value; break;
    case 4: out.path = value; break;
    case 5: out.host = value; break;
    case 6: out.scheme = value; break;
    case 10: out.protocol = value; break;
    default: out.body = value;
  }
}

/** Counts header bytes; past the limit it records the problem once and says "skip". */
function admitHeader(c: DecodeContext, bytes: number): boolean {
  if (c.headersTooLarge) return false;
  c.headerBytes += bytes;
  if (c.headerBytes <= c.maxHeaderBytes) return true;
  c.headersTooLarge = true;
  c.out.malformed.push(`headers exceed ${c.maxHeaderBytes} bytes`);
  return false;
}

/**
 * One map<string,string> entry (key = 1, value = 2). For headers the key is lower-cased and the
 * entry counts against maxHeaderBytes; a later entry with the same key wins, as in protobuf maps.
 */
function readMapEntry(c: DecodeContext, end: number, into: Record<string, string>, isHeader: boolean): void {
  const { r } = c;
  if (isHeader && !admitHeader(c, end - r.pos)) {
    r.pos = end;
    return;
  }
  let key = "";
  let value = "";
  while (r.pos < end) {
    const tag = nextTag(c);
    const wireType = tag & 7;
    switch (tag >>> 3) {
      case 1:
        if (wireType !== LEN) wrongWireType(c, "key", wireType);
        else key = isHeader ? readShared(c, end).toLowerCase() : readShared(c, end);
        break;
      case 2:
        if (wireType !== LEN) wrongWireType(c, "value", wireType);
        // Encoders write the key first; a value seen before its key is simply not shared.
        else value = !isHeader || SHARED_HEADER_VALUES.has(key) ? readShared(c, end) : readString(c, end);
        break;
      default:
        r.skipType(wireType);
    }
  }
  checkEnd(c, end);
  into[key] = value;
}

function readHeaderMap(c: DecodeContext, end: number): void {
  const { r } = c;
  while (r.pos < end) {
    const tag = nextTag(c);
    const wireType = tag & 7;
    if (tag >>> 3 === 1) {
      if (wireType !== LEN) {
        wrongWireType(c, "headers", wireType);
        continue;
      }
      const stop = fieldEnd(c, end);
      if (admitHeader(c, stop - r.pos)) readHeaderValue(c, stop);
      else r.pos = stop;
    } else {
      r.skipType(wireType);
    }
  }
  checkEnd(c, end);
}

/**
 * A HeaderValue from header_map (encode_raw_headers): Envoy sends key + raw_value bytes and does
 * not merge duplicates, so repeated names are joined with "," as the headers map would have.
 */
function readHeaderValue(c: DecodeContext, end: number): void {
  const { r, out } = c;
  let key = "";
  let value = "";
  let raw = "";
  let hasRaw = false;
  while (r.pos < end) {
    const tag = nextTag(c);
    const wireType = tag & 7;
    switch (tag >>> 3) {
      case 1:
        if (wireType !== LEN) wrongWireType(c, "key", wireType);
        else key = readShared(c, end).toLowerCase();
        break;
      case 2:
        if (wireType !== LEN) wrongWireType(c, "value", wireType);
        else value = SHARED_HEADER_VALUES.has(key) ? readShared(c, end) : readString(c, end);
        break;
      case 3:
        if (wireType !== LEN) wrongWireType(c, "raw_value", wireType);
        else {
          raw = SHARED_HEADER_VALUES.has(key) ? readShared(c, end) : readString(c, end);
          hasRaw = true;
        }
        break;
      default:
        r.skipType(wireType);
    }
  }
  checkEnd(c, end);
  const text = hasRaw ? raw : value;
  const previous = out.headers[key];
  out.headers[key] = previous === undefined ? text : `${previous},${text}`;
}

function readTlsSession(c: DecodeContext, end: number): void {
  const { r } = c;
  while (r.pos < end) {
    const tag = nextTag(c);
    const wireType = tag & 7;
    if (tag >>> 3 === 1) {
      if (wireType !== LEN) wrongWireType(c, "sni", wireType);
      else c.out.sni = readShared(c, end);
    } else {
      r.skipType(wireType);
    }
  }
  checkEnd(c, end);
}
