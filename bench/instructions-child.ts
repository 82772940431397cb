// The process bench/instructions.bench.ts runs under callgrind: builds the behaviour bench's world
// uninstrumented, warms both pipelines (8 passes each: JIT compilation landing in the counted pass
// is what makes a run an outlier), then waits on stdin while the parent turns callgrind's
// instrumentation on, runs one pass of the 4,096 requests through one pipeline, and waits again
// while it is turned off. The waits block the thread (readSync), never the event loop: a timer
// (the behaviour drain, off the Check path) must not run while instructions are counted.
// Not run on its own.
// Args: plain|behavior many|few. Run with --expose-gc.

import { readSync, writeSync } from "node:fs";
import { batch, world } from "./behavior.bench.js";

const mode = process.argv[2];
const callers = process.argv[3] === "few" ? "few" : "many";
const w = await world(callers);
const pipeline = mode === "behavior" ? w.observed : w.plain;
for (let pass = 0; pass < 8; pass++) {
  batch(w.plain, w.requests);
  batch(w.observed, w.requests);
  w.behavior.drain();
}
/** Blocks until the parent writes a line (stdin is a pipe). */
function awaitLine(): void {
  const byte = Buffer.alloc(1);
  while (readSync(0, byte, 0, 1, null) === 1 && byte[0] !== 10) { /* the rest of the line */ }
}
// Every pass starts on an empty young generation: how many scavenges land in the counted pass (each
// some millions of instructions) then depends on what the pass allocates, not on where the warm-up
// left the nursery (without this, one pipeline's counts spread over 22.0k–24.6k per Check).
const collect = (globalThis as { gc?: (options: { type: "minor" | "major"; execution: "sync" }) => void }).gc;
if (collect === undefined) throw new Error("run with node --expose-gc");
collect({ type: "major", execution: "sync" });
collect({ type: "minor", execution: "sync" });
writeLine("ready");
awaitLine();
batch(pipeline, w.requests);
writeLine("done");
awaitLine();
w.behavior.drain();
await w.close();
process.exit(0);

function writeLine(line: string): void {
  // Synchronous, so the parent sees it while this thread then blocks in readSync.
  writeSync(1, `${line}\n`);
}
