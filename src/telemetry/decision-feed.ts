// Decision lines for live viewers (the console's decision stream): the decision log's lines are
// teed here when the console is enabled. Publishing is memory-only and constant-time on the Check
// path: the line goes into a ring of recent lines and is handed to each subscriber, whose own
// bounded queue (the console's SSE writer) decides what to drop for a slow viewer. With no
// subscriber, the cost is one array slot write.

import type { DecisionLine, DecisionLog } from "./decision-log.js";

export interface DecisionFeed {
  publish(line: DecisionLine): void;
  /** Calls `listener` with each line published from now on; returns the unsubscribe function. */
  subscribe(listener: (line: DecisionLine) => void): () => void;
  /** The most recent lines, oldest first. */
  recent(): DecisionLine[];
  readonly subscribers: number;
}

export function createDecisionFeed(options: { keep?: number; maxSubscribers?: number } = {}): DecisionFeed {
  const keep = options.keep ?? 200;
  const ring: (DecisionLine | undefined)[] = new Array<DecisionLine | undefined>(keep);
  let next = 0;
  const listeners = new Set<(line: DecisionLine) => void>();
  return {
    publish(line) {
      ring[next] = line;
      next = (next + 1) % keep;
      for (const listener of listeners) {
        try {
          listener(line);
        } catch {
          // A viewer's failure never reaches the Check: drop that viewer.
          listeners.delete(listener);
        }
      }
    },
    subscribe(listener) {
      if (listeners.size >= (options.maxSubscribers ?? 64)) throw new Error("too many live decision viewers");
      listeners.add(listener);
      return () => { listeners.delete(listener); };
    },
    recent() {
      const out: DecisionLine[] = [];
      for (let i = 0; i < keep; i += 1) {
        const line = ring[(next + i) % keep];
        if (line !== undefined) out.push(line);
      }
      return out;
    },
    get subscribers() {
      return listeners.size;
    },
  };
}

/**
 * A decision log that also publishes each line to the feed. With no decision log (info lines
 * disabled), the feed alone.
 */
export function withDecisionFeed(log: DecisionLog | undefined, feed: DecisionFeed): DecisionLog {
  const tee = (line: DecisionLine): void => {
    log?.(line);
    feed.publish(line);
  };
  return Object.assign(tee, { close: () => log?.close() ?? Promise.resolve() });
}
