// Envoy's messages written as JSON (the proto3 JSON mapping, snake_case or camelCase) to and from
// the bytes on the wire, with the same .proto definitions the server loads. `vigil test` turns a
// case's request into CheckRequest bytes this way, so the real decoder reads it exactly as it
// reads Envoy's, and reads the encoded CheckResponse back to compare its headers.

import { loadAuthorizationPackage } from "../transport/envoy/index.js";
import { VigilError } from "../errors/index.js";

interface CheckMethod {
  requestSerialize(value: unknown): Buffer;
  responseDeserialize(bytes: Buffer): unknown;
}

let method: CheckMethod | undefined;

function checkMethod(): CheckMethod {
  if (method !== undefined) return method;
  const service = loadAuthorizationPackage()["envoy.service.auth.v3.Authorization"] as unknown as { Check: CheckMethod };
  method = service.Check;
  return method;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** camelCase field names to the proto's snake_case; header and context-extension keys are data, kept as written. */
function snake(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snake);
  if (!isRecord(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const key = k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    out[key] = key === "headers" || key === "context_extensions" ? v : snake(v);
  }
  return out;
}

/**
 * CheckRequest bytes from its JSON (with or without the top-level "attributes"); `caller`, when
 * given, is the SPIFFE ID Envoy took from the peer certificate (attributes.source.principal).
 * Throws a VigilError (invalid_input) saying what is wrong.
 */
export function encodeCheckRequestJson(json: Record<string, unknown>, caller?: string): Buffer {
  const converted = snake(json) as Record<string, unknown>;
  const attributes = "attributes" in converted ? converted.attributes : converted;
  if (!isRecord(attributes)) throw new VigilError("invalid_input", "request: expected a mapping (the CheckRequest's attributes)");
  const copy: Record<string, unknown> = { ...attributes };
  if (caller !== undefined) {
    const source = isRecord(copy.source) ? copy.source : {};
    copy.source = { ...source, principal: caller };
  }
  const http = isRecord(copy.request) && isRecord(copy.request.http) ? copy.request.http : undefined;
  if (http !== undefined && isRecord(http.headers)) {
    for (const [name, value] of Object.entries(http.headers)) {
      if (typeof value !== "string") throw new VigilError("invalid_input", `request.http.headers.${name}: expected a string`);
    }
  }
  try {
    return checkMethod().requestSerialize({ attributes: copy });
  } catch (cause) {
    throw new VigilError("invalid_input", `request is not a CheckRequest: ${(cause as Error).message}`, { cause });
  }
}

export interface CheckAnswer {
  /** google.rpc.Code of the CheckResponse (0 = allowed). */
  code: number;
  /** Upstream headers set on allow, client headers on a denial; lower-case names. */
  headers: Record<string, string>;
}

interface HeaderOption { header?: { key?: string; value?: string } | null }
interface ResponseJson {
  status?: { code?: number } | null;
  denied_response?: { headers?: HeaderOption[] } | null;
  ok_response?: { headers?: HeaderOption[] } | null;
}

/** What Envoy learns from CheckResponse bytes. */
export function decodeCheckResponse(bytes: Buffer): CheckAnswer {
  const response = checkMethod().responseDeserialize(bytes) as ResponseJson;
  const code = response.status?.code ?? 0;
  const list = code === 0 ? response.ok_response?.headers : response.denied_response?.headers;
  const headers: Record<string, string> = {};
  for (const option of list ?? []) {
    const key = option.header?.key;
    if (key !== undefined) headers[key.toLowerCase()] = option.header?.value ?? "";
  }
  return { code, headers };
}
