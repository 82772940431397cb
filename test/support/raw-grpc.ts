// A raw HTTP/2 gRPC caller for hostile-transport tests: it sends exactly the frames, length
// prefixes and grpc-timeout a test asks for, enforces no deadline of its own, and reports what the
// server answered (grpc-status and the messages), so a test sees the server's behaviour and not a
// client library's. grpc-js's client would refuse to send most of these, or answer for the server.

import type { ClientHttp2Session, IncomingHttpHeaders } from "node:http2";
import { CHECK_PATH } from "./envoy-client.js";

/** A gRPC length-prefixed message; `declared` lies about the length when given. */
export function frame(message: Buffer, options: { compressed?: boolean; declared?: number } = {}): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(options.compressed === true ? 1 : 0, 0);
  head.writeUInt32BE(options.declared ?? message.length, 1);
  return Buffer.concat([head, message]);
}

export interface RawCall {
  /** grpc-timeout as sent, e.g. "0m"; undefined = no deadline. */
  grpcTimeout?: string;
  grpcEncoding?: string;
  /** DATA to send in order; a number waits that many ms first. The stream is ended after the last. */
  send: readonly (Buffer | number)[];
}

export interface RawAnswer {
  grpcStatus: number;
  messages: Buffer[];
}

/** One Check over raw HTTP/2: sends what the row says, reads headers, messages and trailers. */
export function rawCall(session: ClientHttp2Session, call: RawCall): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ":method": "POST",
      ":path": CHECK_PATH,
      "content-type": "application/grpc",
      "te": "trailers",
      ...(call.grpcTimeout === undefined ? {} : { "grpc-timeout": call.grpcTimeout }),
      ...(call.grpcEncoding === undefined ? {} : { "grpc-encoding": call.grpcEncoding }),
    });
    let status: number | undefined;
    const chunks: Buffer[] = [];
    stream.on("response", (headers) => {
      if (headers["grpc-status"] !== undefined) status = Number(headers["grpc-status"]);
    });
    stream.on("trailers", (trailers: IncomingHttpHeaders) => {
      if (trailers["grpc-status"] !== undefined) status = Number(trailers["grpc-status"]);
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    // The server may answer (and close) before everything was sent; that is not a failure here.
    stream.on("error", () => undefined);
    stream.on("close", () => {
      if (status === undefined) {
        reject(new Error(`stream closed without a grpc-status (rst ${String(stream.rstCode)})`));
        return;
      }
      const data = Buffer.concat(chunks);
      const messages: Buffer[] = [];
      for (let at = 0; at + 5 <= data.length;) {
        const length = data.readUInt32BE(at + 1);
        messages.push(data.subarray(at + 5, at + 5 + length));
        at += 5 + length;
      }
      resolve({ grpcStatus: status, messages });
    });
    void (async () => {
      for (const part of call.send) {
        if (typeof part === "number") await new Promise((r) => setTimeout(r, part));
        else if (!stream.closed) stream.write(part);
      }
      if (!stream.closed) stream.end();
    })();
  });
}

