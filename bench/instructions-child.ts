// The process bench/instructions.bench.ts runs under callgrind: builds the behaviour bench's world
// uninstrumented, warms both pipelines, then waits on stdin while the parent turns callgrind's
// instrumentation on, runs one pass of the 4,096 requests through one pipeline, and waits again
// while it is turned off. Not run on its own.
// Args: plain|behavior many|few

import { createInterface } from "node:readline";
import { batch, world } from "./behavior.bench.js";

const mode = process.argv[2];
const callers = process.argv[3] === "few" ? "few" : "many";
const w = await world(callers);
const pipeline = mode === "behavior" ? w.observed : w.plain;
for (let pass = 0; pass < 3; pass++) {
  batch(w.plain, w.requests);
  batch(w.observed, w.requests);
  w.behavior.drain();
}
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
process.stdout.write("ready\n");
await lines.next();
batch(pipeline, w.requests);
process.stdout.write("done\n");
await lines.next();
w.behavior.drain();
await w.close();
process.exit(0);
