// The cluster outbox: a JetStream stream `<prefix>_outbox` with work-queue retention and one
// durable pull consumer shared by every Vigil instance, so each notice is handed to exactly one
// instance at a time and leaves the stream when that instance acknowledges it. A notice is
// published with its id as the JetStream message id, so the same event queued twice for the
// same receiver (a retried publish, a second instance) is stored once (duplicate window).
// Retries are NAKs with a delay; a lease not settled within ackWaitMs (the instance died
// mid-send) is redelivered to another instance.
//
// A bus client that can publish on `<prefix>.outbox.*` could make Vigil sign and send what it
// likes, so every message carries an HMAC of the notice under a key only the replicas hold
// (derived from their signing secrets, see sealKey in notify); a message without a valid seal is
// dropped, logged without its content and counted. Grant the subject only to Vigil anyway.

import { createHmac, timingSafeEqual } from "node:crypto";
import {
  AckPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType,
  type Consumer, type JetStreamClient, type JetStreamManager, type JsMsg,
} from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { StoreConfig } from "../config/index.js";
import { VigilError } from "../errors/index.js";
import { natsSecurityOptions } from "../signals/nats-connect.js";
import { noticeSchema, type Backlog, type Lease, type Notice, type OutboxQueue } from "./notice.js";

export function outboxStreamName(prefix: string): string {
  return `${prefix}_outbox`;
}

export function outboxSubject(prefix: string, channel: string): string {
  return `${prefix}.outbox.${channel}`;
}

export interface JetStreamQueueOptions {
  store: Pick<StoreConfig, "bus" | "busAuth" | "busTls" | "bucketPrefix" | "replicas">;
  logger: Logger;
  /** Most notices in the stream; past it a publish is refused. */
  maxPending: number;
  /** How long an instance holds a notice before it is offered to another (longer than one attempt). */
  ackWaitMs: number;
  /** HMAC key sealing each message; empty = unsealed (no secret configured to derive one from). */
  seal: Buffer;
  /** Called for a message refused for its seal or shape (metrics). */
  onRefused?: (reason: "unsealed" | "malformed") => void;
  name?: string;
}

const NS_PER_MS = 1_000_000;

interface Envelope {
  notice: Notice;
  seal: string;
}

export class JetStreamQueue implements OutboxQueue {
  readonly kind = "jetstream";
  readonly stream: string;
  readonly consumerName: string;
  readonly #options: JetStreamQueueOptions;
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  #consumer: Consumer | undefined;

  constructor(options: JetStreamQueueOptions) {
    this.#options = options;
    this.stream = outboxStreamName(options.store.bucketPrefix);
    this.consumerName = `${this.stream}_sender`;
  }

  async open(): Promise<void> {
    const { store } = this.#options;
    const nc = await connect({
      ...natsSecurityOptions(store),
      servers: store.bus.split(",").map((url) => url.trim()),
      name: `${this.#options.name ?? "vigil"}-outbox`,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1_000,
      timeout: 5_000,
    });
    this.#nc = nc;
    const jsm = await jetstreamManager(nc);
    this.#jsm = jsm;
    const config = {
      name: this.stream,
      subjects: [outboxSubject(store.bucketPrefix, "*")],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      num_replicas: store.replicas,
      max_msgs: this.#options.maxPending,
      discard: DiscardPolicy.New,
      duplicate_window: 10 * 60_000 * NS_PER_MS,
      description: "Vigil outbox: revocation hook, CAEP SETs and approval webhooks waiting to be sent",
    };
    try {
      await jsm.streams.info(this.stream);
      await jsm.streams.update(this.stream, config);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await jsm.streams.add(config);
    }
    const consumer = {
      durable_name: this.consumerName,
      ack_policy: AckPolicy.Explicit,
      ack_wait: this.#options.ackWaitMs * NS_PER_MS,
      max_deliver: -1,
      max_ack_pending: 1_000,
    };
    try {
      await jsm.consumers.info(this.stream, this.consumerName);
      await jsm.consumers.update(this.stream, this.consumerName, consumer);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await jsm.consumers.add(this.stream, consumer);
    }
    this.#js = jetstream(nc);
    this.#consumer = await this.#js.consumers.get(this.stream, this.consumerName);
  }

  async add(notice: Notice): Promise<boolean> {
    const js = this.#js;
    if (js === undefined) throw new VigilError("unavailable", "the outbox stream is not open");
    const envelope: Envelope = { notice, seal: this.#seal(notice) };
    try {
      const ack = await js.publish(outboxSubject(this.#options.store.bucketPrefix, notice.channel), JSON.stringify(envelope), {
        msgID: notice.id, timeout: 5_000,
      });
      return !ack.duplicate;
    } catch (err) {
      throw new VigilError("unavailable", `the outbox stream ${this.stream} did not take a notice: ${VigilError.from(err).message}`, { cause: err });
    }
  }

  async claim(max: number, waitMs: number, signal: AbortSignal): Promise<Lease[]> {
    const consumer = this.#consumer;
    if (consumer === undefined || signal.aborted) return [];
    const messages = await consumer.fetch({ max_messages: max, expires: Math.max(1_000, waitMs) });
    const onAbort = (): void => {
      void messages.close();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    const leases: Lease[] = [];
    try {
      for await (const m of messages) {
        const lease = this.#lease(m);
        if (lease !== undefined) leases.push(lease);
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    return leases;
  }

  async backlog(): Promise<Backlog> {
    const jsm = this.#jsm;
    if (jsm === undefined) return { pending: 0, oldestAt: undefined };
    const info = await jsm.streams.info(this.stream);
    const pending = info.state.messages;
    const first = Date.parse(info.state.first_ts);
    return { pending, oldestAt: pending === 0 || Number.isNaN(first) ? undefined : first };
  }

  async close(): Promise<void> {
    await this.#nc?.drain().catch(() => undefined);
    this.#nc = undefined;
  }

  #seal(notice: Notice): string {
    if (this.#options.seal.length === 0) return "";
    return createHmac("sha256", this.#options.seal).update(JSON.stringify(notice)).digest("base64url");
  }

  #lease(m: JsMsg): Lease | undefined {
    let envelope: Envelope | undefined;
    try {
      const value = m.json<{ notice?: unknown; seal?: unknown }>();
      const notice = noticeSchema.safeParse(value.notice);
      if (notice.success && typeof value.seal === "string") envelope = { notice: notice.data, seal: value.seal };
    } catch {
      // Not JSON: malformed.
    }
    if (envelope === undefined) {
      this.#refuse(m, "malformed");
      return undefined;
    }
    const expected = Buffer.from(this.#seal(envelope.notice));
    const given = Buffer.from(envelope.seal);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
      this.#refuse(m, "unsealed");
      return undefined;
    }
    return {
      notice: envelope.notice,
      attempts: Math.max(0, m.info.deliveryCount - 1),
      ack: async () => {
        await m.ackAck();
      },
      drop: () => {
        m.term();
        return Promise.resolve();
      },
      retry: (delayMs) => {
        m.nak(delayMs);
        return Promise.resolve();
      },
    };
  }

  #refuse(m: JsMsg, reason: "unsealed" | "malformed"): void {
    m.term();
    this.#options.onRefused?.(reason);
    this.#options.logger.error({ stream: this.stream, seq: m.seq, reason }, "outbox message refused and dropped: not a notice sealed by a Vigil replica");
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && /not found/i.test(err.message);
}
