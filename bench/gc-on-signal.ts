// Bench-only preload of the soaked sidecar (bench/soak.bench.ts, with --expose-gc): SIGUSR2 runs a
// full collection, so a heap sample taken right after is what is live, not where V8's sawtooth
// happened to be. Never loaded by `vigil serve` outside the bench.

const collect = (globalThis as { gc?: () => void }).gc;
if (collect === undefined) throw new Error("gc-on-signal needs node --expose-gc");
process.on("SIGUSR2", () => { collect(); });
