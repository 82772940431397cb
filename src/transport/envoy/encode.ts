// Turns a Decision into CheckResponse bytes (design.md §2 outcome table, extauthz-protocol.md §4).
// Written by hand: the message is small and its shape fixed, so sizes are computed first and the
// bytes written once into an exact-size buffer. This is the one place that knows how outcomes
// look on Envoy's wire.
//
// An allow is encoded for most requests, so per call the encoder does only what depends on the
// decision: it measures each variable string once (Buffer.byteLength), writes it with one copy
// (ASCII through latin1Write, a memcpy for V8's one-byte strings), and copies every constant run
// of bytes (tags, header names, `append: false`, metadata keys and the outcome entry, the JSON
// body's keys) from bytes prepared at load. The caller's identity headers, the same for every
// request of a caller, are kept encoded for the last few callers. Nothing is allocated per call
// but the output buffer (and, for a refusal, the JSON escape of a string that needs one).

import { Buffer } from "node:buffer";
import { HEADER_APPROVAL_ID, HEADER_CALLER, HEADER_CALLER_TRUST_DOMAIN, HEADER_CREDENTIAL_FINGERPRINT, HEADER_DECISION_ID, HEADER_STEP_UP } from "../../config/defaults.js";
import type { Decision, Outcome } from "../../model/index.js";
import {
  isFieldValue,
  removedHeaders,
  SENT_CALLER,
  SENT_CREDENTIAL_FINGERPRINT,
  SENT_DECISION_ID,
  SENT_TRUST_DOMAIN,
  sentIdentityHeaders,
} from "./upstream-headers.js";

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

const OUTCOMES = Object.keys(OUTCOME_WIRE) as Outcome[];

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

/** UTF-8 bytes of a string as Buffer writes it (a lone surrogate becomes U+FFFD, 3 bytes). */
function utf8Bytes(s: string): number {
  return s.length === 0 ? 0 : Buffer.byteLength(s, "utf8");
}

// ---- Writing: each function writes at `pos` and returns the position after what it wrote. ----

/** Buffer's native string writers: on every Node release, missing only from @types/node. */
interface Out extends Buffer {
  latin1Write(s: string, offset: number, length: number): number;
  utf8Write(s: string, offset: number, length: number): number;
}

/** Below this many characters an ASCII string is copied by a JS loop, cheaper than a native call. */
const SHORT_STRING = 16;

/** Writes `s`, whose UTF-8 length is `n`. Length n === s.length means every character is ASCII. */
function putText(out: Out, pos: number, s: string, n: number): number {
  if (n !== s.length) return pos + out.utf8Write(s, pos, n);
  if (n >= SHORT_STRING) return pos + out.latin1Write(s, pos, n);
  for (let i = 0; i < n; i++) out[pos + i] = s.charCodeAt(i);
  return pos + n;
}

/** Copies constant bytes (TypedArray#set: a builtin, no native call, faster than a JS loop). */
function putBytes(out: Out, pos: number, bytes: Uint8Array): number {
  out.set(bytes, pos);
  return pos + bytes.length;
}

function putVarint(out: Out, pos: number, n: number): number {
  while (n > 0x7f) {
    out[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  out[pos++] = n;
  return pos;
}

/** Tag and length prefix of a length-delimited field. */
function putOpen(out: Out, pos: number, tag: number, payload: number): number {
  out[pos] = tag;
  return putVarint(out, pos + 1, payload);
}

function putField(out: Out, pos: number, tag: number, s: string, n: number): number {
  return putText(out, putOpen(out, pos, tag, n), s, n);
}

/** A sizing mistake must never send Envoy a corrupt message; the caller fails closed instead. */
function checked(out: Out, pos: number): Buffer {
  if (pos !== out.length) throw new Error(`CheckResponse size mismatch: wrote ${String(pos)} of ${String(out.length)} bytes`);
  return out;
}

function allocate(size: number): Out {
  return Buffer.allocUnsafe(size) as Out;
}

/** Bytes of numbers and latin1 (here always ASCII) strings, joined; built at load. */
function bytes(...parts: readonly (number | string)[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === "number") out.push(part);
    else for (let i = 0; i < part.length; i++) out.push(part.charCodeAt(i));
  }
  return Uint8Array.from(out);
}

// ---- Header options ----

/** What precedes a header's value inside HeaderValue: the key field, then the value's tag. */
function keyHead(name: string): Uint8Array {
  if (name.length >= 0x80 || /[^\x20-\x7e]/.test(name)) throw new Error(`header name ${name} must be short ASCII`);
  return bytes(HEADER_KEY, name.length, name, HEADER_VALUE);
}

/** HeaderValueOption payload for a value of `n` bytes after `head` (keyHead). */
function optionSize(head: Uint8Array, n: number): number {
  return lenField(head.length + varintSize(n) + n) + APPEND_FALSE.length;
}

/** A whole HeaderValueOption field: `tag`, size (optionSize), header { key, value }, append false. */
function putOption(out: Out, pos: number, tag: number, size: number, head: Uint8Array, value: string, n: number): number {
  pos = putOpen(out, pos, tag, size);
  pos = putOpen(out, pos, OPTION_HEADER, head.length + varintSize(n) + n);
  pos = putBytes(out, pos, head);
  pos = putText(out, putVarint(out, pos, n), value, n);
  out[pos] = APPEND_FALSE[0];
  out[pos + 1] = APPEND_FALSE[1];
  out[pos + 2] = APPEND_FALSE[2];
  out[pos + 3] = APPEND_FALSE[3];
  return pos + APPEND_FALSE.length;
}

/** A HeaderValueOption field whose name and value are both fixed, encoded whole. */
function constantOption(tag: number, name: string, value: string): Uint8Array {
  const head = keyHead(name);
  const size = optionSize(head, value.length);
  const out = allocate(lenField(size));
  return new Uint8Array(checked(out, putOption(out, 0, tag, size, head, value, value.length)));
}

const DECISION_ID_HEAD = keyHead(HEADER_DECISION_ID);
const CALLER_HEAD = keyHead(HEADER_CALLER);
const TRUST_DOMAIN_HEAD = keyHead(HEADER_CALLER_TRUST_DOMAIN);
const FINGERPRINT_HEAD = keyHead(HEADER_CREDENTIAL_FINGERPRINT);
const APPROVAL_ID_HEAD = keyHead(HEADER_APPROVAL_ID);
const RETRY_AFTER_HEAD = keyHead("retry-after");
const JSON_CONTENT_TYPE_OPTION = constantOption(DENIED_HEADERS, "content-type", "application/json");
const STEP_UP_OPTION = constantOption(DENIED_HEADERS, HEADER_STEP_UP, "approval");

// ---- CheckResponse.dynamic_metadata: lands under envoy.filters.http.ext_authz for access logs ----

/** What precedes an entry's string value: the key field, then the value's tag. */
function entryHead(key: string): Uint8Array {
  return bytes(ENTRY_KEY, key.length, key, ENTRY_VALUE);
}

/** Struct.fields entry payload for a string value of `n` bytes after `head` (entryHead). */
function entrySize(head: Uint8Array, n: number): number {
  return head.length + varintSize(lenField(n)) + lenField(n);
}

function putEntry(out: Out, pos: number, head: Uint8Array, value: string, n: number): number {
  pos = putOpen(out, pos, STRUCT_FIELDS, entrySize(head, n));
  pos = putVarint(out, putBytes(out, pos, head), lenField(n));
  return putField(out, pos, VALUE_STRING, value, n);
}

const DECISION_ID_ENTRY = entryHead("decision_id");
const RULE_ENTRY = entryHead("rule");

/** The `outcome` entry of each outcome, encoded whole. */
const OUTCOME_ENTRY = Object.fromEntries(OUTCOMES.map((outcome) => {
  const head = entryHead("outcome");
  const out = allocate(lenField(entrySize(head, outcome.length)));
  return [outcome, new Uint8Array(checked(out, putEntry(out, 0, head, outcome, outcome.length)))];
})) as Readonly<Record<Outcome, Uint8Array>>;

function metadataSize(outcome: Outcome, idBytes: number, ruleBytes: number): number {
  return lenField(entrySize(DECISION_ID_ENTRY, idBytes)) + OUTCOME_ENTRY[outcome].length + lenField(entrySize(RULE_ENTRY, ruleBytes));
}

function putMetadata(out: Out, pos: number, size: number, outcome: Outcome, id: string, idBytes: number, rule: string, ruleBytes: number): number {
  pos = putOpen(out, pos, CHECK_DYNAMIC_METADATA, size);
  pos = putEntry(out, pos, DECISION_ID_ENTRY, id, idBytes);
  pos = putBytes(out, pos, OUTCOME_ENTRY[outcome]);
  return putEntry(out, pos, RULE_ENTRY, rule, ruleBytes);
}

/**
 * Encodes a decision. `allow` (and only exactly `allow`) becomes an OK with the upstream headers
 * upstream-headers.ts decides for it and the request's headers; every other outcome is a non-OK
 * status with a denied_response, so even a value outside the Outcome union fails closed. Throws
 * only on a bug (size mismatch or a field that is not a string); the server answers that with
 * encodeFailClosed.
 */
export function encodeCheckResponse(decision: Decision, requestHeaders: Readonly<Record<string, string>> = NO_HEADERS): Buffer {
  return decision.outcome === "allow" ? encodeAllow(decision, requestHeaders) : encodeRefusal(decision);
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * The caller's identity headers (x-vigil-caller, -trust-domain, -credential-fingerprint) as
 * encoded for a recent allow, kept because a sidecar sees the same few callers again and again.
 * An entry is found by comparing the three strings and which of them are sent, so a hit is
 * exactly the bytes the encoder would write.
 */
interface IdentityBlock {
  readonly caller: string;
  readonly trustDomain: string;
  readonly fingerprint: string;
  /** sentIdentityHeaders() without the decision id bit. */
  readonly sent: number;
  readonly bytes: Uint8Array;
}

const IDENTITY_BITS = SENT_CALLER | SENT_TRUST_DOMAIN | SENT_CREDENTIAL_FINGERPRINT;
/** A few callers, replaced in turn; lookups compare strings, so a long list would cost more than it saves. */
const IDENTITY_BLOCKS: (IdentityBlock | undefined)[] = [undefined, undefined, undefined, undefined];
let nextIdentityBlock = 0;
/**
 * Misses left before the next one is kept. Keeping costs an allocation, so when callers outnumber
 * the entries (every lookup misses) only one miss in IDENTITY_KEEP_EVERY is kept, and the others
 * write their headers straight into the answer.
 */
let missesBeforeKeep = 0;
const IDENTITY_KEEP_EVERY = 16;

function findIdentityBlock(d: Decision, sent: number): IdentityBlock | undefined {
  for (const block of IDENTITY_BLOCKS) {
    if (block !== undefined && block.sent === sent && block.caller === d.caller && block.trustDomain === d.trustDomain
      && block.fingerprint === d.credentialFingerprint) return block;
  }
  if (missesBeforeKeep-- > 0) return undefined;
  missesBeforeKeep = IDENTITY_KEEP_EVERY - 1;
  // Its own memory (allocUnsafeSlow), not a slice of the shared pool that a long-lived entry would pin.
  const bytes = Buffer.allocUnsafeSlow(identitySize(d, sent)) as Out;
  const block = { caller: d.caller, trustDomain: d.trustDomain, fingerprint: d.credentialFingerprint, sent, bytes: checked(bytes, putIdentity(bytes, 0, d, sent)) };
  IDENTITY_BLOCKS[nextIdentityBlock] = block;
  nextIdentityBlock = (nextIdentityBlock + 1) % IDENTITY_BLOCKS.length;
  return block;
}

/** Bytes of the identity header options `sent` (IDENTITY_BITS only) for `d`. */
function identitySize(d: Decision, sent: number): number {
  let size = 0;
  if ((sent & SENT_CALLER) !== 0) size += lenField(optionSize(CALLER_HEAD, utf8Bytes(d.caller)));
  if ((sent & SENT_TRUST_DOMAIN) !== 0) size += lenField(optionSize(TRUST_DOMAIN_HEAD, utf8Bytes(d.trustDomain)));
  if ((sent & SENT_CREDENTIAL_FINGERPRINT) !== 0) size += lenField(optionSize(FINGERPRINT_HEAD, utf8Bytes(d.credentialFingerprint)));
  return size;
}

function putIdentity(out: Out, pos: number, d: Decision, sent: number): number {
  if ((sent & SENT_CALLER) !== 0) pos = putHeader(out, pos, CALLER_HEAD, d.caller);
  if ((sent & SENT_TRUST_DOMAIN) !== 0) pos = putHeader(out, pos, TRUST_DOMAIN_HEAD, d.trustDomain);
  if ((sent & SENT_CREDENTIAL_FINGERPRINT) !== 0) pos = putHeader(out, pos, FINGERPRINT_HEAD, d.credentialFingerprint);
  return pos;
}

function putHeader(out: Out, pos: number, head: Uint8Array, value: string): number {
  const n = utf8Bytes(value);
  return putOption(out, pos, OK_HEADERS, optionSize(head, n), head, value, n);
}

/**
 * OK, with ok_response { headers: the identity headers sent, headers_to_remove,
 * response_headers_to_add: the decision id again, so the client can quote it }.
 */
function encodeAllow(d: Decision, requestHeaders: Readonly<Record<string, string>>): Buffer {
  const sent = sentIdentityHeaders(d);
  const removed = removedHeaders(d, requestHeaders, sent);
  const identity = findIdentityBlock(d, sent & IDENTITY_BITS);
  const idBytes = utf8Bytes(d.id);
  const ruleBytes = utf8Bytes(d.rule);

  const idOption = (sent & SENT_DECISION_ID) !== 0 ? optionSize(DECISION_ID_HEAD, idBytes) : 0;
  let okSize = identity === undefined ? identitySize(d, sent & IDENTITY_BITS) : identity.bytes.length;
  // The decision id is both set for the upstream and echoed to the client.
  if (idOption !== 0) okSize += 2 * lenField(idOption);
  for (const name of removed) okSize += lenField(utf8Bytes(name));
  const metaSize = metadataSize("allow", idBytes, ruleBytes);

  const out = allocate(2 + lenField(okSize) + lenField(metaSize));
  out[0] = CHECK_STATUS; // status {} = code 0, OK
  out[1] = 0;
  let pos = putOpen(out, 2, CHECK_OK, okSize);
  if (idOption !== 0) pos = putOption(out, pos, OK_HEADERS, idOption, DECISION_ID_HEAD, d.id, idBytes);
  pos = identity === undefined ? putIdentity(out, pos, d, sent & IDENTITY_BITS) : putBytes(out, pos, identity.bytes);
  for (const name of removed) pos = putField(out, pos, OK_HEADERS_TO_REMOVE, name, utf8Bytes(name));
  if (idOption !== 0) pos = putOption(out, pos, OK_RESPONSE_HEADERS_TO_ADD, idOption, DECISION_ID_HEAD, d.id, idBytes);
  return checked(out, putMetadata(out, pos, metaSize, "allow", d.id, idBytes, d.rule, ruleBytes));
}

function encodeRefusal(d: Decision): Buffer {
  // Outcome comes from our own code, but a value outside the union must still fail closed.
  const outcome: Outcome = Object.hasOwn(OUTCOME_WIRE, d.outcome) ? d.outcome : "deny";
  const wire = OUTCOME_WIRE[outcome];
  let approvalId: string | undefined;
  let retryAfter: string | undefined;
  if (outcome === "step_up" && d.approvalId !== undefined && d.approvalId !== "") approvalId = d.approvalId;
  if (outcome === "delay" && d.retryAfterSeconds !== undefined && Number.isFinite(d.retryAfterSeconds)) {
    // delta-seconds in Retry-After is a non-negative integer (RFC 9110 §10.2.3).
    retryAfter = String(Math.max(0, Math.ceil(d.retryAfterSeconds)));
  }
  return encodeDenied(wire.grpc, wire.http, d.id, outcome, d.reason, d.rule, approvalId, retryAfter);
}

/**
 * The answer when Vigil itself failed (judging threw, encoding or recording failed): a non-OK status, so Envoy
 * denies with 403 even under failure_mode_allow, which only applies to failed RPCs.
 */
export function encodeFailClosed(decisionId: string): Buffer {
  return encodeDenied(GrpcCode.INTERNAL, 403, decisionId, "deny", FAIL_CLOSED_REASON, "", undefined, undefined);
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
    return encodeDenied(GrpcCode.INVALID_ARGUMENT, 413, decisionId, "deny", reason, "", undefined, undefined);
  }
  return encodeDenied(GrpcCode.INTERNAL, 403, decisionId, "deny", TRANSPORT_REFUSAL_REASON[refusal], "", undefined, undefined);
}

// ---- The denied_response body: JSON.stringify of { decision_id, outcome, reason, approval_id?,
// retry_after_seconds? }, written in pieces. ----

const JSON_DECISION_ID = bytes("{\"decision_id\":");
/** `,"outcome":"…","reason":` for each outcome. */
const JSON_OUTCOME = Object.fromEntries(OUTCOMES.map((outcome) => [outcome, bytes(`,"outcome":${JSON.stringify(outcome)},"reason":`)])) as Readonly<Record<Outcome, Uint8Array>>;
const JSON_APPROVAL_ID = bytes(",\"approval_id\":");
const JSON_RETRY_AFTER = bytes(",\"retry_after_seconds\":");
const QUOTE = 0x22;
const CLOSE_BRACE = 0x7d;
/** What JSON.stringify escapes: quote, backslash, controls, (lone) surrogates. Paired ones take the slow path too. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what is looked for
const JSON_ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/;

/** `s` as a JSON string: undefined when it is only `s` in quotes (the usual case), else JSON.stringify(s). */
function jsonEscape(s: string): string | undefined {
  return JSON_ESCAPED.test(s) ? JSON.stringify(s) : undefined;
}

/** Bytes of a JSON string: `escaped` (jsonEscape) or the `n` bytes of the raw string in quotes. */
function jsonBytes(escaped: string | undefined, n: number): number {
  return escaped === undefined ? n + 2 : utf8Bytes(escaped);
}

function putJson(out: Out, pos: number, s: string, escaped: string | undefined, n: number): number {
  if (escaped !== undefined) return putText(out, pos, escaped, utf8Bytes(escaped));
  out[pos] = QUOTE;
  pos = putText(out, pos + 1, s, n);
  out[pos] = QUOTE;
  return pos + 1;
}

/**
 * A non-OK status with a denied_response: HTTP `http`, headers content-type, the decision id (when
 * it is a valid value), x-vigil-step-up and the approval id for a step-up, retry-after for a delay
 * (`approvalId` and `retryAfter` are set only then); the JSON body; the metadata.
 */
function encodeDenied(
  grpc: GrpcCode,
  http: number,
  id: string,
  outcome: Outcome,
  reason: string,
  rule: string,
  approvalId: string | undefined,
  retryAfter: string | undefined,
): Buffer {
  const idBytes = utf8Bytes(id);
  const reasonBytes = utf8Bytes(reason);
  const ruleBytes = utf8Bytes(rule);
  const approvalBytes = approvalId === undefined ? 0 : utf8Bytes(approvalId);
  const idEscaped = jsonEscape(id);
  const reasonEscaped = jsonEscape(reason);
  const approvalEscaped = approvalId === undefined ? undefined : jsonEscape(approvalId);

  const idOption = id !== "" && isFieldValue(id) ? optionSize(DECISION_ID_HEAD, idBytes) : 0;
  const approvalOption = approvalId !== undefined && isFieldValue(approvalId) ? optionSize(APPROVAL_ID_HEAD, approvalBytes) : 0;
  const retryOption = retryAfter === undefined ? 0 : optionSize(RETRY_AFTER_HEAD, retryAfter.length);
  let jsonSize = JSON_DECISION_ID.length + jsonBytes(idEscaped, idBytes) + JSON_OUTCOME[outcome].length + jsonBytes(reasonEscaped, reasonBytes) + 1;
  if (approvalId !== undefined) jsonSize += JSON_APPROVAL_ID.length + jsonBytes(approvalEscaped, approvalBytes);
  if (retryAfter !== undefined) jsonSize += JSON_RETRY_AFTER.length + retryAfter.length;

  const statusSize = (grpc === 0 ? 0 : 1 + varintSize(grpc)) + (reasonBytes === 0 ? 0 : lenField(reasonBytes));
  let deniedSize = lenField(1 + varintSize(http)) + JSON_CONTENT_TYPE_OPTION.length + lenField(jsonSize);
  if (idOption !== 0) deniedSize += lenField(idOption);
  if (outcome === "step_up") deniedSize += STEP_UP_OPTION.length;
  if (approvalOption !== 0) deniedSize += lenField(approvalOption);
  if (retryOption !== 0) deniedSize += lenField(retryOption);
  const metaSize = metadataSize(outcome, idBytes, ruleBytes);

  const out = allocate(lenField(statusSize) + lenField(deniedSize) + lenField(metaSize));
  let pos = putOpen(out, 0, CHECK_STATUS, statusSize);
  if (grpc !== 0) {
    out[pos] = STATUS_CODE;
    pos = putVarint(out, pos + 1, grpc);
  }
  if (reasonBytes !== 0) pos = putField(out, pos, STATUS_MESSAGE, reason, reasonBytes);
  pos = putOpen(out, pos, CHECK_DENIED, deniedSize);
  pos = putOpen(out, pos, DENIED_STATUS, 1 + varintSize(http));
  out[pos] = HTTP_STATUS_CODE;
  pos = putVarint(out, pos + 1, http);
  pos = putBytes(out, pos, JSON_CONTENT_TYPE_OPTION);
  if (idOption !== 0) pos = putOption(out, pos, DENIED_HEADERS, idOption, DECISION_ID_HEAD, id, idBytes);
  if (outcome === "step_up") pos = putBytes(out, pos, STEP_UP_OPTION);
  if (approvalId !== undefined && approvalOption !== 0) pos = putOption(out, pos, DENIED_HEADERS, approvalOption, APPROVAL_ID_HEAD, approvalId, approvalBytes);
  if (retryAfter !== undefined) pos = putOption(out, pos, DENIED_HEADERS, retryOption, RETRY_AFTER_HEAD, retryAfter, retryAfter.length);

  pos = putOpen(out, pos, DENIED_BODY, jsonSize);
  pos = putBytes(out, pos, JSON_DECISION_ID);
  pos = putJson(out, pos, id, idEscaped, idBytes);
  pos = putBytes(out, pos, JSON_OUTCOME[outcome]);
  pos = putJson(out, pos, reason, reasonEscaped, reasonBytes);
  if (approvalId !== undefined) pos = putJson(out, putBytes(out, pos, JSON_APPROVAL_ID), approvalId, approvalEscaped, approvalBytes);
  if (retryAfter !== undefined) pos = putText(out, putBytes(out, pos, JSON_RETRY_AFTER), retryAfter, retryAfter.length);
  out[pos++] = CLOSE_BRACE;
  return checked(out, putMetadata(out, pos, metaSize, outcome, id, idBytes, rule, ruleBytes));
}

/**
 * A fail-closed denial encoded once at load, with no decision id: the answer of last resort when
 * even encoding a fresh denial failed, so sending it cannot fail.
 */
export const STATIC_FAIL_CLOSED: Buffer = encodeFailClosed("");
