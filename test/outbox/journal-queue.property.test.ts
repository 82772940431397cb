// The outbox file's reader against arbitrary damage: whatever bytes are appended or inserted,
// opening it never throws, and what it queues again is exactly the sound notices written before.

import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { JournalQueue, type Notice } from "../../src/outbox/index.js";

const silent = pino({ level: "silent" });
const never = new AbortController().signal;

function notice(n: number): Notice {
  return { id: `caep/idp/evt-${String(n)}`, channel: "caep", receiver: "idp", createdAt: n, contentType: "application/secevent+jwt", body: `set-${String(n)}` };
}

describe("the outbox file under arbitrary damage", () => {
  it("opens, and queues again only the notices it wrote, whatever lines are added between them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-outbox-prop-"));
    let round = 0;
    await fc.assert(fc.asyncProperty(
      fc.array(fc.string({ maxLength: 200 }), { maxLength: 8 }),
      fc.string({ maxLength: 100 }),
      async (garbage, tail) => {
        const path = join(dir, `outbox-${String(round++)}.jsonl`);
        const q = new JournalQueue({ path, logger: silent, maxPending: 100 });
        await q.open();
        for (const n of [1, 2]) await q.add(notice(n));
        await q.close();
        // Garbage lines between the records, and a torn tail.
        const lines = readFileSync(path, "utf8").split("\n").filter((l) => l !== "");
        writeFileSync(path, [lines[0], ...garbage.map((g) => g.replaceAll("\n", " ")), lines[1]].join("\n") + "\n");
        appendFileSync(path, tail.replaceAll("\n", " "));
        const reopened = new JournalQueue({ path, logger: silent, maxPending: 100 });
        await reopened.open();
        const ids = (await reopened.claim(100, 0, never)).map((l) => l.notice.id);
        await reopened.close();
        expect(ids).toEqual([notice(1).id, notice(2).id]);
      },
    ), { numRuns: 60 });
  });
});
