// Measures, in process, what the refusal interceptor (src/transport/envoy/call-refusals.ts) adds
// to every Check: grpc-js builds a ServerInterceptingCall around its own call and the interceptor
// wraps sendMessage and sendStatus. A stand-in call takes the unary sequence (start, startRead,
// sendMessage, sendStatus OK) bare and intercepted; rounds are interleaved so other load hits
// both alike. Compare the difference with a Check's full cost in BENCHMARKS.md (tens of µs).
// Run: node --import tsx bench/check-refusals.bench.ts [rounds=20]

import * as grpc from "@grpc/grpc-js";
import { answerEveryCheck } from "../src/transport/envoy/call-refusals.js";

const PATH = "/envoy.service.auth.v3.Authorization/Check";
const PER_ROUND = 20_000;
const rounds = Number(process.argv[2] ?? 20);

const interceptor = answerEveryCheck({ checkPath: PATH, maxRequestBytes: 1 << 20, onRefused: () => undefined });
const method = { path: PATH, requestStream: false, responseStream: false, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b };
const answer = Buffer.alloc(300);
let sink = 0;

/** Just enough of grpc-js's BaseServerInterceptingCall (a class, methods on the prototype). */
class StandInCall {
  start(listener: grpc.ServerListener): void {
    listener.onReceiveMetadata?.(new grpc.Metadata(), () => undefined);
  }
  startRead(): void { sink++; }
  sendMetadata(): void { sink++; }
  sendMessage(_message: unknown, done: () => void): void { done(); }
  sendStatus(status: { code: grpc.status }): void { sink += status.code; }
}
const standInCall = (): grpc.ServerInterceptingCallInterface => new StandInCall() as unknown as grpc.ServerInterceptingCallInterface;

function unary(call: grpc.ServerInterceptingCallInterface): void {
  call.start({
    onReceiveMetadata: () => { call.startRead(); },
    onReceiveMessage: () => undefined,
    onReceiveHalfClose: () => undefined,
    onCancel: () => undefined,
  });
  call.sendMessage(answer, () => { call.sendStatus({ code: grpc.status.OK, details: "OK" }); });
}

const timings = { bare: [] as number[], intercepted: [] as number[] };
for (let r = 0; r < rounds; r++) {
  let t = process.hrtime.bigint();
  for (let i = 0; i < PER_ROUND; i++) unary(standInCall());
  timings.bare.push(Number(process.hrtime.bigint() - t) / PER_ROUND);
  t = process.hrtime.bigint();
  for (let i = 0; i < PER_ROUND; i++) unary(interceptor(method, standInCall()));
  timings.intercepted.push(Number(process.hrtime.bigint() - t) / PER_ROUND);
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const bare = median(timings.bare);
const intercepted = median(timings.intercepted);
process.stdout.write(`${JSON.stringify({ bareNs: Math.round(bare), interceptedNs: Math.round(intercepted), addedNs: Math.round(intercepted - bare), sink: sink > 0 })}\n`);
