// What a caller does and where it comes from, as a baseline remembers it: an action (the
// destination plus the MCP tool, the gRPC method, or the HTTP method and path pattern) and a
// source network (an IPv4 /24 or IPv6 /64 by default).
//
// The Check path must not build strings for this (design §2: no allocation per request beyond
// what it did before), so each is hashed character by character straight from the request
// view's own strings. The hash is exactly the hash of the readable label (`actionLabel`), which
// is built off the hot path, when an action is first learned or reported: an operator accepting
// the label "payments GET /v1/payments/*" thus adds the same key a request would compute.
//
// The hash is FNV-1a, two lanes of 26 bits combined into one safe integer, with offset bases drawn
// at random per process (`HashKey`): a caller cannot precompute a path that collides with an action
// it learned. Baselines are persisted as labels and re-hashed at load, so the key never leaves
// the process.

import { randomBytes } from "node:crypto";
import type { RequestView } from "../model/index.js";

/** FNV-1a's 32-bit prime; exported for the pipeline's pass over the path (decision's `pathProblem`). */
export const FNV_PRIME = 0x01000193;

/**
 * The per-process offset bases of the two hash lanes, and actionHash's memo: per recently seen
 * destination and method, both lanes after them ("payments GET "), in a small direct-mapped table.
 * A sidecar's requests mostly share both (one destination, a few methods; a gateway's few dozen
 * destinations), so most requests hash only their path.
 */
export interface HashKey {
  readonly a: number;
  readonly b: number;
  /**
   * The memo, MEMO_STRIDE entries per slot: the destination, the method ("": an empty slot, never
   * matched), and the two lanes after them (int32). One array, so that a lookup reads one array
   * object and one line of its elements: the memo is cold in the first-level cache at each Check
   * (the rest of the Check evicts it), and each object more is a cache miss more (issue #12).
   */
  readonly memo: (string | number)[];
}

/** Slots of actionHash's memo (a power of two): a gateway's few dozen destinations times a few methods rarely collide. */
const MEMO_SLOTS = 1024;
const MEMO_STRIDE = 4;
/**
 * Longest destination plus method the memo keeps. The method is the caller's to choose (an HTTP/2
 * :method is any token): without a cap, a caller could make the memo hold 1,024 strings as long as
 * Envoy lets a header be. Longer pairs are hashed every time.
 */
export const MAX_MEMO_CHARS = 128;

export function newHashKey(): HashKey {
  const bytes = randomBytes(8);
  const memo: (string | number)[] = [];
  for (let slot = 0; slot < MEMO_SLOTS; slot++) memo.push("", "", 0, 0);
  return { a: bytes.readUInt32LE(0), b: bytes.readUInt32LE(4), memo };
}

/**
 * A memo slot for a destination and method: from their lengths and end characters (a few reads,
 * not a hash of every character), each folded in by a multiplication so that all of them reach
 * the low bits (100 destination and method pairs of the behaviour bench take 98 of 1,024 slots).
 */
function memoSlot(destination: string, method: string): number {
  const d = destination.length;
  const m = method.length;
  let h = Math.imul(d * 64 + m, 0x9e3779b1);
  h = Math.imul(h ^ (d > 0 ? destination.charCodeAt(d - 1) : 0), 0x85ebca6b);
  h = Math.imul(h ^ (d > 1 ? destination.charCodeAt(d - 2) : 0), 0xc2b2ae35);
  h = Math.imul(h ^ (m > 0 ? method.charCodeAt(0) : 0), 0x9e3779b1);
  h ^= h >>> 15;
  return (h ^ (h >>> 16)) & (MEMO_SLOTS - 1);
}

/** A path segment that names an instance rather than a kind of thing: it becomes "*". */
function isIdSegment(path: string, from: number, to: number): boolean {
  let digit = false;
  for (let i = from; i < to && !digit; i++) digit = isDigit(path.charCodeAt(i));
  return isIdLike(path, from, to - from, digit);
}

/**
 * The rule `isIdSegment` applies, for a segment of `length` characters at `start` in `path`
 * (`digit`: whether it has one): longer than 24 characters, or a digit in it (ids, dates, versions
 * of a thing) unless it is an API version ("v1", "v2beta"), which names a kind of thing. Exported
 * for the pipeline's pass over the path (decision's `pathProblem`), which finds `digit` as it goes.
 */
export function isIdLike(path: string, start: number, length: number, digit: boolean): boolean {
  return length > 24 || (digit && !(length <= 8 && path.charCodeAt(start) === 118 && isDigit(path.charCodeAt(start + 1))));
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

// FNV-1a over a sequence of strings fed without concatenating them, both lanes in one pass: each
// character is read once and folded into two independent states (two multiplications the CPU
// runs side by side), so the second lane costs little next to the first. Each lane lives in a
// local integer while a string is fed and in the `lanes` scratch (an Int32Array: unboxed) between
// strings; no object field is written per character, so nothing is boxed or allocated.

const lanes = new Int32Array(2);

function feedText(s: string, from: number, to: number): void {
  let a = lanes[0] as number;
  let b = lanes[1] as number;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, FNV_PRIME);
    b = Math.imul(b ^ c, FNV_PRIME);
  }
  lanes[0] = a;
  lanes[1] = b;
}

function feedChar(c: number): void {
  lanes[0] = Math.imul((lanes[0] as number) ^ c, FNV_PRIME);
  lanes[1] = Math.imul((lanes[1] as number) ^ c, FNV_PRIME);
}

/** 26 bits of each lane: a safe integer, the same for a request and for its label. */
function combine(): number {
  return combineLanes(lanes[0] as number, lanes[1] as number);
}

/** The kind of action a request is: an MCP tool call, a gRPC method, or an HTTP method on a path. */
function actionKind(view: RequestView): "mcp" | "grpc" | "http" {
  if (view.mcp_tool !== "") return "mcp";
  if (view.grpc_service !== "") return "grpc";
  return "http";
}

/**
 * The action's key: the hash of `actionLabel(view)`, computed without building it. For an HTTP
 * request the lanes after "destination METHOD " come from the key's memo (`seedLanes`), then the
 * path's pattern is hashed by `pathHash`. The pipeline does not come this way for an HTTP
 * request whose path is in normal form: its one pass over the path (decision's `pathProblem`)
 * feeds the pattern to the seeded lanes as it checks the path (see `BehaviorMonitor.seedPath`).
 * This is the way for everything else, and the reference that pass is tested against.
 */
export function actionHash(key: HashKey, view: RequestView): number {
  if (!isHttpAction(view)) return otherActionHash(key, view);
  seedLanes(key, view.destination, view.method, lanes);
  // The path without its query is read in place in the whole path (it is that path's prefix): the
  // decoder made the whole path a flat string, the part before "?" is a slice of it, and each
  // character read through a slice costs about twice as many instructions (issue #9).
  return pathHash(view.path, view.path_only.length, lanes[0] as number, lanes[1] as number);
}

/** Whether a request's action is an HTTP method on a path (not an MCP tool call or a gRPC method). */
export function isHttpAction(view: RequestView): boolean {
  return actionKind(view) === "http";
}

/**
 * Sets `out[0]` and `out[1]` to both lanes after "destination METHOD " (an HTTP action's label up
 * to its path): from the key's memo when that destination and method were seen lately, else fed
 * and remembered.
 */
export function seedLanes(key: HashKey, destination: string, method: string, out: Int32Array): void {
  const memo = key.memo;
  const at = MEMO_STRIDE * memoSlot(destination, method);
  // An empty method is never remembered, so an empty slot cannot match.
  if (memo[at + 1] === method && memo[at] === destination && method !== "") {
    out[0] = memo[at + 2] as number;
    out[1] = memo[at + 3] as number;
    return;
  }
  // Rare (a destination and method not seen lately).
  lanes[0] = key.a;
  lanes[1] = key.b;
  feedText(destination, 0, destination.length);
  feedChar(32);
  feedText(method, 0, method.length);
  feedChar(32);
  const a = lanes[0];
  const b = lanes[1];
  if (destination.length + method.length <= MAX_MEMO_CHARS) {
    memo[at] = destination;
    memo[at + 1] = method;
    memo[at + 2] = a;
    memo[at + 3] = b;
  }
  out[0] = a;
  out[1] = b;
}

/**
 * Feeds the first `length` characters of `path` to both lanes (`a`, `b`: their state before it)
 * as `pathPattern` writes them, and combines the lanes. Segment by segment: the inner loop holds
 * only what a character needs (the lanes, the position, whether a digit was seen), so TurboFan
 * keeps it all in registers; with the segment's start and the state before it live in the same
 * loop, it spilled the lanes to the stack on every character (callgrind: a third fewer
 * instructions per path this way). An id-like segment (`isIdLike`) is taken back and "*" fed
 * instead. (In cluster mode other requests can be judged between a request's judge and its
 * record, so observeChecked comes this way too: it is kept fast.)
 */
function pathHash(path: string, length: number, a: number, b: number): number {
  let start = 0;
  for (;;) {
    let i = start;
    let x = a;
    let y = b;
    let digit = false;
    while (i < length) {
      const c = path.charCodeAt(i);
      if (c === 47) break;
      // Upper bound first: most path characters are letters, which fail it at once.
      if (c <= 57 && c >= 48) digit = true;
      x = Math.imul(x ^ c, FNV_PRIME);
      y = Math.imul(y ^ c, FNV_PRIME);
      i++;
    }
    if (isIdLike(path, start, i - start, digit)) {
      x = Math.imul(a ^ 42, FNV_PRIME);
      y = Math.imul(b ^ 42, FNV_PRIME);
    }
    if (i >= length) return combineLanes(x, y);
    a = Math.imul(x ^ 47, FNV_PRIME);
    b = Math.imul(y ^ 47, FNV_PRIME);
    start = i + 1;
  }
}

/** An action key from both lanes as the pipeline's pass over the path left them (see `actionHash`). */
export function combineLanes(a: number, b: number): number {
  return (a >>> 6) * 0x4000000 + (b >>> 6);
}

/** An MCP tool call's or a gRPC method's key (see {@link actionHash}). */
function otherActionHash(key: HashKey, view: RequestView): number {
  lanes[0] = key.a;
  lanes[1] = key.b;
  feedText(view.destination, 0, view.destination.length);
  feedChar(32);
  if (view.mcp_tool !== "") {
    feedText("mcp ", 0, 4);
    feedText(view.mcp_tool, 0, view.mcp_tool.length);
  } else {
    feedText("grpc /", 0, 6);
    feedText(view.grpc_service, 0, view.grpc_service.length);
    feedChar(47);
    feedText(view.grpc_method, 0, view.grpc_method.length);
  }
  return combine();
}

/** The readable form of an action, e.g. "payments GET /v1/payments/*" or "change-mgmt mcp create_change". */
export function actionLabel(view: RequestView): string {
  switch (actionKind(view)) {
    case "mcp": return `${view.destination} mcp ${view.mcp_tool}`;
    case "grpc": return `${view.destination} grpc /${view.grpc_service}/${view.grpc_method}`;
    case "http": return `${view.destination} ${view.method} ${pathPattern(view.path_only)}`;
  }
}

/** A path with its id-like segments (a digit in them, or longer than 24 characters; not an API version such as v1) as "*". */
export function pathPattern(path: string): string {
  return path.split("/").map((segment) => isIdSegment(segment, 0, segment.length) ? "*" : segment).join("/");
}

/** The hash of any label (an accepted action or network, a persisted baseline). */
export function labelHash(key: HashKey, label: string): number {
  lanes[0] = key.a;
  lanes[1] = key.b;
  feedText(label, 0, label.length);
  return combine();
}

/** The network prefixes source networks are learned at. */
export interface NetworkPrefixes { ipv4: number; ipv6: number }

/** The network label of anything that is not a plain IPv4 or IPv6 literal (and of ""). */
export const OTHER_NETWORK = "other";

/**
 * The source network's key: the hash of `networkLabel(ip)`, or of OTHER_NETWORK for anything that
 * is not an address. A plain IPv4 literal is hashed in place, without building its label.
 */
export function networkHash(key: HashKey, ip: string, prefixes: NetworkPrefixes): number {
  const ipv4 = ipv4NetworkHash(key, ip, prefixes.ipv4);
  return ipv4 >= 0 ? ipv4 : labelHash(key, networkLabel(ip, prefixes) ?? OTHER_NETWORK);
}

/**
 * The key of an IPv4 address's network: the hash of `networkLabel(ip)` ("10.1.2.0/24"), read and
 * hashed character by character, without building the label. -1 for anything that is not a
 * plain dotted-quad IPv4 literal (IPv6, garbage): the caller takes the slow way then.
 */
export function ipv4NetworkHash(key: HashKey, ip: string, bits: number): number {
  const masked = ipv4Network(ip, bits);
  return masked < 0 ? -1 : ipv4NetworkKey(key, masked, bits);
}

/**
 * The network of a plain dotted-quad IPv4 literal, masked to `bits` (an unsigned 32-bit number),
 * read in place; -1 for anything else (IPv6, garbage).
 */
function ipv4Network(ip: string, bits: number): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let parts = 0;
  const length = ip.length;
  for (let i = 0; i <= length; i++) {
    const c = i < length ? ip.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || octet > 255 || parts === 4) return -1;
      value = value * 256 + octet;
      parts++;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      octet = octet * 10 + c - 48;
      digits++;
    } else {
      return -1;
    }
  }
  if (parts !== 4) return -1;
  return bits === 0 ? 0 : (value & (0xffffffff << (32 - bits))) >>> 0;
}

/** The key of a masked IPv4 network (`ipv4Network`): the hash of its label, digit by digit. */
function ipv4NetworkKey(key: HashKey, masked: number, bits: number): number {
  lanes[0] = key.a;
  lanes[1] = key.b;
  feedDecimal(masked >>> 24);
  feedChar(46);
  feedDecimal((masked >>> 16) & 0xff);
  feedChar(46);
  feedDecimal((masked >>> 8) & 0xff);
  feedChar(46);
  feedDecimal(masked & 0xff);
  feedChar(47);
  feedDecimal(bits);
  return combine();
}

/** Feeds a number below 1000 as its decimal digits, as String(n) writes them. */
function feedDecimal(n: number): void {
  if (n >= 100) feedChar(48 + Math.floor(n / 100));
  if (n >= 10) feedChar(48 + Math.floor(n / 10) % 10);
  feedChar(48 + n % 10);
}

/**
 * The network an address belongs to, as CIDR text ("10.1.2.0/24", "2001:db8:0:1::/64"); undefined
 * for anything that is not an address. Allocates: callers on the hot path keep the result per
 * address (see Baselines' network cache) rather than calling this per request.
 */
export function networkLabel(ip: string, prefixes: NetworkPrefixes): string | undefined {
  const v4 = parseIpv4(ip);
  if (v4 !== undefined) {
    const bits = prefixes.ipv4;
    const masked = bits === 0 ? 0 : (v4 & (0xffffffff << (32 - bits))) >>> 0;
    return `${[24, 16, 8, 0].map((s) => String((masked >>> s) & 0xff)).join(".")}/${bits}`;
  }
  const v6 = parseIpv6(ip);
  if (v6 === undefined) return undefined;
  const bits = prefixes.ipv6;
  const groups = v6.map((g, i) => {
    const keep = Math.max(0, Math.min(16, bits - i * 16));
    return keep === 0 ? 0 : g & (0xffff << (16 - keep)) & 0xffff;
  });
  return `${compressIpv6(groups)}/${bits}`;
}

function parseIpv4(ip: string): number | undefined {
  const parts = ip.split(".");
  if (parts.length !== 4) return undefined;
  let out = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    out = out * 256 + n;
  }
  return out;
}

function parseIpv6(ip: string): number[] | undefined {
  const text = ip.startsWith("[") && ip.endsWith("]") ? ip.slice(1, -1) : ip;
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(":")) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const part = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    const pieces = s.split(":");
    for (const [i, piece] of pieces.entries()) {
      if (i === pieces.length - 1 && piece.includes(".")) {
        const v4 = parseIpv4(piece);
        if (v4 === undefined) return undefined;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return undefined;
        out.push(parseInt(piece, 16));
      }
    }
    return out;
  };
  const head = part(halves[0] ?? "");
  const tail = halves.length === 2 ? part(halves[1] ?? "") : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

function compressIpv6(groups: number[]): string {
  // The longest run of zero groups (two or more) becomes "::" (RFC 5952).
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength && j - i >= 2) { bestStart = i; bestLength = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}
