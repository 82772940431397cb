// Child process of the signal-latency benchmark: hosts `count` watching sidecars (each its own
// NATS connection, store and decision pipeline) and reports, over IPC, the wall-clock moment each
// one first decides "deny" for a benchmark caller after a signal arrives.
// Run by bench/signal-latency.bench.ts: node --import tsx bench/signal-watchers.ts PREFIX COUNT

import { pino } from "pino";
import { ApprovalBook } from "../src/approvals/index.js";
import { parseConfig } from "../src/config/index.js";
import { createDecider, Effects, type AccessRequest } from "../src/decision/index.js";
import { createCallerResolver } from "../src/identity/index.js";
import { compilePolicy, parsePolicyDocuments } from "../src/policy/index.js";
import { createNatsStore, type SignalStore } from "../src/signals/index.js";
import { createMetrics } from "../src/telemetry/index.js";
import { BENCH_POLICY, NATS_URL, benchRequest } from "./signal-latency.fixtures.js";

const [prefix = "", countText = "1"] = process.argv.slice(2);
const silent = pino({ level: "silent" });
const policy = compilePolicy(parsePolicyDocuments(BENCH_POLICY, "payments.yaml"));
const storeConfig = parseConfig({ store: { bus: NATS_URL, bucketPrefix: prefix, freshnessBoundMs: 5000 } }).store;
const stores: SignalStore[] = [];
const send = (message: unknown): void => { process.send?.(message); };

for (let i = 0; i < Number(countText); i++) {
  const store = createNatsStore(storeConfig, { logger: silent, name: `watcher-${process.pid}-${i}` });
  await store.ready();
  const metrics = createMetrics({ defaultMetrics: false });
  const decide = createDecider({
    policy: () => policy, resolveCaller: createCallerResolver(parseConfig({}).identity), store,
    effects: new Effects({ store, logger: silent, metrics }), approvals: new ApprovalBook({ store }),
  });
  const requests = new Map<string, AccessRequest>();
  store.subscribe((signal) => {
    if (!signal.subject.startsWith("spiffe://example.org/ns/bench/")) return;
    let req = requests.get(signal.subject);
    if (req === undefined) {
      req = benchRequest(signal.subject);
      requests.set(signal.subject, req);
    }
    if (decide(req).outcome === "deny") send({ subject: signal.subject, at: performance.timeOrigin + performance.now() });
  });
  stores.push(store);
}
send({ ready: true });
process.on("message", (message) => {
  if (message !== "stop") return;
  void Promise.all(stores.map((s) => s.close())).then(() => process.exit(0));
});
