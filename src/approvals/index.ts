export * from "./book.js";
export * from "./events.js";
export * from "./model.js";
export { approvalsJournalPath, LocalLedger, type ApprovalLedger, type LedgerEntry } from "./ledger.js";
export { APPROVAL_BUS_REFUSALS, approvalsBucketName, NatsLedger, type ApprovalBusRefusal } from "./nats-ledger.js";
