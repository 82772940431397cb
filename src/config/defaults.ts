// The single source of truth for ports, addresses and header names. envoy/ and deploy/ files
// are checked against these by tests, so change them here and there together.

export const DEFAULT_GRPC_HOST = "127.0.0.1";
export const DEFAULT_GRPC_PORT = 9191;
/**
 * Where the shipped Kubernetes manifest and Envoy files put the Check socket (grpc.socket), in a
 * volume only Envoy and Vigil mount. Vigil itself defaults to TCP (grpc.socket "").
 */
export const DEFAULT_GRPC_SOCKET = "/var/run/vigil/authz.sock";
export const DEFAULT_HTTP_HOST = "127.0.0.1";
export const DEFAULT_HTTP_PORT = 9192;

/** Headers Vigil sets for the upstream on allow (client-sent copies are replaced). */
export const HEADER_DECISION_ID = "x-vigil-decision-id";
export const HEADER_CALLER = "x-vigil-caller";
export const HEADER_CALLER_TRUST_DOMAIN = "x-vigil-trust-domain";
export const HEADER_CREDENTIAL_FINGERPRINT = "x-vigil-credential-fingerprint";
export const HEADER_STEP_UP = "x-vigil-step-up";
export const HEADER_APPROVAL_ID = "x-vigil-approval-id";
export const HEADER_XFCC = "x-forwarded-client-cert";

/** Every x-vigil-* header Vigil may emit upstream; anything else with the prefix is stripped. */
export const UPSTREAM_IDENTITY_HEADERS = [
  HEADER_DECISION_ID,
  HEADER_CALLER,
  HEADER_CALLER_TRUST_DOMAIN,
  HEADER_CREDENTIAL_FINGERPRINT,
] as const;

/** HTTP paths on the ops/admin port. */
export const PATH_METRICS = "/metrics";
export const PATH_HEALTHZ = "/healthz";
export const PATH_READYZ = "/readyz";
export const PATH_SSF_EVENTS = "/ssf/events";
export const PATH_SIGNALS = "/v1/signals";
export const PATH_APPROVALS = "/v1/approvals";
export const PATH_BEHAVIOR = "/v1/behavior";
/** The web console (transport/console), when console.enabled. */
export const PATH_CONSOLE = "/console";

/** Request header naming a release artifact digest; its `attestation` signal is shown to policies. */
export const HEADER_RELEASE_DIGEST = "x-release-digest";

/** The CAEP transmitter's public key set (JWKS) and SSF metadata, unauthenticated by design. */
export const PATH_JWKS = "/.well-known/jwks.json";
export const PATH_SSF_CONFIGURATION = "/.well-known/ssf-configuration";

/** AuthZEN 1.0 decision API (transport/authzen), on the HTTP port. */
export const PATH_AUTHZEN_EVALUATION = "/access/v1/evaluation";
export const PATH_AUTHZEN_EVALUATIONS = "/access/v1/evaluations";
export const PATH_AUTHZEN_METADATA = "/.well-known/authzen-configuration";
