// Where google-protobuf went (issue #9): its BinaryReader against protobufjs's Reader for the same
// selective walk of an Envoy-shaped CheckRequest — principals, addresses and ports, the HTTP
// fields, every header and context extension, each made a string, everything else skipped — with
// Vigil's own decoder (the same walk plus bounds checks and the string table) for reference.
// Rounds of every candidate are interleaved, so load from other processes hits all alike.
// Run: npx tsx bench/protobuf-readers.bench.ts [--rounds 30]

import { createRequire } from "node:module";
import protobuf from "protobufjs/minimal.js";
import { createCheckRequestDecoder } from "../src/transport/envoy/index.js";
import { benchmarkCheckRequestBytes } from "../test/support/envoy-client.js";
import { numberArg, percentile, round, sortedCopy, type BenchResult } from "./lib.js";

/** The part of google-protobuf 4's BinaryReader the walk uses (the package ships no types). */
interface BinaryReader {
  nextField(): boolean;
  isEndGroup(): boolean;
  getFieldNumber(): number;
  readString(): string;
  readUint32(): number;
  skipField(): void;
  readMessage(message: Walked, read: (message: Walked, reader: BinaryReader) => void): void;
}
interface GoogleProtobuf { BinaryReader: new (bytes: Uint8Array) => BinaryReader }
const jspb = createRequire(import.meta.url)("google-protobuf") as GoogleProtobuf;

/** What the walk keeps; both readers fill the same shape. */
interface Walked {
  strings: string[];
  ports: number[];
  headers: Record<string, string>;
  extensions: Record<string, string>;
}
const walked = (): Walked => ({ strings: [], ports: [], headers: {}, extensions: {} });

// --- google-protobuf ---------------------------------------------------------------------------
// Field numbers (Envoy's attribute_context.proto): CheckRequest.attributes 1; AttributeContext
// source 1, destination 2, request 4, context_extensions 10; Peer address 1, principal 4;
// Address socket_address 1; SocketAddress address 2, port_value 3; Request http 2; HttpRequest
// id 1, method 2, headers 3, path 4, host 5, scheme 6, protocol 10; map entry key 1, value 2.

function gEntry(into: Record<string, string>) {
  return (_m: Walked, r: BinaryReader): void => {
    let key = "";
    let value = "";
    while (r.nextField() && !r.isEndGroup()) {
      const f = r.getFieldNumber();
      if (f === 1) key = r.readString();
      else if (f === 2) value = r.readString();
      else r.skipField();
    }
    into[key] = value;
  };
}
function gSocket(m: Walked, r: BinaryReader): void {
  while (r.nextField() && !r.isEndGroup()) {
    const f = r.getFieldNumber();
    if (f === 2) m.strings.push(r.readString());
    else if (f === 3) m.ports.push(r.readUint32());
    else r.skipField();
  }
}
function gAddress(m: Walked, r: BinaryReader): void {
  while (r.nextField() && !r.isEndGroup()) {
    if (r.getFieldNumber() === 1) r.readMessage(m, gSocket);
    else r.skipField();
  }
}
function gPeer(m: Walked, r: BinaryReader): void {
  while (r.nextField() && !r.isEndGroup()) {
    const f = r.getFieldNumber();
    if (f === 1) r.readMessage(m, gAddress);
    else if (f === 4) m.strings.push(r.readString());
    else r.skipField();
  }
}
function gHttp(m: Walked, r: BinaryReader): void {
  while (r.nextField() && !r.isEndGroup()) {
    const f = r.getFieldNumber();
    if (f === 3) r.readMessage(m, gEntry(m.headers));
    else if (f === 1 || f === 2 || f === 4 || f === 5 || f === 6 || f === 10) m.strings.push(r.readString());
    else r.skipField();
  }
}
function gRequest(m: Walked, r: BinaryReader): void {
  while (r.nextField() && !r.isEndGroup()) {
    if (r.getFieldNumber() === 2) r.readMessage(m, gHttp);
    else r.skipField();
  }
}
function gAttributes(m: Walked, r: BinaryReader): void {
  while (r.nextField() && !r.isEndGroup()) {
    const f = r.getFieldNumber();
    if (f === 1 || f === 2) r.readMessage(m, gPeer);
    else if (f === 4) r.readMessage(m, gRequest);
    else if (f === 10) r.readMessage(m, gEntry(m.extensions));
    else r.skipField();
  }
}
export function walkGoogle(bytes: Uint8Array): Walked {
  const m = walked();
  const r = new jspb.BinaryReader(bytes);
  while (r.nextField() && !r.isEndGroup()) {
    if (r.getFieldNumber() === 1) r.readMessage(m, gAttributes);
    else r.skipField();
  }
  return m;
}

// --- protobufjs --------------------------------------------------------------------------------

type Reader = protobuf.Reader;
const LEN = 2;

function pEntry(r: Reader, end: number, into: Record<string, string>): void {
  let key = "";
  let value = "";
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag === (1 << 3 | LEN)) key = r.string();
    else if (tag === (2 << 3 | LEN)) value = r.string();
    else r.skipType(tag & 7);
  }
  into[key] = value;
}
function pSocket(r: Reader, end: number, m: Walked): void {
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag === (2 << 3 | LEN)) m.strings.push(r.string());
    else if (tag === 3 << 3) m.ports.push(r.uint32());
    else r.skipType(tag & 7);
  }
}
function pAddress(r: Reader, end: number, m: Walked): void {
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag === (1 << 3 | LEN)) pSocket(r, r.uint32() + r.pos, m);
    else r.skipType(tag & 7);
  }
}
function pPeer(r: Reader, end: number, m: Walked): void {
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag === (1 << 3 | LEN)) pAddress(r, r.uint32() + r.pos, m);
    else if (tag === (4 << 3 | LEN)) m.strings.push(r.string());
    else r.skipType(tag & 7);
  }
}
function pHttp(r: Reader, end: number, m: Walked): void {
  while (r.pos < end) {
    const tag = r.uint32();
    const f = tag >>> 3;
    if (tag === (3 << 3 | LEN)) pEntry(r, r.uint32() + r.pos, m.headers);
    else if ((tag & 7) === LEN && (f === 1 || f === 2 || f === 4 || f === 5 || f === 6 || f === 10)) m.strings.push(r.string());
    else r.skipType(tag & 7);
  }
}
function pRequest(r: Reader, end: number, m: Walked): void {
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag === (2 << 3 | LEN)) pHttp(r, r.uint32() + r.pos, m);
    else r.skipType(tag & 7);
  }
}
function pAttributes(r: Reader, end: number, m: Walked): void {
  while (r.pos < end) {
    const tag = r.uint32();
    const f = tag >>> 3;
    if ((tag & 7) !== LEN) r.skipType(tag & 7);
    else if (f === 1 || f === 2) pPeer(r, r.uint32() + r.pos, m);
    else if (f === 4) pRequest(r, r.uint32() + r.pos, m);
    else if (f === 10) pEntry(r, r.uint32() + r.pos, m.extensions);
    else r.skipType(LEN);
  }
}
export function walkProtobufjs(bytes: Uint8Array): Walked {
  const m = walked();
  const r = protobuf.Reader.create(bytes);
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag === (1 << 3 | LEN)) pAttributes(r, r.uint32() + r.pos, m);
    else r.skipType(tag & 7);
  }
  return m;
}

// --- the run -----------------------------------------------------------------------------------

export function runProtobufReadersBench(rounds = 30, perRound = 5_000): BenchResult {
  const bytes = benchmarkCheckRequestBytes();
  // Both walks must read the same thing, or the comparison means nothing.
  const a = JSON.stringify(walkGoogle(bytes));
  const b = JSON.stringify(walkProtobufjs(bytes));
  if (a !== b) throw new Error(`the two walks disagree:\n${a}\n${b}`);
  const decoder = createCheckRequestDecoder();
  const candidates: [string, (x: Uint8Array) => unknown][] = [
    ["google-protobuf BinaryReader", walkGoogle],
    ["protobufjs Reader", walkProtobufjs],
    ["Vigil decoder (createCheckRequestDecoder)", decoder],
  ];
  const perCall = new Map<string, number[]>(candidates.map(([name]) => [name, []]));
  let sink = 0;
  for (let round = -3; round < rounds; round++) {
    for (const [name, run] of candidates) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < perRound; i++) if (run(bytes) !== undefined) sink++;
      const us = Number(process.hrtime.bigint() - t0) / 1000 / perRound;
      if (round >= 0) perCall.get(name)?.push(us);
    }
  }
  if (sink === 0) throw new Error("nothing decoded");
  const p50 = (name: string): number => percentile(sortedCopy(perCall.get(name) ?? []), 50);
  const google = p50("google-protobuf BinaryReader");
  const pbjs = p50("protobufjs Reader");
  const figures: Record<string, number | string> = { request_bytes: bytes.length, node: process.version };
  for (const [name] of candidates) figures[`${name} µs (median of ${rounds} rounds)`] = round(p50(name), 2);
  figures["google-protobuf / protobufjs"] = round(google / pbjs, 2);
  return {
    name: "protobuf readers, same selective walk of a CheckRequest",
    command: `npx tsx bench/protobuf-readers.bench.ts --rounds ${rounds}`,
    figures,
  };
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  process.stdout.write(`${JSON.stringify(runProtobufReadersBench(numberArg("--rounds", 30)), null, 2)}\n`);
}
