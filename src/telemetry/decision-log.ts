// The one decision line per Check, written straight to the logger's destination. A pino `info`
// call with this many fields costs about 5 µs (hot-path.md), as much as the whole decision; this
// builds the same JSON line (same level, time, bindings and msg as pino would write) with one
// JSON.stringify per value. Nothing here may carry a secret: callers pass fingerprints (several
// comma-joined when a request presented several), identity problem codes, paths
// without their query, and reasons written for the caller.

import { pino, type Logger } from "pino";
import { LineWriter } from "./line-writer.js";

export interface DecisionLine {
  decision_id: string;
  caller: string;
  credential: string;
  method: string;
  /** The Host the caller sent (shown, never trusted). */
  host: string;
  /** The workload the request was judged under ("" when none could be determined). */
  destination: string;
  path: string;
  tool: string;
  context: Record<string, string>;
  outcome: string;
  rule: string;
  reason: string;
  /** Codes of the caller's identity problems (IdentityProblemCode); [] when none. */
  identity_problems: readonly string[];
  latency_us: number;
  /** Version of the policy that judged ("" when none was consulted: a malformed request). */
  policy_version: string;
  /** Controls the deciding rule enforces; [] when none. */
  controls: readonly string[];
  /** For a refusal, every rule that matched, most restrictive first; [] for an allow. */
  matched_rules: readonly string[];
  /** Would-be outcome and rule had the shadow rules been enforced; "" when the same as the answer. */
  shadow_outcome: string;
  shadow_rule: string;
  /** Dry run: true when a refusal was answered with allow; would_* say what it would have been. */
  dry_run: boolean;
  would_outcome: string;
  would_rule: string;
}

export type DecisionLog = ((line: DecisionLine) => void) & { close(): Promise<void> };

interface Writable { write(chunk: string): unknown; fd?: unknown }

/**
 * A writer for `logger`'s destination, or undefined when info lines are disabled (then the Check
 * path pays nothing). The line has pino's shape: level, time, the logger's bindings, fields, msg.
 */
export function createDecisionLog(logger: Logger): DecisionLog | undefined {
  if (!logger.isLevelEnabled("info")) return undefined;
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as Writable | undefined;
  if (stream === undefined || typeof stream.write !== "function") {
    return Object.assign((line: DecisionLine) => { logger.info(line, "decision"); }, { close: () => Promise.resolve() });
  }
  const bindings = JSON.stringify(logger.bindings()).slice(1, -1);
  const prefix = bindings === "" ? "" : `,${bindings}`;
  const s = quote;
  const clock = isoClock();
  const known = knownPlain();
  /** The line's text, as written; `now` is when the decision was recorded. */
  const lineText = (line: DecisionLine, now: number): string => {
    // Nearly every line: no value needs escaping, so each is written between quotes as it is, with
    // no quoted copy of its own (15% less CPU for the line, bench/record.bench.ts). Same bytes.
    // Values that repeat from line to line (caller, host, rule, reason, …) are looked up among
    // those already found plain; values new on every line (id, credential, path) are tested.
    if (plain(line.decision_id) && known(line.caller) && plain(line.credential) && known(line.method) && known(line.host)
      && known(line.destination) && plain(line.path) && known(line.tool) && known(line.outcome) && known(line.rule) && known(line.reason)
      && known(line.policy_version) && known(line.shadow_outcome) && known(line.shadow_rule) && known(line.would_outcome) && known(line.would_rule)) {
      return (
        `{"level":"info","time":"${clock(now)}"${prefix},"decision_id":"${line.decision_id}","caller":"${line.caller}"`
        + `,"credential":"${line.credential}","method":"${line.method}","host":"${line.host}","destination":"${line.destination}","path":"${line.path}"`
        + `,"tool":"${line.tool}","context":${JSON.stringify(line.context)},"outcome":"${line.outcome}","rule":"${line.rule}"`
        + `,"reason":"${line.reason}","identity_problems":${line.identity_problems.length === 0 ? "[]" : JSON.stringify(line.identity_problems)}`
        + `,"latency_us":${line.latency_us},"policy_version":"${line.policy_version}","controls":${list(line.controls)}`
        + `,"matched_rules":${list(line.matched_rules)},"shadow_outcome":"${line.shadow_outcome}","shadow_rule":"${line.shadow_rule}"`
        + `,"dry_run":${line.dry_run ? "true" : "false"},"would_outcome":"${line.would_outcome}","would_rule":"${line.would_rule}","msg":"decision"}\n`
      );
    }
    return (
      `{"level":"info","time":"${clock(now)}"${prefix},"decision_id":${s(line.decision_id)},"caller":${s(line.caller)}`
      + `,"credential":${s(line.credential)},"method":${s(line.method)},"host":${s(line.host)},"destination":${s(line.destination)},"path":${s(line.path)}`
      + `,"tool":${s(line.tool)},"context":${JSON.stringify(line.context)},"outcome":${s(line.outcome)},"rule":${s(line.rule)}`
      + `,"reason":${s(line.reason)},"identity_problems":${line.identity_problems.length === 0 ? "[]" : JSON.stringify(line.identity_problems)}`
      + `,"latency_us":${line.latency_us},"policy_version":${s(line.policy_version)},"controls":${list(line.controls)}`
      + `,"matched_rules":${list(line.matched_rules)},"shadow_outcome":${s(line.shadow_outcome)},"shadow_rule":${s(line.shadow_rule)}`
      + `,"dry_run":${line.dry_run ? "true" : "false"},"would_outcome":${s(line.would_outcome)},"would_rule":${s(line.would_rule)},"msg":"decision"}\n`
    );
  };
  // The logger's own LineWriter (stdout in production) takes decision lines as they are, batched
  // and dropped-and-counted like every other line; closing the decision log only flushes it, the
  // logger goes on. Another destination on a file descriptor gets a batched writer of its own.
  if (stream instanceof LineWriter) {
    return deferredLog(lineText, stream, () => new Promise((resolve) => { stream.flush(() => { resolve(); }); }));
  }
  if (typeof stream.fd === "number") {
    const own = new LineWriter(stream.fd);
    return deferredLog(lineText, own, () => own.close());
  }
  // Any other destination (tests) gets each line as it is recorded: its write may throw, and a
  // throw in the record phase turns the answer into a fail-closed denial (transport/envoy/server.ts).
  const sink = stream as Writable & { close?: () => Promise<void> };
  const log = (line: DecisionLine): void => { sink.write(lineText(line, Date.now())); };
  return Object.assign(log, { close: async () => { await sink.close?.(); } });
}

/** Lines recorded but not yet written; at this many they are written at once (bounded memory). */
export const MAX_PENDING_DECISION_LINES = 256;

/**
 * A decision log for a LineWriter, which never throws: recording a decision keeps the line's
 * fields and the time, and the text is built and written once the current turn of the event loop
 * is over (setImmediate), after the answers of that turn were handed to grpc-js. So the text
 * (about 3 µs a line, bench/record.bench.ts) is off the path Envoy waits on (design.md: side
 * effects leave the hot path without slowing it and without being lost). Same bytes, same order,
 * stamped with the time of the record; a line waits at most one turn, and the
 * MAX_PENDING_DECISION_LINES-th writes every waiting line at once. A line whose text cannot be
 * built (nothing known does that) is counted as a dropped line, never thrown.
 */
function deferredLog(
  lineText: (line: DecisionLine, now: number) => string,
  writer: LineWriter,
  closeSink: () => Promise<void>,
): DecisionLog {
  let pending: DecisionLine[] = [];
  let times: number[] = [];
  let scheduled = false;
  const writePending = (): void => {
    scheduled = false;
    const lines = pending;
    const at = times;
    if (lines.length === 0) return;
    pending = [];
    times = [];
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      if (line === undefined) continue;
      let text: string;
      try {
        text = lineText(line, at[i] ?? Date.now());
      } catch {
        writer.countDropped(1);
        continue;
      }
      writer.write(text);
    }
  };
  const log = (line: DecisionLine): void => {
    pending.push(line);
    times.push(Date.now());
    if (pending.length >= MAX_PENDING_DECISION_LINES) {
      writePending();
    } else if (!scheduled) {
      scheduled = true;
      setImmediate(writePending);
    }
  };
  return Object.assign(log, {
    close: async () => {
      writePending();
      await closeSink();
    },
  });
}

/** Characters JSON must escape (and U+2028/9, which some log shippers choke on). */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u2028\u2029]/;

function list(values: readonly string[]): string {
  return values.length === 0 ? "[]" : JSON.stringify(values);
}

/** Whether `value` goes into a JSON string literal as it is. */
function plain(value: string): boolean {
  return !NEEDS_ESCAPE.test(value);
}

/** Values kept by knownPlain: enough for a sidecar's callers, hosts and rules; emptied when full. */
const MAX_KNOWN_PLAIN = 4096;
/** Longer values are tested every time rather than kept. */
const MAX_KNOWN_PLAIN_LENGTH = 256;

/**
 * `plain` for values that repeat from line to line: a value once found plain is remembered, and a
 * lookup (its hash is kept in the string, which for these is the same string every time) costs a
 * fraction of a regular-expression test. Only plain values are kept, so a kept value is exactly
 * one that would test plain; memory is bounded by MAX_KNOWN_PLAIN values of bounded length.
 */
function knownPlain(): (value: string) => boolean {
  const seen = new Set<string>();
  return (value) => {
    if (value === "" || seen.has(value)) return true;
    if (!plain(value)) return false;
    if (value.length <= MAX_KNOWN_PLAIN_LENGTH) {
      if (seen.size >= MAX_KNOWN_PLAIN) seen.clear();
      seen.add(value);
    }
    return true;
  };
}

/** A JSON string literal; most values (IDs, hosts, rule names) need no escaping at all. */
function quote(value: string): string {
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
}

/**
 * The ISO-8601 time pino's isoTime writes, without a Date.toISOString per line (about 1.3 µs on
 * Node 20): the part up to the seconds is rebuilt only when the second changes.
 */
function isoClock(): (now: number) => string {
  let second = -1;
  let prefix = "";
  return (now) => {
    const s = Math.floor(now / 1000);
    if (s !== second) {
      second = s;
      prefix = new Date(s * 1000).toISOString().slice(0, 20);
    }
    const ms = now - s * 1000;
    return `${prefix}${ms < 10 ? "00" : ms < 100 ? "0" : ""}${ms}Z`;
  };
}
