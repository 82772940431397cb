// What every user of a NATS KV bucket shares (the signal store, the approval ledger): the
// connection as a sidecar opens it (never gives up, notices a dead link, secrets from files),
// JetStream's compare-and-set conflict, a timeout that turns a hang into "unavailable", and the
// digest that names a key in logs without quoting it.

import { createHash } from "node:crypto";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import type { StoreConfig } from "../config/schema.js";
import { VigilError } from "../errors/index.js";
import { natsSecurityOptions } from "./nats-connect.js";

/** Connects to `store.bus` as a sidecar does: reconnecting forever, pinging about every freshness bound. */
export function connectBus(config: StoreConfig, name: string): Promise<NatsConnection> {
  const bound = config.freshnessBoundMs;
  return connect({
    // Credentials and TLS (nats-connect.ts): secrets from files, never in this config's logs.
    ...natsSecurityOptions(config),
    servers: config.bus.split(",").map((url) => url.trim()),
    name,
    // A sidecar never gives up on the bus: while it is away, freshness says so.
    maxReconnectAttempts: -1,
    reconnectTimeWait: Math.min(2_000, Math.max(100, Math.floor(bound / 4))),
    // Notice a silently dead link (no TCP reset) within about two bounds.
    pingInterval: Math.max(1_000, bound),
    maxPingOut: 2,
    timeout: 5_000,
  });
}

/** JetStream's answer when the expected last revision of a key is not the current one. */
export function isRevisionConflict(error: unknown): boolean {
  if (!(error instanceof Error) || !("code" in error)) return false;
  // 10071 StreamWrongLastSequence, 10164 StreamWrongLastSequenceUnknown.
  return error.code === 10071 || error.code === 10164;
}

/** Rejects with VigilError("unavailable") when `promise` takes longer than `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new VigilError("unavailable", `${what} timed out after ${String(ms)} ms`));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A short digest naming a key in logs: a signal key encodes its subject, which may be a secret. */
export function keyDigest(kvKey: string): string {
  return `sha256:${createHash("sha256").update(kvKey).digest("hex").slice(0, 16)}`;
}

/** Drains a connection (flushing what it still sends), or closes it when draining fails. */
export async function drainConnection(nc: NatsConnection | undefined): Promise<void> {
  if (nc === undefined || nc.isClosed()) return;
  await nc.drain().catch(async () => {
    await nc.close();
  });
}
