// Approval notifications: when a step-up approval opens or is decided, each configured webhook
// gets a CloudEvents 1.0 JSON event (structured mode, the `cloudevents` SDK) through the durable
// outbox, signed the Standard Webhooks way: `webhook-id`, `webhook-timestamp` and
// `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, so a receiver can
// check it came from Vigil, unaltered, recently (it should refuse timestamps more than a few
// minutes off). The signature is made at each attempt with the secret from the settings; the
// outbox never holds the secret.
//
// The event carries what a human needs to act: the caller, the action, the rule, the reason,
// the `vigil approvals approve|deny` commands and a link to the console.

import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { CloudEvent, HTTP } from "cloudevents";
import type { ApprovalWebhookConfig } from "../config/index.js";
import { VigilError } from "../errors/index.js";
import { destinationKey, noticeId, type Destination, type Notice } from "../outbox/index.js";

export const APPROVAL_EVENT_TYPES = { opened: "vigil.approval.opened", decided: "vigil.approval.decided" } as const;

/** What the webhook needs of an approval event (src/approvals events carry at least this). */
export interface ApprovalNoticeEvent {
  type: "opened" | "decided";
  approvalId: string;
  caller: string;
  action: string;
  rule: string;
  reason: string;
  status: string;
  by: string;
  at: number;
}

/** Shortest webhook secret accepted, in bytes (HMAC-SHA256 wants at least 128 bits). */
export const MIN_WEBHOOK_SECRET_BYTES = 16;

/** A secret as Standard Webhooks writes it ("whsec_" + base64) or the raw text of the file. */
export function webhookSecret(text: string, name: string): Buffer {
  const trimmed = text.trim();
  const secret = trimmed.startsWith("whsec_") ? Buffer.from(trimmed.slice(6), "base64") : Buffer.from(trimmed, "utf8");
  if (secret.length < MIN_WEBHOOK_SECRET_BYTES) {
    throw new VigilError("invalid_input", `the secret of approval webhook ${name} is shorter than ${String(MIN_WEBHOOK_SECRET_BYTES)} bytes`);
  }
  return secret;
}

/** `v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>` (Standard Webhooks). */
export function webhookSignature(secret: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac("sha256", secret).update(`${id}.${String(timestamp)}.${body}`).digest("base64")}`;
}

interface Hook {
  name: string;
  url: string;
  secret: Buffer;
}

export interface ApprovalWebhookOptions {
  hooks: readonly ApprovalWebhookConfig[];
  /** Base URL of the console; "" leaves console_url out. */
  consoleUrl: string;
  /** `source` of the events: this deployment's ops URL or name. */
  source: string;
  read?: (path: string) => string;
}

export class ApprovalWebhooks {
  readonly #hooks: readonly Hook[];
  readonly #consoleUrl: string;
  readonly #source: string;

  constructor(options: ApprovalWebhookOptions) {
    const read = options.read ?? ((p: string) => readFileSync(p, "utf8"));
    this.#hooks = options.hooks.map((h) => {
      let text: string;
      try {
        text = read(h.secretFile);
      } catch (cause) {
        throw new VigilError("invalid_input", `cannot read the secret file of approval webhook ${h.name}: ${h.secretFile}`, { cause });
      }
      return { name: h.name, url: h.url, secret: webhookSecret(text, h.name) };
    });
    this.#consoleUrl = options.consoleUrl.replace(/\/$/, "");
    this.#source = options.source;
  }

  /** Secret bytes the outbox's seal key is derived from (never logged or sent). */
  sealInput(): Buffer {
    return Buffer.concat(this.#hooks.map((h) => h.secret));
  }

  get size(): number {
    return this.#hooks.length;
  }

  destinations(): Map<string, Destination> {
    return new Map(this.#hooks.map((h) => [destinationKey("approval_webhook", h.name), {
      url: h.url,
      headers: (notice: Notice, now: number) => {
        const id = notice.id;
        const timestamp = Math.floor(now / 1000);
        return {
          "webhook-id": id,
          "webhook-timestamp": String(timestamp),
          "webhook-signature": webhookSignature(h.secret, id, timestamp, notice.body),
        };
      },
    }]));
  }

  /** The CloudEvent for an approval event (the same for every hook). */
  cloudEvent(event: ApprovalNoticeEvent): { contentType: string; body: string } {
    const id = `${event.approvalId}.${event.type}`;
    const ce = new CloudEvent({
      specversion: "1.0",
      id,
      type: APPROVAL_EVENT_TYPES[event.type],
      source: this.#source,
      subject: event.approvalId,
      time: new Date(event.at).toISOString(),
      datacontenttype: "application/json",
      data: {
        approval_id: event.approvalId,
        status: event.status,
        caller: event.caller,
        action: event.action,
        rule: event.rule,
        reason: event.reason,
        ...(event.by === "" ? {} : { decided_by: event.by }),
        commands: {
          approve: `vigil approvals approve ${event.approvalId}`,
          deny: `vigil approvals deny ${event.approvalId}`,
        },
        ...(this.#consoleUrl === "" ? {} : { console_url: `${this.#consoleUrl}/console/approvals/${encodeURIComponent(event.approvalId)}` }),
      },
    });
    const message = HTTP.structured(ce);
    return { contentType: "application/cloudevents+json; charset=utf-8", body: String(message.body) };
  }

  notices(event: ApprovalNoticeEvent): Notice[] {
    if (this.#hooks.length === 0) return [];
    const { contentType, body } = this.cloudEvent(event);
    return this.#hooks.map((h) => ({
      id: noticeId("approval_webhook", h.name, `${event.approvalId}.${event.type}`),
      channel: "approval_webhook" as const, receiver: h.name, createdAt: event.at, contentType, body,
    }));
  }
}
