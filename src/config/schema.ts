// One schema for every setting Vigil has. Flags and environment variables map onto it in
// config/load.ts; everything below config/ receives the parsed, typed object.

import { z } from "zod";
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
});

export const storeSchema = z.strictObject({
  /** Embedded journal file; "" keeps signals in memory only (tests, `vigil check`). */
  journalPath: z.string().default(".vigil/journal.jsonl"),
  /** NATS URL for cluster mode, e.g. nats://127.0.0.1:4222; "" = embedded. */
  bus: z.string().default(""),
  bucketPrefix: z.string().regex(/^[A-Za-z0-9_-]+$/).default("vigil"),
  replicas: z.number().int().min(1).max(5).default(1),
  /** Past this long without hearing from the bus, signals are stale. */
  freshnessBoundMs: z.number().int().positive().default(5_000),
  /** Journal compaction threshold: rewrite when the file holds this many superseded records. */
  compactAfterRecords: z.number().int().positive().default(10_000),
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

export const configSchema = z.strictObject({
  grpc: z.strictObject({
    host: z.string().default(DEFAULT_GRPC_HOST),
    port: port.default(DEFAULT_GRPC_PORT),
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
    /** Bearer tokens allowed to write on the admin API. Never logged. */
    adminTokens: z.array(z.string().min(16)).default([]),
  }).prefault({}),
  policyDir: z.string().default("examples/policies"),
  /** Signals loaded at start (YAML or JSON list); "" = none. */
  signalsFile: z.string().default(""),
  identity: identitySchema.prefault({}),
  store: storeSchema.prefault({}),
  ssf: ssfSchema.prefault({}),
  /** Outbound revocation hook (POST JSON) fired when Vigil revokes; "" = none. */
  revocationHookUrl: z.string().default(""),
  logLevel: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
});

export type Config = z.infer<typeof configSchema>;
export type IdentityConfig = z.infer<typeof identitySchema>;
export type StoreConfig = z.infer<typeof storeSchema>;
export type SsfConfig = z.infer<typeof ssfSchema>;

/** Parses a partial settings object into a complete Config, or throws a VigilError naming the path. */
export function parseConfig(input: unknown): Config {
  return configSchema.parse(input);
}
