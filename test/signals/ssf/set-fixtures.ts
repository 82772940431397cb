// Shared by the SSF receiver tests: transmitter key pairs, a JWK Set file, SET signing, an
// in-test signal store (stand-in for the real stores, which have their own contract suite),
// and a receiver wired to a fixed clock.

import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { CompactSign, exportJWK, generateKeyPair, type CryptoKey, type JWK } from "jose";
import { pino, type Logger } from "pino";
import { ssfSchema, type SsfConfig } from "../../../src/config/schema.js";
import { VigilError } from "../../../src/errors/index.js";
import { signalSchema, type Signal, type SignalInput } from "../../../src/signals/model.js";
import type { PutResult, SignalStore } from "../../../src/signals/store.js";
import { createSsfReceiver, type SsfReceiver, type SsfReceiverOptions, type SsfResponse } from "../../../src/signals/ssf/index.js";
import { createMetrics, type Metrics } from "../../../src/telemetry/metrics.js";

export const ISSUER = "https://transmitter.example.com/";
export const AUDIENCE = "https://vigil.example.com/ssf";
export const WORKLOAD = "spiffe://prod.example.com/ns/payments/sa/api";
export const FINGERPRINT = `sha256:${"ab12".repeat(16)}`;
export const PUSH_TOKEN = "push-token-0123456789abcdef";
/** 2026-01-15T12:00:00Z: every test runs on this clock unless it moves it. */
export const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
export const NOW_S = NOW / 1000;

export interface Transmitter {
  kid: string;
  alg: "RS256" | "ES256";
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function makeTransmitter(alg: "RS256" | "ES256", kid: string): Promise<Transmitter> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, alg, privateKey, publicJwk };
}

export async function writeJwksFile(transmitters: readonly Transmitter[]): Promise<{ path: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "vigil-ssf-"));
  const path = join(dir, "jwks.json");
  await writeFile(path, JSON.stringify({ keys: transmitters.map((t) => t.publicJwk) }));
  return { path, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A SET's claims with sensible defaults: one event, a SPIFFE subject, iat = NOW. */
export function setClaims(event: string, payload: Record<string, unknown>, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: ISSUER,
    aud: AUDIENCE,
    iat: NOW_S,
    jti: randomUUID(),
    sub_id: { format: "uri", uri: WORKLOAD },
    events: { [event]: payload },
    ...overrides,
  };
}

export async function signSet(
  claims: Record<string, unknown>,
  signer: Transmitter,
  header: Record<string, unknown> = {},
): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: "secevent+jwt", ...header })
    .sign(signer.privateKey);
}

/** The signal store as the receiver sees it: validates, dedupes on id, can be made to fail. */
export class InTestStore implements Pick<SignalStore, "put"> {
  readonly written: Signal[] = [];
  private readonly ids = new Map<string, Signal>();
  failWith: VigilError | undefined;

  put(input: SignalInput): Promise<PutResult> {
    if (this.failWith !== undefined) return Promise.reject(this.failWith);
    const parsed = signalSchema.safeParse(input);
    if (!parsed.success) return Promise.reject(new VigilError("invalid_input", parsed.error.message));
    const seen = this.ids.get(parsed.data.id);
    if (seen !== undefined) return Promise.resolve({ status: "duplicate", signal: seen });
    this.ids.set(parsed.data.id, parsed.data);
    this.written.push(parsed.data);
    return Promise.resolve({ status: "written", signal: parsed.data });
  }
}

export interface Harness {
  receiver: SsfReceiver;
  store: InTestStore;
  metrics: Metrics;
  logs: string[];
  clock: { now: number };
  post(token: string | Buffer, headers?: Record<string, string | undefined>): Promise<SsfResponse>;
  count(result: string, event: string): Promise<number>;
  /** Sum over every event label of one result. */
  total(result: string): Promise<number>;
}

export function capturingLogger(lines: string[]): Logger {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString("utf8"));
      done();
    },
  });
  return pino({ level: "debug" }, sink);
}

export function makeConfig(overrides: Partial<SsfConfig>): SsfConfig {
  return ssfSchema.parse({ issuer: ISSUER, audience: [AUDIENCE], ...overrides });
}

export function makeHarness(
  config: Partial<SsfConfig>,
  extra: Partial<Pick<SsfReceiverOptions, "fetchJwks">> & { store?: InTestStore } = {},
): Harness {
  const store = extra.store ?? new InTestStore();
  const metrics = createMetrics({ defaultMetrics: false });
  const logs: string[] = [];
  const clock = { now: NOW };
  const receiver = createSsfReceiver({
    config: makeConfig(config),
    store,
    logger: capturingLogger(logs),
    metrics,
    now: () => clock.now,
    ...extra,
  });
  return {
    receiver, store, metrics, logs, clock,
    post(token, headers = {}) {
      return receiver.handle({
        method: "POST",
        headers: { "content-type": "application/secevent+jwt", accept: "application/json", ...headers },
        body: typeof token === "string" ? Buffer.from(token) : token,
      });
    },
    async count(result, event) {
      const values = (await metrics.ssfEvents.get()).values;
      return values.find((v) => v.labels.result === result && v.labels.event === event)?.value ?? 0;
    },
    async total(result) {
      const values = (await metrics.ssfEvents.get()).values;
      return values.filter((v) => v.labels.result === result).reduce((sum, v) => sum + v.value, 0);
    },
  };
}

/** The parsed error body of a refusal. */
export function errOf(response: SsfResponse): { err?: string; description?: string } {
  return JSON.parse(response.body) as { err?: string; description?: string };
}
