// A frozen copy of src/transport/envoy/encode.ts as it was before the #9 rewrite (commit eb7a24b), kept
// only as the reference the differential test (test/transport/envoy/encode-differential.test.ts)
// holds the new encoder to: byte for byte. Not to be imported by src/ or changed.

// Turns a Decision into CheckResponse bytes (design.md §2 outcome table, extauthz-protocol.md §4).
// Written by hand: the message is small and its shape fixed, so sizes are computed first and the
// bytes written once into an exact-size buffer, without the per-field allocations of a generic
// writer (an allow is encoded for most requests). This is the one place that knows how outcomes
// look on Envoy's wire.

import { HEADER_APPROVAL_ID, HEADER_DECISION_ID, HEADER_STEP_UP } from "../../../src/config/defaults.js";
import type { Decision, Outcome } from "../../../src/model/index.js";
import { isFieldValue, upstreamHeaders } from "./upstream-headers.js";

/** google.rpc.Code values Vigil puts in CheckResponse.status. */
export const GrpcCode = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  PERMISSION_DENIED: 7,
  INTERNAL: 13,
} as const;
export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode];

/**
 * How each outcome reaches Envoy. Envoy only tells status 0 from non-zero; the HTTP status of
 * the local reply comes from denied_response. Every refusal that policy decided uses
 * PERMISSION_DENIED, `delay` included: RESOURCE_EXHAUSTED means a quota and UNAVAILABLE means
 * the authorization service itself is failing, and anything reading these statuses (Envoy debug
 * logs, taps, dashboards) should see "policy said no, retry later" rather than an outage. The
 * "later" is carried by HTTP 429 and retry-after. INTERNAL is kept for Vigil's own failures.
 */
export const OUTCOME_WIRE: Readonly<Record<Outcome, { grpc: GrpcCode; http: number }>> = {
  allow: { grpc: GrpcCode.OK, http: 200 },
  deny: { grpc: GrpcCode.PERMISSION_DENIED, http: 403 },
  revoke: { grpc: GrpcCode.PERMISSION_DENIED, http: 403 },
  step_up: { grpc: GrpcCode.PERMISSION_DENIED, http: 403 },
  delay: { grpc: GrpcCode.PERMISSION_DENIED, http: 429 },
};

/** Reason sent when Vigil could not decide; says nothing about internals. */
export const FAIL_CLOSED_REASON = "authorization failed; request denied";

// Field tags (field number << 3 | wire type). Every field used has a number below 16, so each
// tag is one byte. 2 = length-delimited, 0 = varint.
// CheckResponse
const CHECK_STATUS = 0x0a; // 1
const CHECK_DENIED = 0x12; // 2
const CHECK_OK = 0x1a; // 3
const CHECK_DYNAMIC_METADATA = 0x22; // 4
// google.rpc.Status
const STATUS_CODE = 0x08; // 1, varint
const STATUS_MESSAGE = 0x12; // 2
// DeniedHttpResponse
const DENIED_STATUS = 0x0a; // 1, envoy.type.v3.HttpStatus
const DENIED_HEADERS = 0x12; // 2
const DENIED_BODY = 0x1a; // 3
const HTTP_STATUS_CODE = 0x08; // HttpStatus.code, varint
// OkHttpResponse
const OK_HEADERS = 0x12; // 2
const OK_HEADERS_TO_REMOVE = 0x2a; // 5
const OK_RESPONSE_HEADERS_TO_ADD = 0x32; // 6
// HeaderValueOption { header = 1 HeaderValue { key = 1, value = 2 }, append = 2 BoolValue }
const OPTION_HEADER = 0x0a;
const HEADER_KEY = 0x0a;
const HEADER_VALUE = 0x12;
/**
 * `append: {value: false}` written out (field 2, length 2, BoolValue.value = false). False or
 * unset both mean "overwrite" to every Envoy up to 1.37, but an explicit false cannot be read as
 * APPEND_IF_EXISTS_OR_ADD by a release that honours append_action (extauthz-protocol.md §4).
 */
const APPEND_FALSE = [0x12, 0x02, 0x08, 0x00] as const;
// google.protobuf.Struct { fields = 1 map entry { key = 1, value = 2 Value { string_value = 3 } } }
const STRUCT_FIELDS = 0x0a;
const ENTRY_KEY = 0x0a;
const ENTRY_VALUE = 0x12;
const VALUE_STRING = 0x1a;

function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

/** Bytes of a length-delimited field: tag, length prefix, payload. */
function lenField(payload: number): number {
  return 1 + varintSize(payload) + payload;
}

/** UTF-8 byte length as Buffer#write produces it (a lone surrogate becomes U+FFFD, 3 bytes). */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** A string with its UTF-8 length, measured once and used for both sizing and writing. */
interface Text {
  readonly s: string;
  readonly n: number;
}

function text(s: string): Text {
  return { s, n: utf8Length(s) };
}

interface HeaderText {
  readonly key: Text;
  readonly value: Text;
}

/** An exact-size output buffer written front to back. */
class Sink {
  readonly buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  varint(n: number): void {
    while (n > 0x7f) {
      this.buf[this.pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    this.buf[this.pos++] = n;
  }

  open(tag: number, payload: number): void {
    this.buf[this.pos++] = tag;
    this.varint(payload);
  }

  string(tag: number, t: Text): void {
    this.open(tag, t.n);
    if (t.n === t.s.length) {
      // All ASCII: a JS loop beats crossing into C++ for strings this short.
      for (let i = 0; i < t.n; i++) this.buf[this.pos++] = t.s.charCodeAt(i);
    } else {
      this.pos += this.buf.write(t.s, this.pos, t.n, "utf8");
    }
  }

  done(): Buffer {
    // A sizing mistake must never send Envoy a corrupt message; the caller fails closed instead.
    if (this.pos !== this.buf.length) throw new Error(`CheckResponse size mismatch: wrote ${this.pos} of ${this.buf.length} bytes`);
    return this.buf;
  }
}

function headerValueSize(h: HeaderText): number {
  return lenField(h.key.n) + lenField(h.value.n);
}

function headerOptionSize(h: HeaderText): number {
  return lenField(headerValueSize(h)) + APPEND_FALSE.length;
}

function writeHeaderOption(out: Sink, tag: number, h: HeaderText): void {
  out.open(tag, headerOptionSize(h));
  out.open(OPTION_HEADER, headerValueSize(h));
  out.string(HEADER_KEY, h.key);
  out.string(HEADER_VALUE, h.value);
  for (const b of APPEND_FALSE) out.byte(b);
}

/** CheckResponse.dynamic_metadata: lands under envoy.filters.http.ext_authz for access logs. */
const META_DECISION_ID = text("decision_id");
const META_OUTCOME = text("outcome");
const META_RULE = text("rule");

function structEntrySize(key: Text, value: Text): number {
  return lenField(key.n) + lenField(lenField(value.n));
}

function metadataSize(id: Text, outcome: Text, rule: Text): number {
  return lenField(structEntrySize(META_DECISION_ID, id))
    + lenField(structEntrySize(META_OUTCOME, outcome))
    + lenField(structEntrySize(META_RULE, rule));
}

function writeMetadata(out: Sink, id: Text, outcome: Text, rule: Text): void {
  out.open(CHECK_DYNAMIC_METADATA, metadataSize(id, outcome, rule));
  for (const [key, value] of [[META_DECISION_ID, id], [META_OUTCOME, outcome], [META_RULE, rule]] as const) {
    out.open(STRUCT_FIELDS, structEntrySize(key, value));
    out.string(ENTRY_KEY, key);
    out.open(ENTRY_VALUE, lenField(value.n));
    out.string(VALUE_STRING, value);
  }
}

const OUTCOME_TEXT: Readonly<Record<Outcome, Text>> = {
  allow: text("allow"),
  deny: text("deny"),
  revoke: text("revoke"),
  step_up: text("step_up"),
  delay: text("delay"),
};
const JSON_CONTENT_TYPE: HeaderText = { key: text("content-type"), value: text("application/json") };
const DECISION_ID = text(HEADER_DECISION_ID);

/**
 * Encodes a decision. `allow` (and only exactly `allow`) becomes an OK with the upstream headers
 * upstreamHeaders() decides for it and the request's headers; every other outcome is a non-OK
 * status with a denied_response, so even a value outside the Outcome union fails closed. Throws
 * only on a bug (size mismatch or a field that is not a string); the server answers that with
 * encodeFailClosed.
 */
export function encodeCheckResponse(decision: Decision, requestHeaders: Readonly<Record<string, string>> = NO_HEADERS): Buffer {
  return decision.outcome === "allow" ? encodeAllow(decision, requestHeaders) : encodeRefusal(decision);
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

function encodeAllow(d: Decision, requestHeaders: Readonly<Record<string, string>>): Buffer {
  const upstream = upstreamHeaders(d, requestHeaders);
  const set: HeaderText[] = upstream.set.map(([name, value]) => ({ key: text(name), value: text(value) }));
  const removed: Text[] = upstream.remove.map(text);

  // The client gets the decision id too, so it can quote it.
  const echo = set[0]?.key.s === HEADER_DECISION_ID ? set[0] : undefined;

  let okSize = 0;
  for (const h of set) okSize += lenField(headerOptionSize(h));
  for (const name of removed) okSize += lenField(name.n);
  if (echo !== undefined) okSize += lenField(headerOptionSize(echo));
  const id = text(d.id);
  const rule = text(d.rule);
  const size = lenField(0) + lenField(okSize) + lenField(metadataSize(id, OUTCOME_TEXT.allow, rule));

  const out = new Sink(size);
  out.open(CHECK_STATUS, 0); // status {} = code 0, OK
  out.open(CHECK_OK, okSize);
  for (const h of set) writeHeaderOption(out, OK_HEADERS, h);
  for (const name of removed) out.string(OK_HEADERS_TO_REMOVE, name);
  if (echo !== undefined) writeHeaderOption(out, OK_RESPONSE_HEADERS_TO_ADD, echo);
  writeMetadata(out, id, OUTCOME_TEXT.allow, rule);
  return out.done();
}

function encodeRefusal(d: Decision): Buffer {
  // Outcome comes from our own code, but a value outside the union must still fail closed.
  const outcome: Outcome = Object.hasOwn(OUTCOME_WIRE, d.outcome) ? d.outcome : "deny";
  const wire = OUTCOME_WIRE[outcome];
  const headers: [string, string][] = [];
  const body: Record<string, string | number> = { decision_id: d.id, outcome, reason: d.reason };
  switch (outcome) {
    case "step_up":
      headers.push([HEADER_STEP_UP, "approval"]);
      if (d.approvalId !== undefined && d.approvalId !== "") {
        headers.push([HEADER_APPROVAL_ID, d.approvalId]);
        body.approval_id = d.approvalId;
      }
      break;
    case "delay": {
      const seconds = d.retryAfterSeconds;
      if (seconds !== undefined && Number.isFinite(seconds)) {
        // delta-seconds in Retry-After is a non-negative integer (RFC 9110 §10.2.3).
        const whole = Math.max(0, Math.ceil(seconds));
        headers.push(["retry-after", String(whole)]);
        body.retry_after_seconds = whole;
      }
      break;
    }
    case "allow":
    case "deny":
    case "revoke":
      break;
  }
  return encodeDenied(wire.grpc, wire.http, d.id, outcome, d.reason, d.rule, headers, body);
}

/**
 * The answer when Vigil itself failed (judging threw, encoding or recording failed): a non-OK status, so Envoy
 * denies with 403 even under failure_mode_allow, which only applies to failed RPCs.
 */
export function encodeFailClosed(decisionId: string): Buffer {
  return encodeDenied(
    GrpcCode.INTERNAL, 403, decisionId, "deny", FAIL_CLOSED_REASON, "", [],
    { decision_id: decisionId, outcome: "deny", reason: FAIL_CLOSED_REASON },
  );
}

/**
 * Why the transport answered a Check without a decision: the message was over
 * grpc.maxRequestBytes, its deadline passed before it was answered, or grpc-js itself refused the
 * call (a malformed grpc-timeout, a stream without a message, …).
 */
export type TransportRefusal = "oversized" | "late" | "transport";

/** Reasons sent for transport refusals: fixed texts, nothing taken from the request. */
export const TRANSPORT_REFUSAL_REASON: Readonly<Record<Exclude<TransportRefusal, "oversized">, string>> = {
  late: "deadline passed before the check was answered; request denied",
  transport: FAIL_CLOSED_REASON,
};

/**
 * The answer to a Check that never reached a decision; a non-OK status with a denied_response,
 * like every refusal. Oversized: INVALID_ARGUMENT and HTTP 413, the reason naming the limit.
 * Late and transport failures are Vigil's own failures: INTERNAL and 403, as encodeFailClosed.
 */
export function encodeTransportRefusal(refusal: TransportRefusal, decisionId: string, maxRequestBytes: number): Buffer {
  if (refusal === "oversized") {
    const reason = `CheckRequest larger than ${String(maxRequestBytes)} bytes; request denied`;
    return encodeDenied(
      GrpcCode.INVALID_ARGUMENT, 413, decisionId, "deny", reason, "", [],
      { decision_id: decisionId, outcome: "deny", reason },
    );
  }
  const reason = TRANSPORT_REFUSAL_REASON[refusal];
  return encodeDenied(
    GrpcCode.INTERNAL, 403, decisionId, "deny", reason, "", [],
    { decision_id: decisionId, outcome: "deny", reason },
  );
}

/**
 * A fail-closed denial encoded once at load, with no decision id: the answer of last resort when
 * even encoding a fresh denial failed, so sending it cannot fail.
 */
export const STATIC_FAIL_CLOSED: Buffer = encodeFailClosed("");

function encodeDenied(
  grpc: GrpcCode,
  http: number,
  decisionId: string,
  outcome: Outcome,
  reason: string,
  rule: string,
  extraHeaders: readonly (readonly [string, string])[],
  body: Readonly<Record<string, string | number>>,
): Buffer {
  const headers: HeaderText[] = [JSON_CONTENT_TYPE];
  if (decisionId !== "" && isFieldValue(decisionId)) headers.push({ key: DECISION_ID, value: text(decisionId) });
  for (const [name, value] of extraHeaders) {
    if (isFieldValue(value)) headers.push({ key: text(name), value: text(value) });
  }
  const message = text(reason);
  const json = text(JSON.stringify(body));
  const id = text(decisionId);
  const ruleText = text(rule);

  const statusSize = (grpc === 0 ? 0 : 1 + varintSize(grpc)) + (message.n === 0 ? 0 : lenField(message.n));
  let deniedSize = lenField(1 + varintSize(http)) + lenField(json.n);
  for (const h of headers) deniedSize += lenField(headerOptionSize(h));
  const size = lenField(statusSize) + lenField(deniedSize) + lenField(metadataSize(id, OUTCOME_TEXT[outcome], ruleText));

  const out = new Sink(size);
  out.open(CHECK_STATUS, statusSize);
  if (grpc !== 0) {
    out.byte(STATUS_CODE);
    out.varint(grpc);
  }
  if (message.n !== 0) out.string(STATUS_MESSAGE, message);
  out.open(CHECK_DENIED, deniedSize);
  out.open(DENIED_STATUS, 1 + varintSize(http));
  out.byte(HTTP_STATUS_CODE);
  out.varint(http);
  for (const h of headers) writeHeaderOption(out, DENIED_HEADERS, h);
  out.string(DENIED_BODY, json);
  writeMetadata(out, id, OUTCOME_TEXT[outcome], ruleText);
  return out.done();
}
