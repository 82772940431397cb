// What the outbox holds: one notice is one delivery of one event to one receiver, ready to send.
// Its id names the event and the receiver, so the same event is queued at most once per receiver
// (a duplicate add is refused) and a notice acknowledged by its receiver is never sent again.
// Secrets are never part of a notice: signatures that need a shared secret (webhook HMAC) or a
// bearer token are added by the destination at send time, so the outbox file and stream hold
// nothing an attacker who reads them could replay against another receiver.

import { z } from "zod";

/** Which kind of notice: a bounded label for metrics and the route to its destination. */
export const CHANNELS = ["caep", "approval_webhook", "revocation_hook"] as const;
export type Channel = typeof CHANNELS[number];

/** Longest body a notice may carry (a SET or a CloudEvent is a few KiB). */
export const MAX_NOTICE_BODY_BYTES = 64 * 1024;

export const noticeSchema = z.strictObject({
  /** `<channel>/<receiver>/<event id>`: unique per receiver per event. */
  id: z.string().min(1).max(512),
  channel: z.enum(CHANNELS),
  /** The configured receiver's name (settings), never its URL or credentials. */
  receiver: z.string().min(1).max(128),
  /** When the event happened (ms since epoch): delivery latency is measured from here. */
  createdAt: z.number().int().nonnegative(),
  contentType: z.string().min(1).max(128),
  body: z.string().max(MAX_NOTICE_BODY_BYTES),
});

export type Notice = z.infer<typeof noticeSchema>;

export function noticeId(channel: Channel, receiver: string, eventId: string): string {
  return `${channel}/${receiver}/${eventId}`;
}

/** One notice handed to the sender; exactly one of ack, retry or drop settles it. */
export interface Lease {
  notice: Notice;
  /** Attempts made before this one (0 on the first). */
  attempts: number;
  /** Delivered: never sent again. */
  ack(): Promise<void>;
  /** Not delivered yet: offered again after delayMs. */
  retry(delayMs: number): Promise<void>;
  /** Given up on: removed without delivery (logged and counted by the sender). */
  drop(): Promise<void>;
}

export interface Backlog {
  /** Notices not yet delivered or dropped (in flight included). */
  pending: number;
  /** When the oldest of them was queued (ms since epoch); undefined when none is. */
  oldestAt: number | undefined;
}

/** Where notices wait: the journal file (embedded) or a JetStream work queue (cluster). */
export interface OutboxQueue {
  readonly kind: "journal" | "jetstream";
  open(): Promise<void>;
  /** Durable once it resolves. False when a notice with this id is already queued or was delivered recently. */
  add(notice: Notice): Promise<boolean>;
  /**
   * Up to `max` notices due now. Waits up to waitMs for one to become due, less when `signal`
   * aborts; an empty answer is normal.
   */
  claim(max: number, waitMs: number, signal: AbortSignal): Promise<Lease[]>;
  backlog(): Promise<Backlog>;
  close(): Promise<void>;
}
