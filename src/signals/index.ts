// Public surface of the signals module: the model, the SignalStore contract, its embedded and
// NATS implementations, and the seed file loader. Other modules import from here only.

import type { StoreConfig } from "../config/schema.js";
import { createEmbeddedStore } from "./embedded-store.js";
import type { EmbeddedStoreDeps } from "./embedded-store.js";
import { createNatsStore } from "./nats-store.js";
import type { NatsStoreDeps } from "./nats-store.js";
import type { SignalStore } from "./store.js";

export * from "./model.js";
export type { Freshness, PutResult, SignalStore } from "./store.js";
export { createEmbeddedStore } from "./embedded-store.js";
export type { EmbeddedSignalStore, EmbeddedStoreDeps } from "./embedded-store.js";
export { createNatsStore, signalsBucketName } from "./nats-store.js";
export type { NatsSignalStore, NatsStoreDeps } from "./nats-store.js";
export type { JournalHealth, JournalRecovery, JournalStats } from "./journal.js";
export { JOURNAL_FAILURE_REASONS } from "./journal.js";
export { loadSignalsFile, readSignalItem } from "./signals-file.js";
export { parseSignal } from "./validation.js";

/** The store the configuration asks for: NATS when `bus` is set, embedded otherwise. */
export function createSignalStore(config: StoreConfig, deps: NatsStoreDeps & EmbeddedStoreDeps): SignalStore {
  return config.bus === "" ? createEmbeddedStore(config, deps) : createNatsStore(config, deps);
}
