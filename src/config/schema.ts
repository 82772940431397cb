// One schema for every setting Vigil has. Flags and environment variables map onto it in
// config/load.ts; everything below config/ receives the parsed, typed object.

import { z } from "zod";
import { adminTokenEntrySchema } from "./admin-tokens.js";
import {
  DEFAULT_GRPC_HOST, DEFAULT_GRPC_PORT, DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT,
} from "./defaults.js";

const port = z.number().int().min(0).max(65535);

export const identitySchema = z.strictObject({
  /**
   * How many trusted proxy hops write x-forwarded-client-cert. 0 (default) means the header is
   * never believed and is stripped before it reaches the upstream.
   */
  xfccTrustedHops: z.number().int().min(0).max(16).default(0),
  /** Request headers that carry a credential; each is fingerprinted, never kept. */
  credentialHeaders: z.array(z.string().regex(/^[a-z0-9-]+$/)).default(["authorization", "x-api-key"]),
  /** Trust domains whose SPIFFE IDs are accepted; empty = any syntactically valid one. */
  trustDomains: z.array(z.string()).default([]),
  /**
   * What an identity problem (invalid principal or certificate, foreign trust domain, forged XFCC,
   * empty, malformed or ambiguous credential) does. "deny" (default): the request is denied
   * whatever the policy says. "policy": policies see `source.problems` and decide.
   */
  onProblem: z.enum(["deny", "policy"]).default("deny"),
});

/** True when a bus URL list carries user info ("nats://user:pass@host"), which would end up in logs. */
function busUrlHasCredentials(bus: string): boolean {
  return bus.split(",").some((url) => /^[a-z]+:\/\/[^/]*@/i.test(url.trim()) || /^[^/]*@/.test(url.trim()));
}

/**
 * How Vigil authenticates to NATS: at most one of user + password, token, NKey seed or creds
 * file. Secrets come from files (a mounted Secret), never from flags or the URL, so they never
 * reach a process list or a log; the files are re-read on reconnect, so a rotated Secret works.
 */
export const busAuthSchema = z.strictObject({
  user: z.string().default(""),
  passwordFile: z.string().default(""),
  tokenFile: z.string().default(""),
  nkeySeedFile: z.string().default(""),
  credsFile: z.string().default(""),
}).superRefine((auth, ctx) => {
  if ((auth.user === "") !== (auth.passwordFile === "")) {
    ctx.addIssue({ code: "custom", path: [auth.user === "" ? "user" : "passwordFile"], message: "user and passwordFile go together" });
  }
  const methods = [auth.user !== "" || auth.passwordFile !== "", auth.tokenFile !== "", auth.nkeySeedFile !== "", auth.credsFile !== ""];
  if (methods.filter(Boolean).length > 1) {
    ctx.addIssue({ code: "custom", message: "choose one of user + passwordFile, tokenFile, nkeySeedFile or credsFile" });
  }
});

/** TLS to NATS: a CA to verify the server, and a client certificate + key when the server asks for one. */
export const busTlsSchema = z.strictObject({
  caFile: z.string().default(""),
  certFile: z.string().default(""),
  keyFile: z.string().default(""),
}).superRefine((tls, ctx) => {
  if ((tls.certFile === "") !== (tls.keyFile === "")) {
    ctx.addIssue({ code: "custom", path: [tls.certFile === "" ? "certFile" : "keyFile"], message: "certFile and keyFile go together" });
  }
});

export const storeSchema = z.strictObject({
  /** Embedded journal file; "" keeps signals in memory only (tests, `vigil check`). */
  journalPath: z.string().default(".vigil/journal.jsonl"),
  /** NATS URL for cluster mode, e.g. nats://127.0.0.1:4222; "" = embedded. */
  bus: z.string().refine((bus) => !busUrlHasCredentials(bus), {
    error: "must not carry credentials (they would be logged); use store.busAuth (--bus-user/--bus-password-file, --bus-token-file, …)",
  }).default(""),
  busAuth: busAuthSchema.prefault({}),
  busTls: busTlsSchema.prefault({}),
  bucketPrefix: z.string().regex(/^[A-Za-z0-9_-]+$/).default("vigil"),
  replicas: z.number().int().min(1).max(5).default(1),
  /** Past this long without hearing from the bus, signals are stale. */
  freshnessBoundMs: z.number().int().positive().default(5_000),
  /** Journal compaction threshold: rewrite when the file holds this many superseded records. */
  compactAfterRecords: z.number().int().positive().default(10_000),
  /**
   * How far a signal's observedAt may be ahead of this instance's clock, on a write or in a bus
   * value; further ahead is refused (it would win every latest-wins comparison until it came true).
   * The admin API also refuses a client-given observedAt further than this behind the clock.
   */
  maxClockSkewMs: z.number().int().nonnegative().max(24 * 3600 * 1000).default(5 * 60_000),
  /**
   * Start even though the journal has corrupt records: drop them (the damaged file is copied
   * beside it first) instead of refusing to start. For an operator who has looked at the damage.
   */
  journalRepair: z.boolean().default(false),
  /**
   * Most signal values held in memory. Past it a new address is refused ("unavailable", admin API
   * 503; a bus value is refused and counted) unless it is a revocation in force or a terminal
   * credential state, which are always taken: security state only moves towards refusal.
   */
  maxSignals: z.number().int().positive().default(1_000_000),
  /**
   * Cluster mode: longest a Check holding a just-in-time grant waits for the bus to decide its
   * use (a compare-and-set on the grant); past it the request is denied. Only grant holders wait.
   */
  grantTimeoutMs: z.number().int().positive().max(10_000).default(250),
  /** How often expired signals and spent grants are swept from memory and (cluster) the bucket. */
  sweepIntervalMs: z.number().int().positive().default(60_000),
  /** Most signal writes waiting on the embedded journal at once; more are refused ("unavailable"). */
  maxQueuedWrites: z.number().int().positive().default(1_000),
});

export const ssfSchema = z.strictObject({
  /** Expected `iss` of pushed SETs; empty disables the receiver (404). */
  issuer: z.string().default(""),
  /** Our audience value(s) in `aud`. */
  audience: z.array(z.string()).default(["vigil"]),
  jwksFile: z.string().default(""),
  jwksUrl: z.string().default(""),
  algorithms: z.array(z.string()).default(["RS256", "ES256", "PS256", "EdDSA"]),
  /** Bearer tokens the transmitter must present (RFC 8935 authorization_header); empty = none required. */
  pushTokens: z.array(z.string()).default([]),
  /** How long a seen jti is remembered to refuse replays. */
  replayWindowMs: z.number().int().positive().default(24 * 3600 * 1000),
});

/** A workload or host name as policies' `destinations` name it: lower-case DNS-style labels. */
const destinationName = z.string().regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/, {
  error: "must be a lower-case name such as deploy-api or payments.prod.svc.cluster.local",
});

/**
 * Where the destination a request is judged under comes from. Never from a client header unless
 * the operator says this Vigil sits behind a gateway (source: host), and then only for the hosts
 * listed. See README "Where the destination comes from".
 */
export const destinationSchema = z.strictObject({
  /**
   * "workload" (default): this sidecar's own workload. In order: the route's context extension
   * `destination` (set in the Envoy route, never by the client); else `name`; else `principals`
   * [destination.principal]; else the destination principal (the local SVID) as a full SPIFFE ID.
   * "host": a gateway fronting several hosts: the route's `destination` extension, else the
   * request's host (port, case and a trailing dot removed), which must be one of `hosts`.
   */
  source: z.enum(["workload", "host"]).default("workload"),
  /** This sidecar's own workload name (--destination NAME), e.g. deploy-api. */
  name: z.union([z.literal(""), destinationName]).default(""),
  /** Workload names by the sidecar's own SPIFFE ID, for one settings file shared by many pods. */
  principals: z.record(z.string().startsWith("spiffe://"), destinationName).default({}),
  /** With source: host, the only hosts requests may name (exact, lower-case, no port). */
  hosts: z.array(destinationName).default([]),
}).superRefine((d, ctx) => {
  if (d.source === "host" && d.hosts.length === 0) {
    ctx.addIssue({ code: "custom", path: ["hosts"], message: "source: host needs the list of hosts this gateway fronts" });
  }
  if (d.source === "workload" && d.hosts.length > 0) {
    ctx.addIssue({ code: "custom", path: ["hosts"], message: "hosts apply only with source: host" });
  }
});

export const approvalsSchema = z.strictObject({
  /** How long a step-up approval request waits for a human. */
  pendingTtlMs: z.number().int().positive().default(3_600_000),
  /** Pending approval requests held in total; past it, step-ups get no new approval id. */
  maxPending: z.number().int().positive().max(1_000_000).default(10_000),
  /** Pending approval requests one caller may hold, so one caller cannot starve the others. */
  maxPendingPerCaller: z.number().int().positive().max(10_000).default(16),
  /** Approved, denied and expired requests kept for the admin API (oldest forgotten first). */
  maxSettled: z.number().int().positive().max(1_000_000).default(10_000),
  /** How often pending requests past their TTL are settled as expired and old settled ones forgotten. */
  sweepIntervalMs: z.number().int().positive().default(30_000),
});

/** A receiver's name in settings, logs and notice ids (never a label value: see metrics). */
const receiverName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, { error: "must be 1-64 of a-z, 0-9, _ and -, starting with a letter or digit" });

/** Where notices go: http(s) URLs only, without user info (it would end up in logs). */
const receiverUrl = z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" })
  .refine((u) => new URL(u).username === "" && new URL(u).password === "", { error: "must not carry credentials; use the authorization or secret file" });

function uniqueNames(list: readonly { name: string }[], ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  for (const [i, r] of list.entries()) {
    if (seen.has(r.name)) ctx.addIssue({ code: "custom", path: [i, "name"], message: `receiver name ${r.name} is used twice` });
    seen.add(r.name);
  }
}

/** The durable outbox behind the revocation hook, the CAEP transmitter and the approval webhooks. */
export const outboxSchema = z.strictObject({
  /** The embedded outbox file; "" = outbox.jsonl beside the signal journal (memory-only journal: none). */
  path: z.string().default(""),
  /** Delay before each retry in ms (the last repeats), jittered ±20 %. */
  retryDelaysMs: z.array(z.number().int().positive().max(3_600_000)).min(1).default([1_000, 5_000, 30_000, 120_000, 600_000]),
  /** Attempts per notice before it is dropped (logged, vigil_outbox_dropped_total). */
  maxAttempts: z.number().int().min(1).max(10_000).default(30),
  /** One attempt's deadline (connect, send, answer). */
  timeoutMs: z.number().int().positive().max(60_000).default(5_000),
  /** Notices in flight at once per instance. */
  concurrency: z.number().int().min(1).max(256).default(8),
  /** Undelivered notices kept (per file, or in the cluster's stream); past it new ones are refused. */
  maxPending: z.number().int().positive().max(10_000_000).default(100_000),
});

export const caepReceiverSchema = z.strictObject({
  name: receiverName,
  /** The receiver's RFC 8935 push endpoint. */
  url: receiverUrl,
  /** `aud` of the SETs it gets (its own identifier). */
  audience: z.string().min(1),
  /** File holding the Authorization header value it wants (SSF authorization_header); "" = none. */
  authorizationFile: z.string().default(""),
});

/** Vigil as a CAEP transmitter (notify/transmitter.ts); off while issuer is "". */
export const transmitterSchema = z.strictObject({
  /** `iss` of the SETs and the base of jwks_uri: the URL receivers reach this Vigil's ops port at. */
  issuer: z.string().default(""),
  /** Private signing key: PKCS#8 PEM or a private JWK (RSA 2048+, EC P-256/P-384, Ed25519). Shared by every replica. */
  signingKeyFile: z.string().default(""),
  receivers: z.array(caepReceiverSchema).default([]).superRefine(uniqueNames),
}).superRefine((t, ctx) => {
  if (t.issuer !== "") {
    if (!/^https?:\/\/[^?#]+$/.test(t.issuer)) ctx.addIssue({ code: "custom", path: ["issuer"], message: "must be an http(s) URL without query or fragment" });
    if (t.signingKeyFile === "") ctx.addIssue({ code: "custom", path: ["signingKeyFile"], message: "a transmitter needs a signing key file" });
  } else if (t.receivers.length > 0) {
    ctx.addIssue({ code: "custom", path: ["issuer"], message: "CAEP receivers need the transmitter's issuer" });
  }
});

export const approvalWebhookSchema = z.strictObject({
  name: receiverName,
  url: receiverUrl,
  /** File holding the HMAC secret (Standard Webhooks "whsec_…" or raw text, 16+ bytes). */
  secretFile: z.string().min(1),
});

/**
 * The AuthZEN 1.0 decision API on the HTTP port (transport/authzen): POST /access/v1/evaluation,
 * /access/v1/evaluations and GET /.well-known/authzen-configuration. PEPs authenticate with an
 * admin token holding the scope authzen:evaluate.
 */
export const authzenSchema = z.strictObject({
  /** Serve the AuthZEN endpoints (answers 404 when off). */
  enabled: z.boolean().default(true),
  /** The destination (policies' `destinations`) every evaluation is judged under; the PEP cannot pick it. */
  destination: destinationName.default("authzen"),
  /** The PDP's base URL as PEPs reach it, for the metadata document; "" = http://HOST:PORT of the HTTP port. */
  baseUrl: z.union([z.literal(""), z.url({ protocol: /^https?$/ })]).default(""),
  /** Largest request body, in bytes (413 beyond). */
  maxBodyBytes: z.number().int().positive().max(16 * 1024 * 1024).default(256 * 1024),
  /** Deepest JSON nesting accepted (400 beyond). */
  maxDepth: z.number().int().min(4).max(256).default(32),
  /** Most items in one evaluations request (400 beyond). */
  maxEvaluations: z.number().int().positive().max(10_000).default(256),
});

/**
 * Behaviour baselines (src/behavior/): what each calling identity normally does at this sidecar,
 * learned from the traffic it decides, and the anomalies that become `behavior` signals.
 */
export const behaviorSchema = z.strictObject({
  /** Learn baselines and report anomalies; false turns the whole feature off. */
  enabled: z.boolean().default(true),
  /**
   * How long a caller is learned from its first request at this sidecar before its baseline is
   * enforced. Everything it does meanwhile becomes normal (SECURITY.md T16a), so keep it as long
   * as the caller's usual cycle (a weekly batch needs a week).
   */
  learningPeriodMs: z.number().int().nonnegative().max(365 * 24 * 3600 * 1000).default(7 * 24 * 3600 * 1000),
  /** The rate and fan-out window: requests per window feed the EWMA, destinations are counted per window. */
  windowMs: z.number().int().min(1_000).max(24 * 3600 * 1000).default(60_000),
  /** EWMA weight of the window that just closed (0 < alpha ≤ 1). */
  ewmaAlpha: z.number().gt(0).max(1).default(0.2),
  /** Burst allowance: a window with more than this × the EWMA rate is a spike … */
  rateBurst: z.number().min(1).max(1_000).default(4),
  /** … and with at least this many requests (a caller at 1 per window doing 5 is no spike). */
  rateMinimum: z.number().int().positive().default(120),
  /**
   * A fan-out: more distinct destinations in one window than the most seen in any window while
   * learning plus this many (mesh-wide in cluster mode: every sidecar shares what it saw).
   */
  fanoutAllowance: z.number().int().nonnegative().max(1_000).default(2),
  /** How long a reported anomaly stays in the caller's `behavior` signal. */
  signalTtlMs: z.number().int().min(1_000).max(30 * 24 * 3600 * 1000).default(3_600_000),
  /** Callers held in total; past it the least recently seen one is forgotten (and learns anew). */
  maxCallers: z.number().int().positive().max(10_000_000).default(50_000),
  /** Actions a baseline holds; what a learning caller does beyond it is not learned (then reported). */
  maxActionsPerCaller: z.number().int().positive().max(100_000).default(256),
  /** Source networks a baseline holds. */
  maxNetworksPerCaller: z.number().int().positive().max(10_000).default(32),
  /** Source networks are learned at these prefix lengths. */
  ipv4Prefix: z.number().int().min(0).max(32).default(24),
  ipv6Prefix: z.number().int().min(0).max(128).default(64),
  /** Callers never learned nor reported: SPIFFE IDs, or patterns "spiffe://td/ns/x/**" and "…/sa/*". */
  excludeCallers: z.array(z.string().startsWith("spiffe://")).default([]),
  /**
   * Rules whose decisions are neither learned nor reported ("policy/rule", e.g. a health check
   * every caller makes). Judged on the rule that decides before any behaviour anomaly is shown.
   */
  excludeRules: z.array(z.string().regex(/^[^/\s]+\/[^/\s]+$/, { error: "must be policy/rule" })).default([]),
  /** Where baselines are kept across restarts; "" = behavior.json beside store.journalPath (memory only when that is ""). */
  statePath: z.string().default(""),
  /** How often changed baselines are written to statePath (and always at shutdown). */
  persistIntervalMs: z.number().int().min(100).default(30_000),
  /** Requests observed and not yet folded into baselines; past it observations are dropped (and counted). */
  maxQueued: z.number().int().min(16).max(1_048_576).default(65_536),
});

/**
 * MCP (JSON-RPC 2.0 over streamable HTTP) behind Envoy with with_request_body. A route is an MCP
 * route when its context extension `protocol` is `mcp`, or its path is one of `paths`; there a
 * body that is not JSON-RPC 2.0 (or is larger than maxBodyBytes) is denied. On every route a
 * JSON-RPC batch is judged call by call, and one of more than maxBatch calls is denied.
 */
export const mcpSchema = z.strictObject({
  /** Exact paths (without query) of MCP endpoints, e.g. /mcp. */
  paths: z.array(z.string().startsWith("/")).default([]),
  /** Most calls in one JSON-RPC batch; a larger batch is denied. */
  maxBatch: z.number().int().positive().max(1000).default(32),
  /** Largest body judged on an MCP route, in bytes (keep Envoy's with_request_body.max_request_bytes at or below it). */
  maxBodyBytes: z.number().int().positive().max(16 * 1024 * 1024).default(256 * 1024),
});

/** The web console (transport/console/): off unless enabled; served under /console on the HTTP port. */
export const consoleSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** A session ends after this long without a request. */
  idleTimeoutSeconds: z.number().int().min(60).max(86_400).default(900),
  /** A session ends this long after sign-in, however active. */
  maxSessionSeconds: z.number().int().min(300).max(7 * 86_400).default(8 * 3600),
  /**
   * File holding the key that signs session cookies (at least 32 bytes; a mounted Secret). Give
   * every replica the same file so a session works on any of them; "" = a random key per process
   * (sessions end at restart and work only on the replica that issued them).
   */
  sessionKeyFile: z.string().default(""),
  /** Mark the cookie Secure: "auto" when the request came over TLS or x-forwarded-proto https. */
  secureCookie: z.union([z.boolean(), z.literal("auto")]).default("auto"),
  /** Failed sign-ins one client address may make per minute before it must wait. */
  maxFailedSignInsPerMinute: z.number().int().min(1).max(1000).default(10),
});

export const configSchema = z.strictObject({
  grpc: z.strictObject({
    host: z.string().default(DEFAULT_GRPC_HOST),
    port: port.default(DEFAULT_GRPC_PORT),
    /**
     * Serve Check and grpc.health.v1 on this Unix domain socket instead of host:port; "" = TCP.
     * In a pod, put it in a volume only Envoy and Vigil mount (DEFAULT_GRPC_SOCKET in the shipped
     * manifest): loopback TCP is reachable from every container, the app's included.
     */
    socket: z.string().default(""),
    /** Headers beyond this many bytes in total make the request a deny (431 semantics). */
    maxHeaderBytes: z.number().int().positive().default(64 * 1024),
    /**
     * Largest CheckRequest message accepted, in bytes. A larger one is answered with a 413 denial
     * as soon as its length prefix arrives, before its bytes are buffered. Keep it above what
     * Envoy can send: max_request_headers_kb plus with_request_body.max_request_bytes plus a few
     * KiB for the peer certificate and framing. Capped at 64 MiB: each Check in flight may hold
     * this much memory.
     */
    maxRequestBytes: z.number().int().positive().max(64 * 1024 * 1024).default(1024 * 1024),
  }).prefault({}),
  http: z.strictObject({
    host: z.string().default(DEFAULT_HTTP_HOST),
    port: port.default(DEFAULT_HTTP_PORT),
    /**
     * Who may call the admin API and with which scopes (config/admin-tokens.ts): objects, or lines
     * `TOKEN NAME [SCOPES]` as in the tokens file. Never logged.
     */
    adminTokens: z.array(adminTokenEntrySchema).default([]),
  }).prefault({}),
  policyDir: z.string().default("examples/policies"),
  /** Signals loaded at start (YAML or JSON list); "" = none. */
  signalsFile: z.string().default(""),
  identity: identitySchema.prefault({}),
  destination: destinationSchema.prefault({}),
  store: storeSchema.prefault({}),
  ssf: ssfSchema.prefault({}),
  approvals: approvalsSchema.prefault({}),
  behavior: behaviorSchema.prefault({}),
  console: consoleSchema.prefault({}),
  /**
   * Sidecar-wide dry run for a first rollout: every judged request is allowed, nothing is revoked
   * and no approval opened; each decision line says what would have happened. Never in production
   * for long: it opens every route Vigil guards (vigil_dry_run = 1, alert VigilDryRunOn).
   */
  dryRun: z.boolean().default(false),
  /** Outbound revocation hook (POST JSON) when Vigil revokes, sent from the outbox; "" = none. */
  revocationHookUrl: z.union([z.literal(""), receiverUrl]).default(""),
  outbox: outboxSchema.prefault({}),
  transmitter: transmitterSchema.prefault({}),
  /** Webhooks told when an approval opens or is decided (CloudEvents, HMAC-signed). */
  approvalWebhooks: z.array(approvalWebhookSchema).default([]).superRefine(uniqueNames),
  /** Base URL of the approvals console, for the console_url in approval notifications; "" = none. */
  consoleUrl: z.string().default(""),
  /**
   * Most revocations Vigil decided and the store has not acknowledged yet (each held locally).
   * When full, a new one cannot be queued: the sidecar then denies every request that carries an
   * identity or credential until restart ("revocation backlog full"), see decision/effects.ts.
   */
  maxPendingRevocations: z.number().int().positive().default(10_000),
  logLevel: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /**
   * On SIGTERM, how long Vigil keeps answering with health NOT_SERVING and /readyz 503 before it
   * stops listening, so Envoy and Kubernetes stop sending first; then Checks in flight finish.
   * Keep it below the pod's terminationGracePeriodSeconds (30 s by default).
   */
  shutdownDrainMs: z.number().int().nonnegative().max(300_000).default(5_000),
  /** Subjects and resources that are not workloads (policy/entities.ts), hot-reloaded; "" = none. */
  entitiesFile: z.string().default(""),
  authzen: authzenSchema.prefault({}),
  mcp: mcpSchema.prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type IdentityConfig = z.infer<typeof identitySchema>;
export type StoreConfig = z.infer<typeof storeSchema>;
export type BusAuthConfig = z.infer<typeof busAuthSchema>;
export type BusTlsConfig = z.infer<typeof busTlsSchema>;
export type SsfConfig = z.infer<typeof ssfSchema>;
export type DestinationConfig = z.infer<typeof destinationSchema>;
export type ApprovalsConfig = z.infer<typeof approvalsSchema>;
export type OutboxConfig = z.infer<typeof outboxSchema>;
export type TransmitterConfig = z.infer<typeof transmitterSchema>;
export type ApprovalWebhookConfig = z.infer<typeof approvalWebhookSchema>;
export type AuthzenConfig = z.infer<typeof authzenSchema>;
export type McpConfig = z.infer<typeof mcpSchema>;

export type BehaviorConfig = z.infer<typeof behaviorSchema>;
export type ConsoleConfig = z.infer<typeof consoleSchema>;

/**
 * Parses a partial settings object into a complete Config (defaults filled in). Throws zod's
 * ZodError; loadConfig, which reads the operator's files and flags, turns that into a
 * VigilError("invalid_input") naming each path.
 */
export function parseConfig(input: unknown): Config {
  return configSchema.parse(input);
}
