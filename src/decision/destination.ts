// Which workload a request is judged under. The answer comes from what the operator set (the
// Envoy route's context extension `destination`, Vigil's settings, the sidecar's own SVID that
// Envoy reports as destination.principal), never from a header the caller chose, unless the
// settings say this Vigil fronts several hosts (source: host) and list them.

import type { DestinationConfig } from "../config/index.js";
import type { AccessRequest } from "../model/index.js";

/** The context extension key an Envoy route sets to name the workload behind it. */
export const CONTEXT_DESTINATION = "destination";

/** A destination name, or why the request has none (a denial reason safe to show the caller). */
export type DestinationResult = { name: string; problem?: undefined } | { name?: undefined; problem: string };

export type ResolveDestination = (req: AccessRequest) => DestinationResult;

const DEFAULT_SETTINGS: DestinationConfig = { source: "workload", name: "", principals: {}, hosts: [] };

/** Compiles the settings once into the per-request function (a Map and a Set; no regex per request). */
export function createDestinationResolver(settings: DestinationConfig = DEFAULT_SETTINGS): ResolveDestination {
  // A Map, not the settings object: a principal such as "constructor" must not find a prototype member.
  const byPrincipal = new Map(Object.entries(settings.principals));
  const configuredName = settings.name;
  if (settings.source === "host") {
    const hosts = new Set(settings.hosts);
    return (req) => {
      const routed = routeDestination(req);
      if (routed !== undefined) return routed;
      const raw = req.host !== "" ? req.host : (req.headers[":authority"] ?? "");
      if (raw === "") return { problem: "no destination: the request names no host" };
      const host = gatewayHost(raw);
      if (!hosts.has(host)) return { problem: "destination host is not one this gateway fronts" };
      return { name: host };
    };
  }
  return (req) => {
    const routed = routeDestination(req);
    const principal = req.destination.principal;
    const configured = configuredName !== "" ? configuredName : (byPrincipal.get(principal) ?? "");
    if (routed !== undefined) {
      if (routed.name !== undefined && configured !== "" && routed.name !== configured) {
        // Two operator settings disagree: neither may be picked, or a copied Envoy route could
        // judge this workload's traffic by another workload's rules.
        return { problem: "destination is ambiguous: the route and the sidecar settings name different workloads" };
      }
      return routed;
    }
    if (configured !== "") return { name: configured };
    if (principal.startsWith("spiffe://")) return { name: principal };
    if (principal !== "") return { problem: "no destination: the sidecar's own principal is not a SPIFFE ID" };
    return { problem: "no destination: the route sets no destination and the sidecar has no workload name" };
  };
}

/** The route's `destination` extension, lower-cased as policies' destinations are; undefined when absent. */
function routeDestination(req: AccessRequest): DestinationResult | undefined {
  const value = Object.hasOwn(req.contextExtensions, CONTEXT_DESTINATION) ? req.contextExtensions[CONTEXT_DESTINATION] : undefined;
  if (value === undefined || value === "") return undefined;
  return { name: value.startsWith("spiffe://") ? value : asciiLower(value) };
}

/**
 * The host as a gateway's allow-list names it: port and one trailing dot removed, ASCII
 * lower-cased. Anything but letters, digits, "-" and "." gives "" (no match): String#toLowerCase
 * would turn a Kelvin sign (U+212A) into "k", a host Envoy's own matching would not equate.
 */
export function gatewayHost(raw: string): string {
  let end = raw.length;
  const colon = raw.lastIndexOf(":");
  if (colon !== -1) {
    for (let i = colon + 1; i < raw.length; i++) {
      const c = raw.charCodeAt(i);
      if (c < 48 || c > 57) return "";
    }
    end = colon;
  }
  if (end > 0 && raw.charCodeAt(end - 1) === 46 /* . */) end--;
  let out = "";
  for (let i = 0; i < end; i++) {
    const c = raw.charCodeAt(i);
    if (c >= 65 && c <= 90) out += String.fromCharCode(c + 32);
    else if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46) out += raw[i] ?? "";
    else return "";
  }
  return out;
}

function asciiLower(value: string): string {
  // Route names are lower case already: then the value itself, no new string.
  let first = 0;
  while (first < value.length) {
    const c = value.charCodeAt(first);
    if (c >= 65 && c <= 90) break;
    first++;
  }
  if (first === value.length) return value;
  let out = value.slice(0, first);
  for (let i = first; i < value.length; i++) {
    const c = value.charCodeAt(i);
    out += c >= 65 && c <= 90 ? String.fromCharCode(c + 32) : (value[i] ?? "");
  }
  return out;
}
