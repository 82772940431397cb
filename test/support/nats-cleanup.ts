// Cluster tests make streams on the shared NATS under a prefix of their own (signals, approvals
// and behaviour buckets, the outbox stream). This deletes every one of them, including those a
// feature added after the test was written, so no run leaves empty streams behind.

import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";

/** Deletes every JetStream stream whose name holds `prefix`; returns their names. */
export async function deleteStreamsOf(natsUrl: string, prefix: string): Promise<string[]> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    const mine: string[] = [];
    for await (const stream of jsm.streams.list()) if (stream.config.name.includes(prefix)) mine.push(stream.config.name);
    for (const name of mine) await jsm.streams.delete(name).catch(() => false);
    return mine;
  } finally {
    await nc.close();
  }
}
