export { CHANNELS, MAX_NOTICE_BODY_BYTES, noticeId, noticeSchema } from "./notice.js";
export type { Backlog, Channel, Lease, Notice, OutboxQueue } from "./notice.js";
export { JournalQueue, type JournalQueueOptions } from "./journal-queue.js";
export { DROP_REASONS, FAILURE_REASONS, MAX_ANSWER_BYTES, Outbox, destinationKey } from "./outbox.js";
export type { Destination, FailureReason, OutboxOptions } from "./outbox.js";
export { JetStreamQueue, outboxStreamName, outboxSubject, type JetStreamQueueOptions } from "./jetstream-queue.js";
