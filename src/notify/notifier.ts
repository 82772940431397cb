// Turns what happened (a revocation made durable, a reinstate, an approval opened or decided)
// into notices for every configured receiver and queues them in the durable outbox. Called off
// the Check path (Effects' background loop, admin requests, approval events); it never throws
// into its caller: a notice that cannot be built or queued is logged and counted.

import type { Logger } from "pino";
import type { Notice, Outbox } from "../outbox/index.js";
import { revocationHookNotice, type RevocationChange } from "./revocation-hook.js";
import type { Transmitter } from "./transmitter.js";
import type { ApprovalNoticeEvent, ApprovalWebhooks } from "./webhook.js";

export interface NotifierOptions {
  outbox: Outbox;
  logger: Logger;
  /** The CAEP transmitter; undefined when no issuer is configured. */
  transmitter?: Transmitter;
  webhooks?: ApprovalWebhooks;
  /** Whether the revocation hook (revocationHookUrl) is configured. */
  hook: boolean;
}

export class Notifier {
  readonly #options: NotifierOptions;
  readonly #tasks = new Set<Promise<void>>();

  constructor(options: NotifierOptions) {
    this.#options = options;
  }

  /** Queues the hook's notice and one SET per CAEP receiver. */
  revocationChanged(change: RevocationChange): void {
    this.#track(async () => {
      const notices: Notice[] = [];
      const hook = this.#options.hook ? revocationHookNotice(change) : undefined;
      if (hook !== undefined) notices.push(hook);
      if (this.#options.transmitter !== undefined) notices.push(...await this.#options.transmitter.notices(change));
      return notices;
    }, { event: change.eventId, change: change.change, target: change.target });
  }

  /** Queues one CloudEvent per approval webhook. */
  approvalChanged(event: ApprovalNoticeEvent): void {
    const webhooks = this.#options.webhooks;
    if (webhooks === undefined || webhooks.size === 0) return;
    this.#track(() => Promise.resolve(webhooks.notices(event)), { approval_id: event.approvalId, type: event.type });
  }

  /** Waits until every notice built so far is queued (or given up on). */
  async settle(): Promise<void> {
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  #track(build: () => Promise<Notice[]>, line: Record<string, string>): void {
    const task = (async () => {
      let notices: Notice[];
      try {
        notices = await build();
      } catch (err) {
        this.#options.logger.error({ err, ...line }, "could not build notices; none was sent");
        return;
      }
      await Promise.all(notices.map((n) => this.#options.outbox.enqueue(n)));
    })();
    this.#tasks.add(task);
    void task.finally(() => this.#tasks.delete(task));
  }
}
