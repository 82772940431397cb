// The approvals book holds a long resource as an excerpt and a digest, and the excerpt must not
// keep the whole path alive: V8 represents a slice as a view on its parent string, so a naive
// excerpt of a 58 KB path holds 58 KB. Measured after a full GC with a wide margin (2,000 such
// approvals are ~116 MB retained when the path leaks, ~4 MB when it does not); not a timing test.

import { runInNewContext } from "node:vm";
import { setFlagsFromString } from "node:v8";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { ApprovalBook } from "../../src/approvals/index.js";
import { parseConfig } from "../../src/config/index.js";
import { createEmbeddedStore } from "../../src/signals/index.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe("approvals book memory", () => {
  it("2,000 approvals with 58 KB paths do not hold the paths", async () => {
    const store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: pino({ level: "silent" }) });
    await store.ready();
    const book = new ApprovalBook({ store, maxPending: 2_000, maxPendingPerCaller: 2_000 });
    const before = heapAfterGc();
    for (let i = 0; i < 2_000; i++) {
      // A fresh flat string per request, as a decoded path is.
      const path = Buffer.from(`/files/${String(i)}/${"x".repeat(58 * 1024)}`, "latin1").toString("latin1");
      book.open({
        caller: "spiffe://example.org/ns/bots/sa/caller", credentialOwner: "", rule: "writes/step-up",
        destination: "spiffe://example.org/ns/svc/sa/payments", resource: `GET ${path}`,
        approvers: [], grantTtlSeconds: 900, grantUses: 1,
      });
    }
    const retained = heapAfterGc() - before;
    expect(book.pendingCount).toBe(2_000);
    expect(retained).toBeLessThan(40 * 2 ** 20);
    await store.close();
  });
});
