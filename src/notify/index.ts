export { Notifier, type NotifierOptions } from "./notifier.js";
export { HOOK_RECEIVER, revocationHookDestination, revocationHookNotice, type RevocationChange } from "./revocation-hook.js";
export { Transmitter, caepEvent, loadSigningKey, type TransmitterReceiver } from "./transmitter.js";
export {
  APPROVAL_EVENT_TYPES, ApprovalWebhooks, MIN_WEBHOOK_SECRET_BYTES, webhookSecret, webhookSignature, type ApprovalNoticeEvent,
} from "./webhook.js";
export { outboxPath, startNotifications, type NotificationDeps, type Notifications } from "./setup.js";
