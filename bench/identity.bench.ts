// Rough per-request cost of identity resolution, for the numbers quoted in reviews; not a test
// (vitest only runs *.test.ts). Run: npx tsx bench/identity.bench.ts
// Each request gets freshly decoded strings, as a protobuf decode would give, so string hashing
// and cache lookups are paid as they are in production; the cost of making the input is measured
// separately and subtracted.

import { identitySchema } from "../src/config/schema.js";
import { createCallerResolver, fingerprintSecret, parseWorkloadSpiffeId, type CallerInput } from "../src/identity/index.js";

const ITERATIONS = 1_000_000;
const ROUNDS = 5;

const TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6InZpZ2lsLTEifQ.eyJzdWIiOiJzcGlmZmU6Ly9leGFtcGxlLm9yZy9ucy9jaS9zYS9kZXBsb3llciIsImF1ZCI6InZpZ2lsIiwiZXhwIjoxOTk5OTk5OTk5fQ.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVyZQ";
const wire = Buffer.from(`spiffe://example.org/ns/ci/sa/deployerBearer ${TOKEN}`, "utf8");
const PRINCIPAL_END = "spiffe://example.org/ns/ci/sa/deployer".length;

const withToken = (): CallerInput => ({
  principal: wire.toString("utf8", 0, PRINCIPAL_END),
  certificate: "",
  headers: { ":method": "POST", ":path": "/v1/deploy", authorization: wire.toString("utf8", PRINCIPAL_END) },
});
const withoutToken = (): CallerInput => ({
  principal: wire.toString("utf8", 0, PRINCIPAL_END),
  certificate: "",
  headers: { ":method": "POST", ":path": "/v1/deploy" },
});

let sink = 0;
function nsPerOp(fn: () => unknown): number {
  for (let i = 0; i < ITERATIONS / 5; i++) if (fn() === null) sink++;
  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) if (fn() === null) sink++;
  return Number(process.hrtime.bigint() - start) / ITERATIONS;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

const resolve = createCallerResolver(identitySchema.parse({}));
const resolveUncached = createCallerResolver(identitySchema.parse({}), { principalCacheSize: 0 });

const scenarios: [string, () => unknown][] = [
  ["input only (baseline: principal)", withoutToken],
  ["input only (baseline: principal + bearer)", withToken],
  ["resolve: principal, no credential", () => resolve(withoutToken())],
  ["resolve: principal, no credential, no cache", () => resolveUncached(withoutToken())],
  ["resolve: principal + bearer token", () => resolve(withToken())],
  ["resolve: principal + bearer token, no cache", () => resolveUncached(withToken())],
  ["parseWorkloadSpiffeId alone", () => parseWorkloadSpiffeId(wire.toString("utf8", 0, PRINCIPAL_END))],
  ["fingerprintSecret alone (SHA-256 of the token)", () => fingerprintSecret(TOKEN)],
];

const results = new Map<string, number[]>(scenarios.map(([name]) => [name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, fn] of scenarios) results.get(name)?.push(nsPerOp(fn));
}
// On a shared machine the minimum is the better estimate of the cost itself; the median shows noise.
console.log(`Node ${process.version}, ${ITERATIONS} iterations × ${ROUNDS} rounds; ns/op: min, median`);
for (const [name, samples] of results) {
  console.log(`${Math.min(...samples).toFixed(0).padStart(6)} ${median(samples).toFixed(0).padStart(6)}  ${name}`);
}
if (sink !== 0) console.log(sink);
