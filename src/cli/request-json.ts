// Reads a CheckRequest written as JSON (the proto3 JSON mapping of Envoy's CheckRequest, snake_case
// or camelCase, with or without the top-level "attributes") into an AccessRequest, for
// `vigil check` and for examples/requests/*.json.

import { z } from "zod";
import type { AccessRequest } from "../decision/index.js";
import { VigilError } from "../errors/index.js";
import { formatZodError } from "../config/index.js";

const peer = z.object({
  principal: z.string().default(""),
  certificate: z.string().default(""),
  address: z.object({
    socket_address: z.object({ address: z.string().default(""), port_value: z.number().int().default(0) }).partial().optional(),
  }).optional(),
}).prefault({});

const attributes = z.strictObject({
  source: peer,
  destination: peer,
  request: z.object({
    http: z.object({
      id: z.string().default(""),
      method: z.string().default("GET"),
      path: z.string().default("/"),
      host: z.string().default(""),
      scheme: z.string().default("https"),
      protocol: z.string().default("HTTP/2"),
      headers: z.record(z.string(), z.string()).default({}),
      body: z.string().default(""),
    }).prefault({}),
  }).prefault({}),
  context_extensions: z.record(z.string(), z.string()).default({}),
  tls_session: z.object({ sni: z.string().default("") }).prefault({}),
});

function snake(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snake);
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    // Header and context-extension keys are data, not field names: keep them as written.
    const key = k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    out[key] = key === "headers" || key === "context_extensions" ? v : snake(v);
  }
  return out;
}

export function accessRequestFromJson(json: unknown, now: number): AccessRequest {
  const converted = snake(json) as Record<string, unknown> | null;
  const attrsInput = converted !== null && typeof converted === "object" && "attributes" in converted ? converted.attributes : converted;
  const parsed = attributes.safeParse(attrsInput);
  if (!parsed.success) throw new VigilError("invalid_input", `invalid CheckRequest JSON: ${formatZodError(parsed.error)}`);
  const a = parsed.data;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(a.request.http.headers)) headers[k.toLowerCase()] = v;
  const http = a.request.http;
  return {
    receivedAt: now,
    source: {
      principal: a.source.principal, certificate: a.source.certificate,
      address: a.source.address?.socket_address?.address ?? "", port: a.source.address?.socket_address?.port_value ?? 0,
    },
    destination: {
      principal: a.destination.principal, certificate: "",
      address: a.destination.address?.socket_address?.address ?? "", port: a.destination.address?.socket_address?.port_value ?? 0,
    },
    requestId: http.id,
    method: http.method,
    path: http.path,
    host: http.host !== "" ? http.host : (headers[":authority"] ?? ""),
    scheme: http.scheme,
    protocol: http.protocol,
    headers,
    body: http.body,
    contextExtensions: a.context_extensions,
    sni: a.tls_session.sni,
    malformed: [],
  };
}
