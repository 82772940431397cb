// Measures, in process, what the Envoy transport spends per Check on protobuf: Vigil's selective
// decoder and hand-written encoder against what proto-loader does by default. Rounds of every
// candidate are interleaved so that load from other processes hits all of them alike; compare the
// ratios within one run, not absolute times across runs (hot-path.md).
// Run: node --import tsx bench/codec.bench.ts [rounds=40]

import type { Decision } from "../src/model/index.js";
import {
  createCheckRequestDecoder,
  decodeCheckRequest,
  encodeCheckResponse,
  loadAuthorizationPackage,
} from "../src/transport/envoy/index.js";
import { benchmarkCheckRequestBytes, envoyType } from "../test/support/envoy-client.js";
import * as previous from "../test/support/legacy-encode/encode.js";

interface ProtoLoaderCheck {
  requestDeserialize(bytes: Buffer): unknown;
  responseSerialize(value: unknown): Buffer;
}

const bytes = benchmarkCheckRequestBytes();
const standard = (loadAuthorizationPackage()["envoy.service.auth.v3.Authorization"] as unknown as { Check: ProtoLoaderCheck }).Check;
const checkRequestType = envoyType("envoy.service.auth.v3.CheckRequest");
const decoder = createCheckRequestDecoder();

const allow: Decision = {
  id: "0b0e5a5e-6f61-4b7a-9a0e-1b2c3d4e5f60",
  outcome: "allow",
  rule: "ci-may-deploy",
  reason: "allowed",
  caller: "spiffe://example.org/ns/ci/sa/release-pipeline",
  trustDomain: "example.org",
  credentialFingerprint: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
  headersToRemove: [],
  durationNs: 0,
};
const deny: Decision = { ...allow, outcome: "deny", reason: "caller risk is high" };
const stepUp: Decision = { ...allow, outcome: "step_up", reason: "needs a second approver", approvalId: "apr_01HZX3K9V7Q2" };
const delay: Decision = { ...allow, outcome: "delay", reason: "change window opens later", retryAfterSeconds: 42.5 };
/** A fresh copy of a string, as each decoded request brings its own (equal, but not the same object). */
const copy = (s: string): string => Buffer.from(s, "utf8").toString("utf8");
/** The same caller in 64 decisions whose strings are separate copies: the encoder compares contents. */
const sameCallerCopies: Decision[] = Array.from({ length: 64 }, () => ({
  ...allow, id: copy(allow.id), caller: copy(allow.caller), trustDomain: copy(allow.trustDomain), credentialFingerprint: copy(allow.credentialFingerprint),
}));
/** Eight callers in turn: more than the encoder keeps, so its identity cache never hits. */
const eightCallers: Decision[] = Array.from({ length: 8 }, (_, i) => ({ ...allow, caller: `${allow.caller}-${String(i)}`, credentialFingerprint: `${allow.credentialFingerprint.slice(0, -1)}${String(i)}` }));
let turn = 0;
/** The benchmark request's headers as the decoder reads them: what the server passes with an allow. */
const requestHeaders = decoder(bytes).headers;
const option = (key: string, value: string): object => ({ header: { key, value }, append: { value: false } });
/** The same allow as an object for proto-loader's serialiser. */
const allowObject = {
  status: { code: 0 },
  ok_response: {
    headers: [
      option("x-vigil-decision-id", allow.id),
      option("x-vigil-caller", allow.caller),
      option("x-vigil-trust-domain", allow.trustDomain),
      option("x-vigil-credential-fingerprint", allow.credentialFingerprint),
    ],
    response_headers_to_add: [option("x-vigil-decision-id", allow.id)],
  },
  dynamic_metadata: {
    fields: {
      decision_id: { stringValue: allow.id },
      outcome: { stringValue: "allow" },
      rule: { stringValue: allow.rule },
    },
  },
};

const candidates: [string, () => unknown][] = [
  ["decode: proto-loader (decode + toObject)", () => standard.requestDeserialize(bytes)],
  ["decode: protobufjs decode only", () => checkRequestType.decode(bytes)],
  ["decode: vigil decodeCheckRequest (one-off)", () => decodeCheckRequest(bytes)],
  ["decode: vigil createCheckRequestDecoder()", () => decoder(bytes)],
  ["encode: proto-loader allow (fromObject + encode)", () => standard.responseSerialize(allowObject)],
  ["encode: vigil encodeCheckResponse allow", () => encodeCheckResponse(allow)],
  ["encode: vigil allow + request headers", () => encodeCheckResponse(allow, requestHeaders)],
  ["encode: vigil allow, equal copies of one caller", () => encodeCheckResponse(sameCallerCopies[turn++ & 63] ?? allow)],
  ["encode: vigil allow, eight callers in turn", () => encodeCheckResponse(eightCallers[turn++ & 7] ?? allow)],
  ["encode: vigil encodeCheckResponse deny", () => encodeCheckResponse(deny)],
  ["encode: vigil encodeCheckResponse step_up", () => encodeCheckResponse(stepUp)],
  ["encode: vigil encodeCheckResponse delay", () => encodeCheckResponse(delay)],
  // The encoder before the #9 rewrite (test/support/legacy-encode), for the ratio in one run.
  ["encode: previous encoder allow", () => previous.encodeCheckResponse(allow)],
  ["encode: previous allow + request headers", () => previous.encodeCheckResponse(allow, requestHeaders)],
  ["encode: previous allow, equal copies of one caller", () => previous.encodeCheckResponse(sameCallerCopies[turn++ & 63] ?? allow)],
  ["encode: previous allow, eight callers in turn", () => previous.encodeCheckResponse(eightCallers[turn++ & 7] ?? allow)],
  ["encode: previous encoder deny", () => previous.encodeCheckResponse(deny)],
  ["encode: previous encoder step_up", () => previous.encodeCheckResponse(stepUp)],
  ["encode: previous encoder delay", () => previous.encodeCheckResponse(delay)],
];

let sink: unknown;
const rounds = Number(process.argv[2] ?? 40);
const perRound = 5_000;
for (let i = 0; i < 30_000; i++) for (const [, run] of candidates) sink = run();
const samples = candidates.map((): number[] => []);
/** CPU time (user + system) of this process: not charged while another process has the core. */
const cpuSamples = candidates.map((): number[] => []);
for (let round = 0; round < rounds; round++) {
  candidates.forEach(([, run], j) => {
    const cpu = process.cpuUsage();
    const start = process.hrtime.bigint();
    for (let i = 0; i < perRound; i++) sink = run();
    samples[j]?.push(Number(process.hrtime.bigint() - start) / perRound / 1000);
    const used = process.cpuUsage(cpu);
    cpuSamples[j]?.push((used.user + used.system) / perRound);
  });
}
if (sink === undefined) throw new Error("nothing ran");

console.log(`node ${process.version}, CheckRequest ${String(bytes.length)} bytes, ${String(rounds)} interleaved rounds of ${String(perRound)} calls`);
console.log("µs per call: wall".padStart(56), "   min  median   cpu min  median");
const quantile = (values: number[] | undefined, q: number): string => {
  const sorted = [...(values ?? [])].sort((a, b) => a - b);
  return (sorted[Math.floor(q * (sorted.length - 1))] ?? NaN).toFixed(2).padStart(6);
};
candidates.forEach(([name], j) => {
  console.log(name.padEnd(56), quantile(samples[j], 0), quantile(samples[j], 0.5), quantile(cpuSamples[j], 0).padStart(9), quantile(cpuSamples[j], 0.5));
});
