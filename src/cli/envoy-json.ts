// A test case's request JSON to the CheckRequest bytes Envoy would send (through the JSON reading
// of transport/envoy/request-json.ts, as `vigil check`), and CheckResponse bytes back to what
// Envoy learns from them, with the same .proto definitions the server loads: `vigil test` compares
// the headers the encoder really wrote.

import { encodeCheckRequestJson, loadAuthorizationPackage } from "../transport/envoy/index.js";
import { isRecord } from "../util/guards.js";

interface CheckMethod {
  responseDeserialize(bytes: Buffer): unknown;
}

let method: CheckMethod | undefined;

function checkMethod(): CheckMethod {
  if (method !== undefined) return method;
  const service = loadAuthorizationPackage()["envoy.service.auth.v3.Authorization"] as unknown as { Check: CheckMethod };
  method = service.Check;
  return method;
}

/**
 * CheckRequest bytes from its JSON (with or without the top-level "attributes"), through the
 * same JSON reading `vigil check` uses; `caller`, when given, is the SPIFFE ID Envoy took from the
 * peer certificate (attributes.source.principal). Throws a VigilError (invalid_input) naming the
 * bad field.
 */
export function requestBytes(json: Record<string, unknown>, caller?: string): Buffer {
  if (caller === undefined) return encodeCheckRequestJson(json);
  const wrapped = isRecord(json.attributes);
  const attributes: Record<string, unknown> = { ...(wrapped ? json.attributes as Record<string, unknown> : json) };
  attributes.source = { ...(isRecord(attributes.source) ? attributes.source : {}), principal: caller };
  return encodeCheckRequestJson(wrapped ? { ...json, attributes } : attributes);
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
