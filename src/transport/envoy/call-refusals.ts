// Makes grpc-js answer every Check with a CheckResponse. grpc-js ends a call with an RPC error of
// its own in a few places the handler never sees: a message over grpc.max_receive_message_length
// (RESOURCE_EXHAUSTED, read from the 5-byte length prefix, before the message is buffered), the
// timer it arms from grpc-timeout (DEADLINE_EXCEEDED), a malformed grpc-timeout, a failed
// decompression, a stream without exactly one message. Envoy reads any RPC error as "the
// authorization service failed", which failure_mode_allow: true turns into an allow. This module
// turns each of those into a denial CheckResponse on an OK RPC.
//
// How: a server interceptor that replaces sendStatus and sendMessage of the call grpc-js made for
// the stream, and hands that same call on. grpc-js reports its own failures by calling sendStatus on that same object
// (server-interceptors.ts, BaseServerInterceptingCall, 1.10 to 1.14), so a non-OK status that
// arrives before any message is replaced by a denial message followed by status OK. Once a
// message is on its way (the decision, or a denial sent here), further non-OK statuses and
// messages are dropped: its OK status ends the call. That covers the deadline timer firing while
// an answer is being written, a decision made after a refusal, and bytes a client keeps sending
// after the refusal. The tests in
// test/e2e/hostile-transport.test.ts pin this behaviour against the installed grpc-js.

import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { encodeTransportRefusal, STATIC_FAIL_CLOSED, type TransportRefusal } from "./encode.js";

export interface CheckRefusalOptions {
  /** gRPC path of the Check method; other methods (health) are left alone. */
  checkPath: string;
  /** Named in the 413 reason. */
  maxRequestBytes: number;
  /** Told about every refusal, with the decision id the denial carries. Must not throw. */
  onRefused: (refusal: TransportRefusal, decisionId: string) => void;
}

/** What grpc-js's sendStatus takes (its PartialStatusObject, not exported from the package root). */
type CallStatus = Parameters<grpc.ServerInterceptingCallInterface["sendStatus"]>[0];

const OK_STATUS: CallStatus = { code: grpc.status.OK, details: "OK", metadata: null };

/** Which refusal a grpc-js status stands for. */
function refusalOf(code: grpc.status): TransportRefusal {
  if (code === grpc.status.RESOURCE_EXHAUSTED) return "oversized";
  if (code === grpc.status.DEADLINE_EXCEEDED) return "late";
  return "transport";
}

/**
 * A refusal for the wire; never throws. The fresh decision id lets the client quote it and the
 * log line join it; if even that encoding fails, the pre-encoded static denial goes out.
 */
export function refusalBytes(refusal: TransportRefusal, options: CheckRefusalOptions): Buffer {
  let decisionId = "";
  let bytes: Buffer;
  try {
    decisionId = randomUUID();
    bytes = encodeTransportRefusal(refusal, decisionId, options.maxRequestBytes);
  } catch {
    bytes = STATIC_FAIL_CLOSED;
  }
  options.onRefused(refusal, decisionId);
  return bytes;
}

/** Marks a Check call once a message (the decision or a refusal) is on its way. */
const ANSWERING = Symbol("vigil.answering");

/** grpc-js's call with our two methods in place and the one flag they share. */
type PatchedCall = grpc.ServerInterceptingCallInterface & { [ANSWERING]?: boolean };

/** grpc-js's own sendMessage and sendStatus: the ones on the call's prototype. */
type CallMethods = Pick<grpc.ServerInterceptingCallInterface, "sendMessage" | "sendStatus">;

function ownMethods(call: PatchedCall): CallMethods {
  return Object.getPrototypeOf(call) as CallMethods;
}

/**
 * The interceptor; give it as the server's only interceptor so it sees grpc-js's own call.
 *
 * Cost matters here, measured with h2load against a bare grpc-js server (issue #9, BENCHMARKS.md):
 * - the call grpc-js made is patched and returned as it is: wrapping it in a
 *   grpc.ServerInterceptingCall (the documented pass-through) cost about 40 µs of server CPU per
 *   Check;
 * - the two methods are the same two functions for every call (they find their call in `this`
 *   and grpc-js's methods on its prototype), not closures made per call: per-call closures stored
 *   on the call made every scavenge keep call objects alive (scavenges ~5 → 23-42 ms, old-space
 *   collections every few thousand Checks), which cost as much again.
 */
export function answerEveryCheck(options: CheckRefusalOptions): grpc.ServerInterceptor {
  function sendMessage(this: PatchedCall, message: unknown, done: () => void): void {
    // A refusal went out first (grpc-js failed the call, then the handler answered anyway):
    // a unary call carries one message, and the refusal's OK status ends it.
    if (this[ANSWERING] === true) return;
    this[ANSWERING] = true;
    ownMethods(this).sendMessage.call(this, message, done);
  }
  function sendStatus(this: PatchedCall, status: CallStatus): void {
    const own = ownMethods(this);
    if (status.code === grpc.status.OK) {
      own.sendStatus.call(this, status);
      return;
    }
    // An answer is being written; its own OK status closes the call.
    if (this[ANSWERING] === true) return;
    this[ANSWERING] = true;
    own.sendMessage.call(this, refusalBytes(refusalOf(status.code), options), () => {
      own.sendStatus.call(this, OK_STATUS);
    });
  }
  return (method, call) => {
    // grpc-js's ServerInterceptor type asks for its wrapper class; what it calls on the result is
    // ServerInterceptingCallInterface, which the call it gave us implements (server-interceptors.ts,
    // getServerInterceptingCall, 1.10 to 1.14; test/e2e/hostile-transport.test.ts pins the behaviour).
    // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment -- see above: grpc-js only uses the interface
    const same = call as grpc.ServerInterceptingCall;
    if (method.path !== options.checkPath) return same;
    const patched: PatchedCall = call;
    patched[ANSWERING] = false;
    patched.sendMessage = sendMessage;
    patched.sendStatus = sendStatus;
    return same;
  };
}
