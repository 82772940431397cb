// Builds what tells the outside world (the revocation hook, the CAEP transmitter, the approval
// webhooks) from the settings: their destinations, the durable outbox that sends to them
// (JetStream work queue in cluster mode, outbox.jsonl beside the journal otherwise) and the
// Notifier that queues their notices. Nothing is started when nothing is configured.

import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import type { Logger } from "pino";
import type { Config } from "../config/index.js";
import { destinationKey, JetStreamQueue, JournalQueue, Outbox, type Destination, type OutboxQueue } from "../outbox/index.js";
import type { Metrics } from "../telemetry/metrics.js";
import { Notifier } from "./notifier.js";
import { HOOK_RECEIVER, revocationHookDestination } from "./revocation-hook.js";
import { Transmitter } from "./transmitter.js";
import { ApprovalWebhooks } from "./webhook.js";

export interface Notifications {
  outbox: Outbox;
  notifier: Notifier;
  /** Undefined when no transmitter issuer is configured. */
  transmitter: Transmitter | undefined;
  /** Waits until every notice so far is delivered or given up on (tests, benchmarks). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export interface NotificationDeps {
  logger: Logger;
  metrics: Metrics;
  now?: () => number;
  instance?: string;
  fetchImpl?: typeof fetch;
}

/** Where the embedded outbox lives: outbox.path, else outbox.jsonl beside the journal, else memory. */
export function outboxPath(config: Config): string {
  if (config.outbox.path !== "") return config.outbox.path;
  return config.store.journalPath === "" ? "" : join(dirname(config.store.journalPath), "outbox.jsonl");
}

/**
 * The transmitter (when an issuer is set) and, when any receiver is configured, the started
 * outbox and its notifier. Throws (invalid_input) on an unreadable key or secret file.
 */
export async function startNotifications(config: Config, deps: NotificationDeps): Promise<{ transmitter: Transmitter | undefined; notifications: Notifications | undefined }> {
  const transmitter = config.transmitter.issuer === "" ? undefined : await Transmitter.fromConfig(config.transmitter);
  const webhooks = config.approvalWebhooks.length === 0 ? undefined : new ApprovalWebhooks({
    hooks: config.approvalWebhooks,
    consoleUrl: config.consoleUrl,
    source: config.consoleUrl !== "" ? config.consoleUrl : transmitter?.issuer ?? "urn:vigil",
  });
  const destinations = new Map<string, Destination>([
    ...(config.revocationHookUrl === "" ? [] : [[destinationKey("revocation_hook", HOOK_RECEIVER), revocationHookDestination(config.revocationHookUrl)] as const]),
    ...(transmitter?.destinations() ?? []),
    ...(webhooks?.destinations() ?? []),
  ]);
  if (destinations.size === 0) return { transmitter, notifications: undefined };

  const logger = deps.logger.child({ component: "outbox" });
  const { outbox: settings } = config;
  const queue: OutboxQueue = config.store.bus !== ""
    ? new JetStreamQueue({
      store: config.store, logger, maxPending: settings.maxPending,
      // Longer than one attempt, so a live instance is never overtaken; a dead one's lease moves on.
      ackWaitMs: settings.timeoutMs * 2 + 5_000,
      seal: sealKey([transmitter?.sealInput(), webhooks?.sealInput()]),
      onRefused: (reason) => { deps.metrics.outboxRefused.labels(reason).inc(); },
      ...(deps.instance === undefined ? {} : { name: deps.instance }),
    })
    // Scheduling runs on the real clock; the decision clock (deps.now) only stamps events.
    : new JournalQueue({ path: outboxPath(config), logger, maxPending: settings.maxPending });
  const outbox = new Outbox({
    queue, destinations, metrics: deps.metrics, logger,
    retryDelaysMs: settings.retryDelaysMs, maxAttempts: settings.maxAttempts, timeoutMs: settings.timeoutMs,
    concurrency: settings.concurrency,
    ...(deps.now === undefined ? {} : { now: deps.now }),
    ...(deps.fetchImpl === undefined ? {} : { fetchImpl: deps.fetchImpl }),
  });
  await outbox.start();
  const notifier = new Notifier({
    outbox, logger, hook: config.revocationHookUrl !== "",
    ...(transmitter === undefined ? {} : { transmitter }),
    ...(webhooks === undefined ? {} : { webhooks }),
  });
  logger.info({
    queue: queue.kind, receivers: [...destinations.keys()],
    ...(transmitter === undefined ? {} : { transmitter_kid: transmitter.kid }),
  }, "outbox started");
  return {
    transmitter,
    notifications: {
      outbox, notifier, transmitter,
      idle: async () => {
        await notifier.settle();
        await outbox.idle();
      },
      close: async () => {
        await notifier.settle();
        await outbox.close();
      },
    },
  };
}

/** The key sealing notices on the cluster stream: derived from the replicas' shared secrets. */
function sealKey(inputs: (Buffer | undefined)[]): Buffer {
  const present = inputs.filter((b): b is Buffer => b !== undefined && b.length > 0);
  if (present.length === 0) return Buffer.alloc(0);
  const hash = createHash("sha256").update("vigil outbox seal v1");
  for (const b of present) hash.update(createHash("sha256").update(b).digest());
  return hash.digest();
}
