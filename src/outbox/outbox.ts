// The durable outbox: producers (the revocation notices, the CAEP transmitter, the approval
// webhook) queue ready-to-send notices; one loop per instance claims due notices from the queue
// (journal file or JetStream work queue) and POSTs each to its receiver, with a timeout, retries
// with backoff and jitter, and a final drop that is logged and counted. Nothing here runs on the
// Check path: producers are called from background effects and admin requests.
//
// A receiver is untrusted: its answer is read up to a few KiB and then cut off, redirects are
// never followed (a receiver cannot point Vigil at another host), a Retry-After is honoured only
// up to the longest configured delay, and a 4xx other than 408/425/429 ends the notice (a
// rejected SET or event does not become acceptable by sending it again).

import type { Logger } from "pino";
import type { Metrics } from "../telemetry/metrics.js";
import type { Channel, Lease, Notice, OutboxQueue } from "./notice.js";
import { sleep } from "../util/sleep.js";

/** How one receiver is reached. Headers are made per attempt (signatures carry the send time). */
export interface Destination {
  url: string;
  headers(notice: Notice, now: number): Record<string, string>;
}

export function destinationKey(channel: Channel, receiver: string): string {
  return `${channel}/${receiver}`;
}

export interface OutboxOptions {
  queue: OutboxQueue;
  /** By destinationKey(channel, receiver name). */
  destinations: ReadonlyMap<string, Destination>;
  metrics: Metrics;
  logger: Logger;
  now?: () => number;
  /** Delay before each retry (the last repeats); jittered by ±20 %. */
  retryDelaysMs: readonly number[];
  /** Attempts per notice before it is dropped. */
  maxAttempts: number;
  /** One attempt's deadline, answer included. */
  timeoutMs: number;
  /** Notices in flight at once on this instance. */
  concurrency: number;
  /** Notices waiting for the queue to take them (NATS down, disk refusing) before new ones are dropped. */
  maxWaiting?: number;
  fetchImpl?: typeof fetch;
}

/** Bytes of a receiver's answer read at most (for its error code); the rest is never read. */
export const MAX_ANSWER_BYTES = 4 * 1024;

/** RFC 8935 / SSF `err` codes: logged by name; anything else a receiver says is "other". */
const SET_ERRORS = new Set([
  "invalid_request", "invalid_key", "invalid_issuer", "invalid_audience", "authentication_failed", "access_denied", "invalid_state",
]);

type Attempt =
  | { result: "delivered" }
  | { result: "retry"; reason: FailureReason; retryAfterMs?: number; status?: number }
  | { result: "rejected"; reason: FailureReason; status: number; err?: string };

export const FAILURE_REASONS = ["timeout", "network", "http_5xx", "http_429", "http_4xx", "redirect"] as const;
export type FailureReason = typeof FAILURE_REASONS[number];
export const DROP_REASONS = ["rejected", "attempts", "unknown_receiver", "enqueue_failed"] as const;

export class Outbox {
  readonly #options: OutboxOptions;
  readonly #now: () => number;
  readonly #fetch: typeof fetch;
  readonly #inflight = new Set<Promise<void>>();
  readonly #waiting = new Set<Promise<void>>();
  readonly #stopping = new AbortController();
  #loop: Promise<void> | undefined;
  #gauges: NodeJS.Timeout | undefined;

  constructor(options: OutboxOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#fetch = options.fetchImpl ?? fetch;
  }

  get kind(): OutboxQueue["kind"] {
    return this.#options.queue.kind;
  }

  /** Opens the queue (replaying the file, or binding the stream) and starts sending. */
  async start(): Promise<void> {
    await this.#options.queue.open();
    this.#loop = this.#run();
    this.#gauges = setInterval(() => {
      void this.refreshGauges();
    }, 5_000);
    this.#gauges.unref();
    await this.refreshGauges();
  }

  /**
   * Queues a notice; resolves once the queue holds it durably (or it was a duplicate). While the
   * queue refuses (bus or disk down), it keeps trying in the background until it takes it or
   * Vigil stops; past maxWaiting such notices, new ones are dropped, logged and counted.
   */
  enqueue(notice: Notice): Promise<void> {
    const { metrics, logger } = this.#options;
    if (this.#waiting.size >= (this.#options.maxWaiting ?? 10_000) || this.#stopping.signal.aborted) {
      metrics.outboxDropped.labels(notice.channel, "enqueue_failed").inc();
      logger.error({ notice: notice.id }, "notice dropped: the outbox is not taking notices and too many wait for it");
      return Promise.resolve();
    }
    const task = this.#enqueue(notice);
    this.#waiting.add(task);
    void task.finally(() => this.#waiting.delete(task));
    return task;
  }

  async #enqueue(notice: Notice): Promise<void> {
    const { metrics, logger, queue } = this.#options;
    for (let attempt = 0; ; attempt++) {
      try {
        if (await queue.add(notice)) metrics.outboxEnqueued.labels(notice.channel).inc();
        return;
      } catch (err) {
        if (this.#stopping.signal.aborted) {
          metrics.outboxDropped.labels(notice.channel, "enqueue_failed").inc();
          logger.error({ err, notice: notice.id }, "notice lost: the outbox never took it before shutdown");
          return;
        }
        if (attempt === 0) logger.error({ err, notice: notice.id }, "the outbox refused a notice; retrying until it takes it");
        await sleep(this.#delay(attempt), this.#stopping.signal);
      }
    }
  }

  /** Sets vigil_outbox_backlog and vigil_outbox_oldest_age_seconds from the queue. */
  async refreshGauges(): Promise<void> {
    try {
      const backlog = await this.#options.queue.backlog();
      this.#options.metrics.outboxBacklog.set(backlog.pending);
      this.#options.metrics.outboxOldestAge.set(backlog.oldestAt === undefined ? 0 : Math.max(0, this.#now() - backlog.oldestAt) / 1000);
    } catch (err) {
      this.#options.logger.debug({ err }, "outbox backlog unknown for now");
    }
  }

  /** Waits until every queued notice has been sent or given up on (tests, benchmarks). */
  async idle(pollMs = 10): Promise<void> {
    for (;;) {
      await Promise.allSettled([...this.#waiting]);
      const backlog = await this.#options.queue.backlog();
      if (backlog.pending === 0 && this.#inflight.size === 0 && this.#waiting.size === 0) return;
      await sleep(pollMs);
    }
  }

  /** Stops claiming, lets attempts in flight finish (each within its timeout), closes the queue. */
  async close(): Promise<void> {
    this.#stopping.abort();
    if (this.#gauges !== undefined) clearInterval(this.#gauges);
    await this.#loop;
    await Promise.allSettled([...this.#inflight, ...this.#waiting]);
    await this.#options.queue.close();
  }

  async #run(): Promise<void> {
    const { queue, concurrency, logger } = this.#options;
    const signal = this.#stopping.signal;
    while (!signal.aborted) {
      const free = concurrency - this.#inflight.size;
      if (free <= 0) {
        await Promise.race(this.#inflight);
        continue;
      }
      let leases: Lease[];
      try {
        leases = await queue.claim(free, 1_000, signal);
      } catch (err) {
        if (this.#stopping.signal.aborted) break;
        logger.warn({ err }, "outbox cannot claim notices now; trying again");
        await sleep(1_000, signal);
        continue;
      }
      for (const lease of leases) {
        const task = this.#deliver(lease).catch((err: unknown) => {
          logger.error({ err, notice: lease.notice.id }, "outbox delivery failed unexpectedly");
        });
        this.#inflight.add(task);
        void task.finally(() => this.#inflight.delete(task));
      }
    }
  }

  async #deliver(lease: Lease): Promise<void> {
    const { metrics, logger, destinations, maxAttempts } = this.#options;
    const { notice } = lease;
    const line = { notice: notice.id, channel: notice.channel, receiver: notice.receiver, attempt: lease.attempts + 1 };
    const destination = destinations.get(destinationKey(notice.channel, notice.receiver));
    if (destination === undefined) {
      // Queued before a restart that removed this receiver from the settings.
      metrics.outboxDropped.labels(notice.channel, "unknown_receiver").inc();
      logger.error(line, "notice dropped: its receiver is no longer configured");
      await lease.drop();
      return;
    }
    const attempt = await this.#attempt(destination, notice);
    if (attempt.result === "delivered") {
      metrics.outboxDelivered.labels(notice.channel).inc();
      metrics.outboxDeliverySeconds.labels(notice.channel).observe(Math.max(0, this.#now() - notice.createdAt) / 1000);
      await lease.ack();
      logger.info(line, "notice delivered");
      return;
    }
    metrics.outboxFailures.labels(notice.channel, attempt.reason).inc();
    if (attempt.result === "rejected") {
      metrics.outboxDropped.labels(notice.channel, "rejected").inc();
      logger.error({ ...line, status: attempt.status, ...(attempt.err === undefined ? {} : { err_code: attempt.err }) },
        "notice dropped: the receiver rejected it");
      await lease.drop();
      return;
    }
    if (lease.attempts + 1 >= maxAttempts) {
      metrics.outboxDropped.labels(notice.channel, "attempts").inc();
      logger.error({ ...line, reason: attempt.reason, status: attempt.status }, "notice dropped: no attempt succeeded");
      await lease.drop();
      return;
    }
    const delay = Math.max(this.#delay(lease.attempts), attempt.retryAfterMs ?? 0);
    logger.warn({ ...line, reason: attempt.reason, status: attempt.status, retry_in_ms: delay }, "notice not delivered yet; will retry");
    await lease.retry(delay);
  }

  async #attempt(destination: Destination, notice: Notice): Promise<Attempt> {
    let res: Response;
    const timeout = AbortSignal.timeout(this.#options.timeoutMs);
    try {
      res = await this.#fetch(destination.url, {
        method: "POST",
        headers: { ...destination.headers(notice, this.#now()), "content-type": notice.contentType },
        body: notice.body,
        redirect: "manual",
        signal: timeout,
      });
    } catch {
      return { result: "retry", reason: timeout.aborted ? "timeout" : "network" };
    }
    let answer: string;
    try {
      answer = await readBounded(res, MAX_ANSWER_BYTES);
    } catch {
      // The status is what counts; an answer cut off or too slow is not read further.
      answer = "";
    }
    const status = res.status;
    if (status >= 200 && status < 300) return { result: "delivered" };
    if (status >= 300 && status < 400) return { result: "rejected", reason: "redirect", status };
    if (status === 429 || status === 503) {
      return { result: "retry", reason: status === 429 ? "http_429" : "http_5xx", status, retryAfterMs: this.#retryAfter(res.headers.get("retry-after")) };
    }
    if (status >= 500 || status === 408 || status === 425) return { result: "retry", reason: status >= 500 ? "http_5xx" : "http_4xx", status };
    const err = setError(answer);
    return { result: "rejected", reason: "http_4xx", status, ...(err === undefined ? {} : { err }) };
  }

  /** A Retry-After in seconds, bounded by the longest configured delay. */
  #retryAfter(header: string | null): number | undefined {
    if (header === null || !/^\d{1,9}$/.test(header.trim())) return undefined;
    const longest = Math.max(...this.#options.retryDelaysMs);
    return Math.min(Number(header.trim()) * 1000, longest);
  }

  #delay(attempts: number): number {
    const delays = this.#options.retryDelaysMs;
    const base = delays[Math.min(attempts, delays.length - 1)] ?? 1_000;
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }
}

/** The RFC 8935 `err` code in a 400 answer, when it is a registered one. */
function setError(answer: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(answer);
    if (typeof parsed === "object" && parsed !== null && "err" in parsed && typeof parsed.err === "string") {
      return SET_ERRORS.has(parsed.err) ? parsed.err : "other";
    }
  } catch {
    // Not JSON: nothing to name.
  }
  return undefined;
}

/** Reads at most `limit` bytes of a response body, then cancels the rest. */
async function readBounded(res: Response, limit: number): Promise<string> {
  if (res.body === null) return "";
  const reader: ReadableStreamDefaultReader<Uint8Array> = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < limit) {
      const chunk = await reader.read();
      if (chunk.done) break;
      chunks.push(chunk.value);
      size += chunk.value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, limit).toString("utf8");
}
