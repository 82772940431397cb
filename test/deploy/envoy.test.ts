// The Envoy bootstraps in envoy/ decoded with Envoy's own API definitions, strictly, and the
// settings that make the sidecar pattern safe asserted on the decoded messages.

import { beforeAll, describe, expect, it } from "vitest";
import type protobuf from "protobufjs";
import { DEFAULT_GRPC_SOCKET } from "../../src/config/defaults.js";
import { decodeStrict, durationMs, loadEnvoyApi } from "./envoy-api.js";
import { filesUnder, parseYamlDocuments, readRepoFile, readYamlDocuments } from "./repo.js";

const BOOTSTRAP = "envoy.config.bootstrap.v3.Bootstrap";
const HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const EXT_AUTHZ_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
const PER_ROUTE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute";
const TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const H2_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
/** Envoy's own default for the ext_authz gRPC call; ours must be tighter. */
const ENVOY_DEFAULT_TIMEOUT_MS = 200;

// Shapes of the decoded messages, as far as the assertions read them.
interface SocketAddress { address: string; port_value: number }
interface Address { socket_address?: SocketAddress; pipe?: { path: string; mode?: number } }
interface TypedConfig { "@type": string; [field: string]: unknown }
interface NamedConfig { name: string; typed_config: TypedConfig }
interface Route {
  name?: string;
  match: { path?: string; prefix?: string };
  route?: { cluster: string };
  direct_response?: { status: number };
  typed_per_filter_config?: Record<string, TypedConfig>;
}
interface Hcm {
  stat_prefix: string;
  forward_client_cert_details?: string;
  set_current_client_cert_details?: { uri?: boolean };
  http_filters: NamedConfig[];
  access_log?: NamedConfig[];
  route_config: { virtual_hosts: VirtualHost[] };
  normalize_path?: boolean;
  merge_slashes?: boolean;
  path_with_escaped_slashes_action?: string;
}
interface VirtualHost {
  name: string;
  domains: string[];
  routes: Route[];
  typed_per_filter_config?: Record<string, TypedConfig>;
}
interface Listener {
  name: string;
  address: Address;
  filter_chains: { filters: NamedConfig[]; transport_socket?: NamedConfig }[];
}
interface Cluster {
  name: string;
  load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: Address } }[] }[] };
  typed_extension_protocol_options?: Record<string, TypedConfig>;
}
interface Bootstrap {
  node: { id: string; cluster: string };
  admin: { address: Address };
  static_resources: { listeners: Listener[]; clusters: Cluster[] };
}

let api: protobuf.Root;

beforeAll(() => {
  api = loadEnvoyApi();
});

function decodeFile(text: string, source: string): ReturnType<typeof decodeStrict> {
  const [doc] = parseYamlDocuments(text, source);
  return decodeStrict(api, BOOTSTRAP, doc);
}

function loadBootstrap(path: string): Bootstrap {
  const decoded = decodeFile(readRepoFile(path), path);
  expect(decoded.issues).toEqual([]);
  return decoded.value as unknown as Bootstrap;
}

function hcmOf(listener: Listener): Hcm {
  const filter = listener.filter_chains[0]?.filters.find((f) => f.typed_config["@type"] === HCM_TYPE);
  if (filter === undefined) throw new Error(`listener ${listener.name} has no HTTP connection manager`);
  return filter.typed_config as unknown as Hcm;
}

function inbound(bootstrap: Bootstrap): Listener {
  const listener = bootstrap.static_resources.listeners.find((l) => l.name === "inbound_mtls");
  if (listener === undefined) throw new Error("no listener inbound_mtls");
  return listener;
}

function extAuthzOf(bootstrap: Bootstrap): Record<string, unknown> {
  const filters = hcmOf(inbound(bootstrap)).http_filters;
  const filter = filters.find((f) => f.name === "envoy.filters.http.ext_authz");
  if (filter === undefined) throw new Error("no envoy.filters.http.ext_authz");
  expect(filter.typed_config["@type"]).toBe(EXT_AUTHZ_TYPE);
  return filter.typed_config;
}

/** The context_extensions Envoy sends for a route: the virtual host's, then the route's keys over them. */
function contextExtensionsOf(vhost: VirtualHost, route: Route): Record<string, string> {
  const of = (config: Record<string, TypedConfig> | undefined): Record<string, string> =>
    (config?.["envoy.filters.http.ext_authz"]?.check_settings as { context_extensions?: Record<string, string> } | undefined)
      ?.context_extensions ?? {};
  return { ...of(vhost.typed_per_filter_config), ...of(route.typed_per_filter_config) };
}

/** Every destination the example policies name. */
function policyDestinations(): Set<string> {
  const names = new Set<string>();
  for (const file of filesUnder("examples/policies").filter((f) => f.endsWith(".yaml"))) {
    for (const doc of readYamlDocuments(file)) {
      for (const d of (doc as { spec?: { destinations?: string[] } }).spec?.destinations ?? []) names.add(d);
    }
  }
  return names;
}

function clusterEndpoints(cluster: Cluster): Address[] {
  return cluster.load_assignment.endpoints.flatMap((e) => e.lb_endpoints.map((l) => l.endpoint.address));
}

describe.each(["envoy/envoy.yaml", "envoy/envoy-mcp.yaml"])("%s", (file) => {
  let bootstrap: Bootstrap;
  beforeAll(() => {
    bootstrap = loadBootstrap(file);
  });

  it("decodes as envoy.config.bootstrap.v3.Bootstrap with every typed_config resolved", () => {
    const types = new Set<string>();
    const collect = (value: unknown): void => {
      if (Array.isArray(value)) value.forEach(collect);
      else if (typeof value === "object" && value !== null) {
        const record = value as Record<string, unknown>;
        if (typeof record["@type"] === "string") types.add(record["@type"]);
        Object.values(record).forEach(collect);
      }
    };
    collect(bootstrap);
    expect([...types].sort()).toEqual(expect.arrayContaining([HCM_TYPE, EXT_AUTHZ_TYPE, PER_ROUTE_TYPE, TLS_TYPE]));
  });

  it("asks Vigil over gRPC, API v3, and fails closed with 403", () => {
    const authz = extAuthzOf(bootstrap);
    expect(authz.transport_api_version).toBe("V3");
    expect(authz.failure_mode_allow).toBe(false);
    expect(authz.status_on_error).toEqual({ code: "Forbidden" });
    expect(authz.include_peer_certificate).toBe(true);
    expect(authz.http_service).toBeUndefined();
  });

  it("gives Vigil a deadline below Envoy's 200 ms default", () => {
    const grpc = extAuthzOf(bootstrap).grpc_service as { timeout?: unknown };
    const ms = durationMs(grpc.timeout);
    expect(ms).toBeGreaterThan(0);
    expect(ms).toBeLessThan(ENVOY_DEFAULT_TIMEOUT_MS);
  });

  it("reaches Vigil on the Unix socket DEFAULT_GRPC_SOCKET (not loopback TCP) over HTTP/2", () => {
    const grpc = extAuthzOf(bootstrap).grpc_service as { envoy_grpc: { cluster_name: string } };
    const cluster = bootstrap.static_resources.clusters.find((c) => c.name === grpc.envoy_grpc.cluster_name);
    expect(cluster).toBeDefined();
    // Exactly the pipe: a socket_address beside it would let any process in the pod call Check.
    expect(clusterEndpoints(cluster!)).toEqual([{ pipe: { path: DEFAULT_GRPC_SOCKET } }]);
    const options = cluster!.typed_extension_protocol_options?.[H2_OPTIONS_KEY];
    expect(options?.["@type"]).toBe(`type.googleapis.com/${H2_OPTIONS_KEY}`);
    expect(options?.explicit_http_config).toHaveProperty("http2_protocol_options");
  });

  it("runs ext_authz before the router", () => {
    const names = hcmOf(inbound(bootstrap)).http_filters.map((f) => f.name);
    expect(names.indexOf("envoy.filters.http.ext_authz")).toBeGreaterThanOrEqual(0);
    expect(names.at(-1)).toBe("envoy.filters.http.router");
  });

  it("terminates mTLS, requires a client certificate and accepts only SPIFFE IDs of the trust domain", () => {
    const socket = inbound(bootstrap).filter_chains[0]?.transport_socket;
    expect(socket?.typed_config["@type"]).toBe(TLS_TYPE);
    const tls = socket!.typed_config as unknown as {
      require_client_certificate?: boolean;
      common_tls_context: {
        tls_certificates: unknown[];
        validation_context: {
          trusted_ca: { filename: string };
          match_typed_subject_alt_names: { san_type: string; matcher: { prefix?: string } }[];
        };
      };
    };
    expect(tls.require_client_certificate).toBe(true);
    expect(tls.common_tls_context.tls_certificates).toHaveLength(1);
    const validation = tls.common_tls_context.validation_context;
    expect(validation.trusted_ca.filename).toMatch(/\S/);
    expect(validation.match_typed_subject_alt_names).toHaveLength(1);
    const [san] = validation.match_typed_subject_alt_names;
    expect(san?.san_type).toBe("URI");
    expect(san?.matcher.prefix).toMatch(/^spiffe:\/\/[a-z0-9.\-_]+\/$/);
  });

  it("replaces any client-sent XFCC with one element for the verified peer (SANITIZE_SET, URI)", () => {
    const hcm = hcmOf(inbound(bootstrap));
    expect(hcm.forward_client_cert_details).toBe("SANITIZE_SET");
    expect(hcm.set_current_client_cert_details).toEqual({ uri: true });
  });

  it("labels routes with context_extensions for Vigil's policies", () => {
    const routes = hcmOf(inbound(bootstrap)).route_config.virtual_hosts.flatMap((v) => v.routes);
    const labelled = routes
      .map((r) => r.typed_per_filter_config?.["envoy.filters.http.ext_authz"])
      .filter((c): c is TypedConfig => c !== undefined);
    expect(labelled.length).toBeGreaterThan(0);
    for (const config of labelled) {
      expect(config["@type"]).toBe(PER_ROUTE_TYPE);
      const settings = config.check_settings as { context_extensions: Record<string, string> };
      expect(settings.context_extensions.action).toMatch(/\S/);
    }
  });

  it("names the sidecar's workload as context extension `destination` on every route that reaches the app", () => {
    const workload = bootstrap.node.cluster;
    expect(policyDestinations()).toContain(workload);
    const vhosts = hcmOf(inbound(bootstrap)).route_config.virtual_hosts;
    expect(vhosts.length).toBeGreaterThan(0);
    let checked = 0;
    for (const vhost of vhosts) {
      for (const route of vhost.routes) {
        if (route.direct_response !== undefined) continue;
        // Set once, on the virtual host: a route that set its own would override it (more specific wins).
        const own = route.typed_per_filter_config?.["envoy.filters.http.ext_authz"]?.check_settings as
          { context_extensions?: Record<string, string> } | undefined;
        expect(own?.context_extensions?.destination, `route ${route.name ?? "?"}`).toBeUndefined();
        expect(contextExtensionsOf(vhost, route).destination, `route ${route.name ?? "?"}`).toBe(workload);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(0);
  });

  it("normalises paths and refuses escaped slashes before Vigil sees them", () => {
    const hcm = hcmOf(inbound(bootstrap));
    expect(hcm.normalize_path).toBe(true);
    expect(hcm.merge_slashes).toBe(true);
    expect(hcm.path_with_escaped_slashes_action).toBe("REJECT_REQUEST");
  });

  it("writes the decision id from ext_authz dynamic metadata into the access log", () => {
    const logs = hcmOf(inbound(bootstrap)).access_log ?? [];
    expect(JSON.stringify(logs)).toContain("%DYNAMIC_METADATA(envoy.filters.http.ext_authz:decision_id)%");
  });

  it("keeps the admin interface on loopback", () => {
    expect(bootstrap.admin.address.socket_address?.address).toBe("127.0.0.1");
  });

  it("sends the application traffic only to a loopback app", () => {
    const app = bootstrap.static_resources.clusters.find((c) => c.name === "local_app");
    expect(app).toBeDefined();
    const endpoints = clusterEndpoints(app!);
    expect(endpoints.length).toBeGreaterThan(0);
    for (const endpoint of endpoints) expect(endpoint.socket_address?.address).toBe("127.0.0.1");
  });
});

describe("envoy/envoy.yaml routes", () => {
  it("labels deploys with action deploy and env prod or staging", () => {
    const bootstrap = loadBootstrap("envoy/envoy.yaml");
    const vhosts = hcmOf(inbound(bootstrap)).route_config.virtual_hosts;
    const contexts = vhosts.flatMap((v) => v.routes.map((r) => contextExtensionsOf(v, r)));
    expect(contexts).toContainEqual({ destination: "deploy-api", action: "deploy", env: "prod" });
    expect(contexts).toContainEqual({ destination: "deploy-api", action: "deploy", env: "staging" });
  });

  it("does not send the request body (headers-only checks)", () => {
    expect(extAuthzOf(loadBootstrap("envoy/envoy.yaml")).with_request_body).toBeUndefined();
  });
});

describe("envoy/envoy-mcp.yaml", () => {
  it("sends whole JSON-RPC bodies up to 64 KiB and refuses larger ones", () => {
    const authz = extAuthzOf(loadBootstrap("envoy/envoy-mcp.yaml"));
    expect(authz.with_request_body).toEqual({ max_request_bytes: 65536, allow_partial_message: false });
  });
});

describe("the strict decoder", () => {
  const original = readRepoFile("envoy/envoy.yaml");

  function issuesAfter(find: string | RegExp, replace: string): string[] {
    const changed = original.replace(find, replace);
    expect(changed).not.toBe(original);
    return decodeFile(changed, "mutated envoy.yaml").issues.map((i) => `${i.path}: ${i.message}`);
  }

  it("refuses a misspelled field inside a typed_config", () => {
    const issues = issuesAfter("failure_mode_allow: false", "failure_mode_alow: false");
    expect(issues).toEqual([expect.stringMatching(/failure_mode_alow: unknown field "failure_mode_alow" in envoy\.extensions\.filters\.http\.ext_authz\.v3\.ExtAuthz/)]);
  });

  it("refuses a misspelled field in the bootstrap itself", () => {
    expect(issuesAfter("static_resources:", "static_resource:")).toContainEqual(expect.stringContaining("unknown field \"static_resource\""));
  });

  it("refuses an enum name Envoy does not define", () => {
    expect(issuesAfter("forward_client_cert_details: SANITIZE_SET", "forward_client_cert_details: SANITISE_SET"))
      .toContainEqual(expect.stringContaining("\"SANITISE_SET\" is not a value of"));
  });

  it("refuses a typed_config whose type is not loaded", () => {
    expect(issuesAfter("envoy.extensions.filters.http.router.v3.Router", "envoy.extensions.filters.http.routr.v3.Router"))
      .toContainEqual(expect.stringContaining("names no loaded message type"));
  });

  it("refuses a duration that is not proto3 JSON", () => {
    expect(issuesAfter("timeout: 0.05s", "timeout: 50ms")).toContainEqual(expect.stringContaining("expected a duration"));
  });

  it("refuses a wrapper type given as an object instead of its plain value", () => {
    expect(issuesAfter("port_value: 8080", "port_value: { value: 8080 }")).toContainEqual(expect.stringContaining("expected an integer"));
  });

  it("refuses a misspelled field of the Pipe address Vigil is reached on", () => {
    expect(issuesAfter("pipe: { path: ", "pipe: { paht: ")).toContainEqual(expect.stringContaining("unknown field \"paht\" in envoy.config.core.v3.Pipe"));
  });

  it("refuses two members of one oneof", () => {
    expect(issuesAfter("route: { cluster: local_app }\n                typed_per_filter_config:",
      "route: { cluster: local_app }\n                redirect: { path_redirect: /x }\n                typed_per_filter_config:"))
      .toContainEqual(expect.stringContaining("oneof action has several members set"));
  });

  it("refuses deprecated fields", () => {
    expect(issuesAfter("match_typed_subject_alt_names:\n              - san_type: URI\n                matcher:",
      "match_subject_alt_names:\n              - "))
      .toContainEqual(expect.stringContaining("match_subject_alt_names is deprecated"));
  });

  it("refuses a missing required field", () => {
    expect(issuesAfter("cluster_name: vigil_authz\n      endpoints:", "endpoints:"))
      .toContainEqual(expect.stringContaining("cluster_name"));
  });

  it("accepts camelCase field names, as Envoy does", () => {
    const camel = original.replace("failure_mode_allow: false", "failureModeAllow: false").replace("include_peer_certificate: true", "includePeerCertificate: true");
    expect(decodeFile(camel, "camel").issues).toEqual([]);
  });
});
