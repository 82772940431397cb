// A CheckRequest written as JSON (the proto3 JSON mapping of Envoy's CheckRequest, snake_case or
// camelCase, with or without the top-level "attributes") turned into the bytes Envoy would send,
// for `vigil check` and examples/requests/*.json. Offline, those bytes go through the server's
// own decoder (decode.ts), so the CLI cannot judge a request the server would read differently;
// with --server they go on the wire as they are.
//
// The JSON is checked against Envoy's own message types before encoding: an unknown field (a
// typo), a value of the wrong type or a nested message that is not an object is refused with its
// path; a null or missing field is simply unset, as proto3 JSON says.

import protobuf from "protobufjs";
import { VigilError } from "../../errors/index.js";
import { isRecord } from "../../util/guards.js";
import type { CheckRequest } from "./gen/envoy/service/auth/v3/CheckRequest.js";
import { EXTERNAL_AUTH_PROTO, PROTO_DIR } from "./proto.js";

const CHECK_REQUEST = "envoy.service.auth.v3.CheckRequest";

let checkRequestType: protobuf.Type | undefined;

/** Envoy's CheckRequest type, loaded once from Vigil's protos (the ones the server serves). */
function checkRequest(): protobuf.Type {
  if (checkRequestType !== undefined) return checkRequestType;
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => `${PROTO_DIR}${target}`;
  root.loadSync(EXTERNAL_AUTH_PROTO, { keepCase: true });
  checkRequestType = root.lookupType(CHECK_REQUEST);
  return checkRequestType;
}

/**
 * The JSON as a CheckRequest object in Envoy's field names (snake_case), checked against the
 * message types; throws VigilError("invalid_input") naming the first bad field.
 */
export function checkRequestFromJson(json: unknown): CheckRequest {
  if (!isRecord(json)) throw invalid("a CheckRequest must be a JSON object");
  const type = checkRequest();
  // {"attributes": {...}} or the attributes alone.
  const wrapped = Object.keys(json).some((k) => k === "attributes") ? json : { attributes: json };
  const message = normalise(type, wrapped, "");
  const problem = type.verify(message);
  if (problem !== null) throw invalid(problem);
  return message;
}

/** The JSON encoded as CheckRequest bytes, exactly what Envoy would put on the wire. */
export function encodeCheckRequestJson(json: unknown): Buffer {
  const type = checkRequest();
  const message = checkRequestFromJson(json);
  try {
    return Buffer.from(type.encode(type.fromObject(message)).finish());
  } catch (cause) {
    // fromObject refuses what verify lets through in a few corners (bytes that are not base64).
    throw invalid(cause instanceof Error ? cause.message : String(cause), cause);
  }
}

function invalid(problem: string, cause?: unknown): VigilError {
  return new VigilError("invalid_input", `invalid CheckRequest JSON: ${problem}`, cause === undefined ? undefined : { cause });
}

/**
 * Bounds Envoy's own protos put on numeric fields (`validate.rules`), which Vigil's trimmed copies
 * leave out: a value past them is no request Envoy sends, and the decoder would refuse it.
 */
const ENVOY_MAXIMUMS: Readonly<Record<string, number>> = { port_value: 65535 };

/** What proto3 JSON accepts for bytes: standard or URL-safe base64, padded or not. */
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** camelCase JSON names become the proto's snake_case ones (proto3 JSON accepts both). */
function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * A copy of `value` in the proto's field names, refusing names the message does not have; map
 * keys (headers, context extensions) are data and kept as written. Types are left to verify().
 */
function normalise(type: protobuf.Type, value: Record<string, unknown>, path: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const name = snake(key);
    // Own fields only: "__proto__" or "constructor" are not fields of any message.
    const field = Object.hasOwn(type.fields, name) ? type.fields[name] : Object.hasOwn(type.fields, key) ? type.fields[key] : undefined;
    const at = path === "" ? key : `${path}.${key}`;
    if (field === undefined) throw invalid(`${at}: no such field in ${type.name}`);
    if (v === null || v === undefined) continue;
    const resolved = field.resolve().resolvedType;
    if (resolved instanceof protobuf.Type && !isWellKnown(resolved)) {
      if (field.map) {
        if (isRecord(v)) {
          const entries = Object.create(null) as Record<string, unknown>;
          for (const [k, entry] of Object.entries(v)) entries[k] = isRecord(entry) ? normalise(resolved, entry, `${at}.${k}`) : entry;
          out[field.name] = entries;
        } else {
          out[field.name] = v;
        }
      } else if (field.repeated && Array.isArray(v)) {
        out[field.name] = v.map((item: unknown, i) => (isRecord(item) ? normalise(resolved, item, `${at}[${i}]`) : item));
      } else if (!field.repeated) {
        if (!isRecord(v)) throw invalid(`${at}: object expected`);
        out[field.name] = normalise(resolved, v, at);
      } else {
        out[field.name] = v;
      }
    } else {
      if (field.type === "bytes" && typeof v === "string" && !BASE64.test(v)) throw invalid(`${at}: base64 expected`);
      const maximum = Object.hasOwn(ENVOY_MAXIMUMS, field.name) ? ENVOY_MAXIMUMS[field.name] : undefined;
      if (maximum !== undefined && typeof v === "number" && v > maximum) throw invalid(`${at}: at most ${String(maximum)} (Envoy's own limit)`);
      out[field.name] = v;
    }
  }
  return out;
}

/** google.protobuf.* messages (Timestamp, Struct, Any) are passed through to verify as written. */
function isWellKnown(type: protobuf.Type): boolean {
  return type.fullName.startsWith(".google.protobuf.");
}
