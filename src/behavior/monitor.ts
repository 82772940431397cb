// Behaviour baselines (issue #12): per calling identity, what it normally does at this sidecar —
// its actions, its source networks, its request rate (EWMA per window with a burst allowance) and
// how many destinations it reaches per window — learned during a learning period from its first
// request, then enforced. Anomalies become `behavior` signals in the shared store, so every
// sidecar sees them at its next request.
//
// Cost on the Check path (design §2): `actionKey` hashes the view's own strings (no string is
// built; the destination and method only when not seen lately), `networkKey` is one Map lookup
// by the source address, `check` is one Map lookup (the caller's baseline) and two probes of that
// baseline's key tables, which live in one Float64Array (table.ts), and `observe` writes
// references and numbers into a preallocated ring. Everything else — learning,
// the rate and fan-out windows, labels, signal writes, persistence — runs off the hot path, in
// `drain`, shortly after.
//
// Bounded: maxCallers in total (least recently seen forgotten first), maxActionsPerCaller and
// maxNetworksPerCaller per baseline, a ring of maxQueued observations (dropped and counted past
// it), at most 64 destinations counted per caller and window, 32 pending (unaccepted) items.

import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { BehaviorConfig } from "../config/index.js";
import { VigilError } from "../errors/index.js";
import type { PrincipalHints, RequestView } from "../model/index.js";
import type { SignalStore } from "../signals/index.js";
import type { Metrics } from "../telemetry/metrics.js";
import {
  actionHash, actionLabel, combineLanes, isHttpAction, labelHash, networkHash, networkLabel, newHashKey, OTHER_NETWORK, seedLanes, type HashKey, type NetworkPrefixes,
} from "./action.js";
import { BLOCK_ALIGN, KeyTables } from "./table.js";

export const ANOMALY_KINDS = ["new_action", "new_source_network", "rate_spike", "fan_out"] as const;
export type AnomalyKind = (typeof ANOMALY_KINDS)[number];

/** Source of the `behavior` signals this module writes. */
export const BEHAVIOR_SIGNAL_SOURCE = "vigil/behavior";

const NONE: readonly string[] = Object.freeze([]);
/** A 52-bit number (a key, a block identity, a stamp) kept in a hint as two small integers: high × SPLIT + low. */
const SPLIT = 2 ** 26;
/**
 * The high 26 bits of a non-negative integer below 2^52: a multiplication by a power of two (exact)
 * and a truncation, which TurboFan compiles to two instructions (Math.floor of a quotient and `%`
 * cost calls on the way, callgrind: about 200 instructions per Check where the hint is rewritten).
 */
function highOf(n: number): number {
  return (n * (1 / SPLIT)) | 0;
}

/**
 * The low 26 bits, given the high ones. Truncated to an int32 (it is one: the `| 0` changes no
 * value), so that V8 stores it as a small integer: the difference of two doubles is a heap number
 * to V8's interpreter, and one such store turns the hint field into a boxed double for good (a
 * separate object to read and write on every Check; TurboFan's code for `check`, issue #12).
 */
function lowOf(n: number, high: number): number {
  return (n - high * SPLIT) | 0;
}

/** Check tickets wrap at 2^30, so that they stay small integers. */
const TICKETS = 0x3fffffff;

/** Stamps of every monitor in the process (see #stampHigh), never reused. */
let stamps = 0;
const LIVE_ACTION: readonly string[] = Object.freeze(["new_action"]);
const LIVE_NETWORK: readonly string[] = Object.freeze(["new_source_network"]);
const LIVE_BOTH: readonly string[] = Object.freeze(["new_action", "new_source_network"]);
/** #checkedBlock when check knew from a hint that the caller has a baseline holding the request's keys. */
const KNOWN_FROM_HINT = 0;

const MAX_WINDOW_DESTINATIONS = 64;
const MAX_PENDING = 32;
const MAX_REASON = 1024;
/**
 * Longest action label a baseline learns. A longer one (a path of hundreds of short segments, a
 * huge tool name) is never learned, so it stays an anomaly, and is shown cut short: a caller
 * cannot make a baseline hold megabytes (maxActionsPerCaller × label length).
 */
export const MAX_ACTION_LABEL = 512;
/** The observation ring's layout (BehaviorMonitor's #ringRefs and #ringNumbers). */
const RING_REFS = 3;
const RING_NUMBERS = 3;
const CHECKED_ACTION = 0;
const CHECKED_NETWORK = 1;
const RING_NUMBERS_AT = 2;
/** Source addresses whose network key is kept (emptied when full). */
const MAX_NETWORK_CACHE = 4096;
/** Longer "addresses" (not an IP literal: a pipe path, garbage) are not kept. */
const MAX_CACHED_ADDRESS_LENGTH = 64;

interface Pending { kind: "action" | "network"; label: string; at: number }

interface Baseline {
  readonly caller: string;
  firstSeen: number;
  lastSeen: number;
  /** This baseline's block in the monitor's KeyTables: its action and network keys. Moves as they grow. */
  block: number;
  /** The labels of the keys in the block, in the order learned (reports and persistence). */
  actions: string[];
  networks: string[];
  /** Requests per window, exponentially weighted. */
  ewma: number;
  window: number;
  windowCount: number;
  /** Distinct destinations this sidecar saw the caller reach in `window`. */
  destinations: Set<string>;
  /** Most distinct destinations in one window while learning (mesh-wide when shared). */
  fanoutMax: number;
  /** Per anomaly kind: until when the last report stands (no new report before, unless new). */
  reportedUntil: Record<AnomalyKind, number>;
  /** Unknown actions and networks seen since learning ended, for `behavior show` and accept. */
  pending: Map<number, Pending>;
  /** The window whose Map position was last refreshed (LRU at window granularity). */
  touched: number;
}

/** What an operator sees of a baseline (GET /v1/behavior?caller=, `vigil behavior show`). */
export interface BaselineReport {
  caller: string;
  firstSeen: string;
  lastSeen: string;
  learningUntil: string;
  learning: boolean;
  actions: string[];
  networks: string[];
  /** Requests per window (windowMs), exponentially weighted. */
  rate: number;
  windowMs: number;
  /** Most distinct destinations in one window while learning. */
  fanoutMax: number;
  /** New actions and networks seen since learning ended, not accepted yet. */
  pending: { kind: "action" | "network"; label: string; at: string }[];
}

export interface BehaviorSummary {
  enabled: boolean;
  callers: number;
  learning: number;
  maxCallers: number;
  learningPeriodMs: number;
  windowMs: number;
}

/** The persisted form of one baseline (labels, never hashes: the hash key stays in the process). */
export interface SavedBaseline {
  caller: string;
  firstSeen: number;
  lastSeen: number;
  actions: string[];
  networks: string[];
  ewma: number;
  fanoutMax: number;
}

/** How a sidecar shares the destinations it saw a caller reach (cluster mode, mesh.ts). */
export interface FanoutShare {
  /** Tells the mesh what this sidecar saw `caller` reach in `window`. */
  publish(caller: string, window: number, destinations: readonly string[]): void;
  /** Distinct destinations the whole mesh saw `caller` reach in `window`, this sidecar's included. */
  distinct(caller: string, window: number, local: ReadonlySet<string>): number;
}

export interface BehaviorDeps {
  config: BehaviorConfig;
  store: SignalStore;
  logger: Logger;
  metrics?: Metrics | undefined;
  now?: () => number;
  /** Names this sidecar in the reasons it writes. */
  instance?: string;
  /** Milliseconds between an observation and its drain (default 5). */
  drainDelayMs?: number;
}

/** What accept takes: labels as `show` prints them; with neither list, every pending item. */
export interface AcceptRequest { caller: string; actions?: string[] | undefined; networks?: string[] | undefined }

export interface AcceptResult { caller: string; actions: string[]; networks: string[]; cleared: string[] }

type Report = { kinds: Set<AnomalyKind>; reasons: string[]; at: number };

export class BehaviorMonitor {
  // The Check path's state comes first: V8 lays an instance's fields out in the order they are
  // declared, so what one Check reads and writes (check, observe) shares two or three cache lines.
  // Between two Checks the rest of the Check (the policy, the signal index) evicts them from the
  // first-level cache, so every line the path touches is a miss per Check (callgrind's cache
  // model, issue #12): hence few objects, and the ring in two arrays rather than six.
  readonly enabled: boolean;
  /**
   * This monitor's stamp (high and low 26 bits), renewed from `stamps` whenever a baseline is
   * forgotten: a hint that a caller's baseline holds an action and a network (PrincipalHints.known*)
   * stands only while the stamp it recorded is the monitor's.
   */
  #stampHigh = 0;
  #stampLow = 0;
  #closed = false;
  #head = 0;
  #count = 0;
  /** Slots of the observation ring (maxQueued; 0 when disabled). */
  readonly #ringSize: number;
  readonly #excludeRules: Set<string>;
  readonly #key: HashKey = newHashKey();
  /**
   * Caller → its baseline's block in #tables, least recently seen first. The Check path needs
   * only the block (a small integer held in the Map's own entry), not the Baseline object.
   */
  readonly #baselines = new Map<string, number>();
  readonly #tables = new KeyTables();
  /** Source address → network key: the hot path looks an address up instead of parsing it. */
  readonly #networkCache = new Map<string, number>();
  /**
   * What the last `check` found, for the `observe` of the same request (the record phase follows
   * its judge, usually with no other Check in between): the caller's block (-1: none; observe asks
   * only whether there is one, so KNOWN_FROM_HINT stands for a block check did not read) and whether
   * the action and network were both in it. Used only when caller, action and network are the ones
   * checked (the keys are at the head of #ringNumbers); otherwise observe looks them up itself.
   */
  #checkedCaller = "";
  /** Counts checks (wrapping at 2^30): which one the keys at the head of #ringNumbers are from (see `ticket`). */
  #checks = 0;
  #checkedBlock = -1;
  #checkedKnown = false;
  /** seedPath's lanes and the request they are for: both lanes, the path length hashed (-1: not finished), and pathProblem's scratch. */
  readonly #pathLanes = new Int32Array(5);
  #seededDestination = "";
  #seededMethod = "";
  #seededPath = "";
  /**
   * The observation ring's references, RING_REFS per slot: the caller, the view (only when the
   * drain must build a label from it) and the destination. Preallocated; references only.
   */
  readonly #ringRefs: (string | RequestView | undefined)[];
  /**
   * Numbers, unboxed: first the action and network keys `check` looked at (CHECKED_*), then
   * RING_NUMBERS per ring slot: the action key, the network key and the time. Keys are 52-bit
   * numbers: as object fields each write would box a new heap number in this long-lived object,
   * an old-to-new reference every scavenge then visits (callgrind: ~800 instructions per Check).
   */
  readonly #ringNumbers: Float64Array;
  #timer: NodeJS.Timeout | undefined;

  readonly #config: BehaviorConfig;
  readonly #store: SignalStore;
  readonly #log: Logger;
  readonly #metrics: Metrics | undefined;
  readonly #now: () => number;
  readonly #instance: string;
  readonly #drainDelayMs: number;
  readonly #prefixes: NetworkPrefixes;
  readonly #excludeExact: Set<string>;
  readonly #excludePrefixes: string[];
  readonly #excludeOneSegment: string[];
  /** Block offset / BLOCK_ALIGN → the Baseline whose block it is (the drain's and operators' way in). */
  readonly #owners: (Baseline | undefined)[] = [];
  #share: FanoutShare | undefined;
  #dropped = 0;
  #dirty = false;
  /** Signal writes in flight, one chain so a caller's reports land in order. */
  #writes: Promise<void> = Promise.resolve();
  #writesQueued = 0;

  constructor(deps: BehaviorDeps) {
    const config = deps.config;
    this.#config = config;
    this.enabled = config.enabled;
    this.#store = deps.store;
    this.#log = deps.logger;
    this.#metrics = deps.metrics;
    this.#now = deps.now ?? Date.now;
    this.#instance = deps.instance ?? "vigil";
    this.#drainDelayMs = deps.drainDelayMs ?? 5;
    this.#prefixes = { ipv4: config.ipv4Prefix, ipv6: config.ipv6Prefix };
    this.#excludeExact = new Set(config.excludeCallers.filter((p) => !p.endsWith("/**") && !p.endsWith("/*")));
    this.#excludePrefixes = config.excludeCallers.filter((p) => p.endsWith("/**")).map((p) => p.slice(0, -2));
    this.#excludeOneSegment = config.excludeCallers.filter((p) => p.endsWith("/*") && !p.endsWith("/**")).map((p) => p.slice(0, -1));
    this.#excludeRules = new Set(config.excludeRules);
    this.#renewStamp();
    const size = this.enabled ? config.maxQueued : 0;
    this.#ringSize = size;
    this.#ringRefs = new Array<string | RequestView | undefined>(RING_REFS * size).fill("");
    this.#ringNumbers = new Float64Array(RING_NUMBERS_AT + RING_NUMBERS * size);
    if (deps.metrics !== undefined) {
      for (const kind of ANOMALY_KINDS) deps.metrics.behaviorAnomalies.labels(kind).inc(0);
    }
  }

  /** A stamp no monitor in the process had: every known-pair hint recorded before fails. */
  #renewStamp(): void {
    const stamp = ++stamps;
    this.#stampHigh = highOf(stamp);
    this.#stampLow = lowOf(stamp, this.#stampHigh);
  }

  /** Shares fan-out with the rest of the mesh (cluster mode). */
  attachShare(share: FanoutShare): void {
    this.#share = share;
  }

  // ---- The Check path ------------------------------------------------------------------------

  /** The action key of a request (hash of its label, computed without building it). */
  actionKey(view: RequestView): number {
    return this.enabled ? actionHash(this.#key, view) : 0;
  }

  /**
   * The source network key of an address, looked up by the address: the decoder hands the same
   * string for an address it saw recently, whose hash V8 then keeps, so a lookup costs a fraction
   * of parsing the address again (callgrind, issue #12). A new address is parsed once (an IPv4
   * literal in place, anything else through its label).
   */
  networkKey(ip: string): number {
    if (!this.enabled) return 0;
    const cached = this.#networkCache.get(ip);
    if (cached !== undefined) return cached;
    const key = networkHash(this.#key, ip, this.#prefixes);
    if (ip.length <= MAX_CACHED_ADDRESS_LENGTH) {
      if (this.#networkCache.size >= MAX_NETWORK_CACHE) this.#networkCache.clear();
      this.#networkCache.set(ip, key);
    }
    return key;
  }

  /**
   * The anomalies this very request shows against the caller's enforced baseline: an action or a
   * source network it never used. Empty while the caller is learning, unknown or excluded. Rate
   * and fan-out are judged off the hot path (drain) and reach policies through the store.
   */
  check(caller: string, action: number, network: number, at: number, hints?: PrincipalHints): readonly string[] {
    if (!this.enabled || caller === "") return NONE;
    this.#checks = (this.#checks + 1) & TICKETS;
    this.#checkedCaller = caller;
    const numbers = this.#ringNumbers;
    numbers[CHECKED_ACTION] = action;
    numbers[CHECKED_NETWORK] = network;
    // The steady state: the caller repeats an action from a network its baseline was last found to
    // hold, and no baseline was forgotten since. Known: nothing to flag, and nothing to read but the
    // hints, on the identity memo entry the Check has just read.
    if (hints !== undefined && hints.knownStampLow === this.#stampLow && hints.knownStampHigh === this.#stampHigh
      && hints.knownActionHigh * SPLIT + hints.knownActionLow === action && hints.knownNetworkHigh * SPLIT + hints.knownNetworkLow === network) {
      this.#checkedBlock = KNOWN_FROM_HINT;
      this.#checkedKnown = true;
      return NONE;
    }
    const tables = this.#tables;
    // The caller's block: from the hint on its identity memo entry when the block still holds the
    // identity the hint recorded (one line, the block's header, which the probes read anyway), else
    // from the Map (a bucket and an entry: cold lines nothing else in the Check reads), recorded
    // in the hint for its next Check. An excluded caller is never admitted, so has no block.
    let block: number | undefined;
    const hinted = hints?.baselineBlock ?? -1;
    if (hints !== undefined && hinted >= 0 && tables.ident(hinted) === hints.baselineIdentHigh * SPLIT + hints.baselineIdentLow) {
      block = hinted;
    } else {
      block = this.#baselines.get(caller);
      if (hints !== undefined && block !== undefined) {
        const ident = tables.ident(block);
        const high = highOf(ident);
        hints.baselineBlock = block | 0; // a small integer field (see lowOf)
        hints.baselineIdentHigh = high;
        hints.baselineIdentLow = lowOf(ident, high);
      }
    }
    if (block === undefined) {
      this.#checkedBlock = -1;
      this.#checkedKnown = false;
      return NONE;
    }
    this.#checkedBlock = block;
    const newAction = !tables.hasAction(block, action);
    const newNetwork = !tables.hasNetwork(block, network);
    this.#checkedKnown = !newAction && !newNetwork;
    if (hints !== undefined && !newAction && !newNetwork) {
      const actionHigh = highOf(action);
      const networkHigh = highOf(network);
      hints.knownActionHigh = actionHigh;
      hints.knownActionLow = lowOf(action, actionHigh);
      hints.knownNetworkHigh = networkHigh;
      hints.knownNetworkLow = lowOf(network, networkHigh);
      hints.knownStampHigh = this.#stampHigh;
      hints.knownStampLow = this.#stampLow;
    }
    if (at < tables.enforcedFrom(block)) return NONE;
    if (newAction) return newNetwork ? LIVE_BOTH : LIVE_ACTION;
    return newNetwork ? LIVE_NETWORK : NONE;
  }

  /**
   * The Check path in one call (the pipeline's): the request's action and network keys, then
   * `check`. The keys stay here, at the head of #ringNumbers, for `observeChecked`: as numbers
   * passed out and back (the judgement's fields) each would be a heap number, two allocations and
   * unboxings per Check. `ticket` tells which check they are from.
   */
  checkRequest(caller: string, view: RequestView, at: number, hints?: PrincipalHints): readonly string[] {
    if (!this.enabled || caller === "") return NONE;
    const lanes = this.#pathLanes;
    // The key the pipeline's pass over the path finished (see seedPath), when it was for this very
    // request: the strings are the ones seeded (the same objects, so each compare is one), and the
    // pass reached the end of this path without a problem.
    const action = lanes[2] === view.path_only.length && view.path === this.#seededPath && view.method === this.#seededMethod
      && view.destination === this.#seededDestination && isHttpAction(view)
      ? combineLanes(lanes[0] ?? 0, lanes[1] ?? 0)
      : actionHash(this.#key, view);
    // The path may carry a query with a secret in it: not held past its request's check.
    this.#seededPath = "";
    return this.check(caller, action, this.networkKey(view.source_ip), at, hints);
  }

  /**
   * Starts an HTTP request's action key for the pipeline's one pass over the path (decision's
   * `pathProblem`, which feeds the path's pattern to these lanes as it checks the path): the lanes
   * after "destination METHOD ", from actionHash's memo. `checkRequest` then uses what the pass
   * left, if it finished, for this destination, method and path; otherwise it hashes the request
   * itself. Undefined when behaviour is off. The second pass over the path was the largest part
   * of the time behaviour added to a Check (about 0.12 µs of 0.2–0.45 on the bench machine);
   * hashing in the first costs about a tenth of that (BENCHMARKS.md, issue #12's ninth pass).
   */
  seedPath(destination: string, method: string, path: string): Int32Array | undefined {
    if (!this.enabled) return undefined;
    const lanes = this.#pathLanes;
    seedLanes(this.#key, destination, method, lanes);
    lanes[2] = -1;
    this.#seededDestination = destination;
    this.#seededMethod = method;
    this.#seededPath = path;
    return lanes;
  }

  /** The last check's ticket: a small integer for the judgement to hand back to `observeChecked`. */
  get ticket(): number {
    return this.#checks;
  }

  /**
   * `observe` for a request `checkRequest` judged under `ticket`: its keys are the ones kept when no
   * check came since (the record phase usually follows its judge at once); otherwise (another
   * request judged in between, or 2^30 of them) they are computed again from the view.
   */
  observeChecked(caller: string, view: RequestView, at: number, rule: string, ticket: number): void {
    if (!this.enabled) return;
    const numbers = this.#ringNumbers;
    if (ticket === this.#checks && caller === this.#checkedCaller) {
      this.observe(caller, view, numbers[CHECKED_ACTION] ?? 0, numbers[CHECKED_NETWORK] ?? 0, at, rule);
    } else {
      this.observe(caller, view, actionHash(this.#key, view), this.networkKey(view.source_ip), at, rule);
    }
  }

  /** Queues one decided request for learning and detection (the record phase). O(1), no allocation. */
  observe(caller: string, view: RequestView, action: number, network: number, at: number, rule: string): void {
    if (!this.enabled || this.#closed || caller === "" || view.destination === "") return;
    if (this.#excludeRules.size > 0 && this.#excludeRules.has(rule)) return;
    const size = this.#ringSize;
    if (this.#count === size) {
      this.#dropped++;
      this.#metrics?.behaviorDropped.inc();
      return;
    }
    // The baseline and what check found in it, when check just looked at this very request.
    const numbers = this.#ringNumbers;
    const checked = caller === this.#checkedCaller && action === numbers[CHECKED_ACTION] && network === numbers[CHECKED_NETWORK];
    const block = checked ? this.#checkedBlock : this.#baselines.get(caller) ?? -1;
    // An excluded caller is never admitted: a caller with a baseline needs no pattern matched.
    if (block < 0 && this.#excludedCaller(caller)) return;
    const slot = (this.#head + this.#count) % size;
    // Hold nothing of the request the drain will not need: in the steady state (a learned caller
    // doing what it does) only the caller's and the destination's strings (the identity's and the
    // route's, shared by the caller's requests) and numbers are queued, so no request object
    // outlives its Check (or burdens the young GC). The drain counts the destination into its
    // window (fan-out); the view is kept only for an action or network the baseline lacks, whose
    // label the drain must build.
    const known = block >= 0
      && (checked ? this.#checkedKnown : this.#tables.hasAction(block, action) && this.#tables.hasNetwork(block, network));
    const refs = this.#ringRefs;
    const ref = RING_REFS * slot;
    refs[ref] = caller;
    refs[ref + 1] = known ? undefined : view;
    refs[ref + 2] = view.destination;
    const number = RING_NUMBERS_AT + RING_NUMBERS * slot;
    numbers[number] = action;
    numbers[number + 1] = network;
    numbers[number + 2] = at;
    this.#count++;
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.drain();
      }, this.#drainDelayMs);
      this.#timer.unref();
    }
  }

  /** True for a rule whose decisions are neither learned nor flagged (behavior.excludeRules). */
  ruleExcluded(rule: string): boolean {
    return this.#excludeRules.size > 0 && this.#excludeRules.has(rule);
  }

  /** True for a caller the settings exclude from baselines. */
  excluded(caller: string): boolean {
    return this.#excludedCaller(caller);
  }

  #excludedCaller(caller: string): boolean {
    if (this.#excludeExact.has(caller)) return true;
    for (const prefix of this.#excludePrefixes) {
      if (caller === prefix.slice(0, -1) || caller.startsWith(prefix)) return true;
    }
    for (const prefix of this.#excludeOneSegment) {
      if (caller.startsWith(prefix) && caller.length > prefix.length && !caller.includes("/", prefix.length)) return true;
    }
    return false;
  }

  // ---- Off the hot path --------------------------------------------------------------------

  /** Folds every queued observation into its baseline and reports what stands out. */
  drain(): void {
    if (this.#count === 0) return;
    const reports = new Map<string, Report>();
    const size = this.#ringSize;
    const refs = this.#ringRefs;
    const numbers = this.#ringNumbers;
    while (this.#count > 0) {
      const slot = this.#head;
      const ref = RING_REFS * slot;
      const caller = refs[ref] as string;
      const view = refs[ref + 1] as RequestView | undefined;
      const destination = refs[ref + 2] as string;
      // Released at once: no request outlives its drain.
      refs[ref] = "";
      refs[ref + 1] = undefined;
      refs[ref + 2] = "";
      this.#head = (slot + 1) % size;
      this.#count--;
      const number = RING_NUMBERS_AT + RING_NUMBERS * slot;
      this.#fold(caller, view, destination, numbers[number] ?? 0, numbers[number + 1] ?? 0, numbers[number + 2] ?? 0, reports);
    }
    // Empty: the next observations go to the ring's first slots again, which the last ones left
    // in the CPU caches, rather than cycling through the whole ring (megabytes at the default
    // maxQueued) and evicting the Check's own data on the way.
    this.#head = 0;
    this.#dirty = true;
    for (const [caller, report] of reports) this.#report(caller, report);
  }

  /** One observation into its baseline; `view` is absent when observe found its action and network known. */
  #fold(caller: string, view: RequestView | undefined, destination: string, action: number, network: number, at: number, reports: Map<string, Report>): void {
    const config = this.#config;
    const window = Math.floor(at / config.windowMs);
    let baseline = this.#baseline(caller);
    if (baseline === undefined) {
      baseline = this.#admit(caller, at, window);
    } else if (baseline.touched !== window) {
      // Least recently seen first: re-inserting moves the caller to the end of the Map's order.
      this.#baselines.delete(caller);
      this.#baselines.set(caller, baseline.block);
      baseline.touched = window;
    }
    if (at > baseline.lastSeen) baseline.lastSeen = at;
    const learning = at < baseline.firstSeen + config.learningPeriodMs;

    // The rate window: close the one that ended (and the empty ones after it) into the EWMA.
    if (window > baseline.window) {
      const alpha = config.ewmaAlpha;
      baseline.ewma = alpha * baseline.windowCount + (1 - alpha) * baseline.ewma;
      const gaps = Math.min(window - baseline.window - 1, 1_000);
      if (gaps > 0) baseline.ewma *= (1 - alpha) ** gaps;
      baseline.window = window;
      baseline.windowCount = 0;
      baseline.destinations.clear();
    }
    if (window === baseline.window) baseline.windowCount++;

    // Fan-out: the destinations reached in this window, here and (shared) across the mesh.
    if (window === baseline.window && !baseline.destinations.has(destination) && baseline.destinations.size < MAX_WINDOW_DESTINATIONS) {
      baseline.destinations.add(destination);
      this.#share?.publish(caller, window, [...baseline.destinations]);
    }
    const fanout = this.#share?.distinct(caller, window, baseline.destinations) ?? baseline.destinations.size;

    // Without the view the action and network were known when observed (only an eviction in
    // between could make it otherwise): the rate and the fan-out are all there is to judge.
    if (view === undefined) {
      if (learning && fanout > baseline.fanoutMax) baseline.fanoutMax = fanout;
      if (!learning) this.#judgeVolume(reports, baseline, fanout, at);
      return;
    }
    const tables = this.#tables;
    if (learning) {
      if (!tables.hasAction(baseline.block, action) && baseline.actions.length < config.maxActionsPerCaller) {
        const label = actionLabel(view);
        if (label.length <= MAX_ACTION_LABEL) this.#learnAction(baseline, action, label);
      }
      if (!tables.hasNetwork(baseline.block, network) && baseline.networks.length < config.maxNetworksPerCaller) {
        this.#learnNetwork(baseline, network, networkLabel(view.source_ip, this.#prefixes) ?? OTHER_NETWORK);
      }
      if (fanout > baseline.fanoutMax) baseline.fanoutMax = fanout;
      return;
    }

    if (!tables.hasAction(baseline.block, action)) {
      const label = shortLabel(actionLabel(view));
      this.#remember(baseline, action, { kind: "action", label, at });
      this.#flag(reports, baseline, "new_action", `new action ${label}`, at);
    }
    if (!tables.hasNetwork(baseline.block, network)) {
      const label = networkLabel(view.source_ip, this.#prefixes) ?? OTHER_NETWORK;
      this.#remember(baseline, network, { kind: "network", label, at });
      this.#flag(reports, baseline, "new_source_network", `new source network ${label} for ${view.destination}`, at);
    }
    this.#judgeVolume(reports, baseline, fanout, at);
  }

  /** Rate spike and fan-out, judged on every observation once learning is over. */
  #judgeVolume(reports: Map<string, Report>, baseline: Baseline, fanout: number, at: number): void {
    const config = this.#config;
    const limit = Math.max(config.rateMinimum, baseline.ewma * config.rateBurst);
    if (baseline.windowCount > limit) {
      this.#flag(reports, baseline, "rate_spike",
        `rate spike: ${String(baseline.windowCount)} requests in ${String(config.windowMs / 1000)} s, baseline ${baseline.ewma.toFixed(1)}`, at);
    }
    this.#checkFanout(reports, baseline, fanout, at);
  }

  #checkFanout(reports: Map<string, Report>, baseline: Baseline, fanout: number, at: number): void {
    if (fanout > baseline.fanoutMax + this.#config.fanoutAllowance) {
      this.#flag(reports, baseline, "fan_out",
        `fan-out: ${String(fanout)} destinations in one window, baseline ${String(baseline.fanoutMax)}`, at);
    }
  }

  /**
   * The mesh heard of destinations another sidecar saw this caller reach: judges fan-out again
   * (a fan-out neither sidecar sees alone). Called by the share when a remote value arrives.
   */
  remoteFanout(caller: string, window: number): void {
    const baseline = this.#baseline(caller);
    if (baseline === undefined || this.#closed) return;
    const at = this.#now();
    const fanout = this.#share?.distinct(caller, window, window === baseline.window ? baseline.destinations : new Set()) ?? 0;
    if (at < baseline.firstSeen + this.#config.learningPeriodMs) {
      if (fanout > baseline.fanoutMax) {
        baseline.fanoutMax = fanout;
        this.#dirty = true;
      }
      return;
    }
    const reports = new Map<string, Report>();
    this.#checkFanout(reports, baseline, fanout, at);
    for (const [c, report] of reports) this.#report(c, report);
  }

  #admit(caller: string, at: number, window: number): Baseline {
    // Only a file naming a caller twice re-admits one: the later entry replaces the earlier.
    const replaced = this.#baseline(caller);
    if (replaced !== undefined) this.#forget(replaced);
    while (this.#baselines.size >= this.#config.maxCallers) {
      const oldest = this.#baselines.keys().next();
      if (oldest.done === true) break;
      const evicted = this.#baseline(oldest.value);
      if (evicted === undefined) break;
      this.#forget(evicted);
      this.#metrics?.behaviorEvictions.inc();
    }
    const baseline = newBaseline(caller, at, window, this.#tables.open(at + this.#config.learningPeriodMs));
    this.#baselines.set(caller, baseline.block);
    this.#owners[baseline.block / BLOCK_ALIGN] = baseline;
    return baseline;
  }

  #baseline(caller: string): Baseline | undefined {
    const block = this.#baselines.get(caller);
    return block === undefined ? undefined : this.#owners[block / BLOCK_ALIGN];
  }

  #forget(baseline: Baseline): void {
    this.#renewStamp();
    this.#baselines.delete(baseline.caller);
    this.#owners[baseline.block / BLOCK_ALIGN] = undefined;
    this.#tables.close(baseline.block);
    // Another caller may get the block: this object (still referenced by a drain under way, say)
    // must not reach it.
    baseline.block = -1;
  }

  /** The baseline's block moved (a table grew): the Map and the owners follow it. */
  #moved(baseline: Baseline, block: number): void {
    if (block === baseline.block) return;
    this.#owners[baseline.block / BLOCK_ALIGN] = undefined;
    this.#owners[block / BLOCK_ALIGN] = baseline;
    baseline.block = block;
    this.#baselines.set(baseline.caller, block);
  }

  /** Adds an action to a baseline: its key to the table, its label to the list. Once per key. */
  #learnAction(baseline: Baseline, key: number, label: string): void {
    if (this.#tables.hasAction(baseline.block, key)) return;
    this.#moved(baseline, this.#tables.addAction(baseline.block, key));
    baseline.actions.push(label);
  }

  #learnNetwork(baseline: Baseline, key: number, label: string): void {
    if (this.#tables.hasNetwork(baseline.block, key)) return;
    this.#moved(baseline, this.#tables.addNetwork(baseline.block, key));
    baseline.networks.push(label);
  }

  #remember(baseline: Baseline, key: number, item: Pending): void {
    if (baseline.pending.has(key)) return;
    if (baseline.pending.size >= MAX_PENDING) {
      const oldest = baseline.pending.keys().next();
      if (oldest.done !== true) baseline.pending.delete(oldest.value);
    }
    baseline.pending.set(key, item);
  }

  #flag(reports: Map<string, Report>, baseline: Baseline, kind: AnomalyKind, reason: string, at: number): void {
    if (at < baseline.reportedUntil[kind]) return;
    // Re-reported at half the signal's life while the anomaly goes on, so it does not lapse.
    baseline.reportedUntil[kind] = at + this.#config.signalTtlMs / 2;
    this.#metrics?.behaviorAnomalies.labels(kind).inc();
    let report = reports.get(baseline.caller);
    if (report === undefined) {
      report = { kinds: new Set(), reasons: [], at };
      reports.set(baseline.caller, report);
    }
    report.kinds.add(kind);
    report.reasons.push(reason);
    if (at > report.at) report.at = at;
  }

  /** Writes the caller's `behavior` signal: the anomalies it holds, these added. */
  #report(caller: string, report: Report): void {
    this.#log.warn({ caller, anomalies: [...report.kinds], reason: report.reasons.join("; ") }, "behaviour anomaly");
    this.#write(caller, (held) => {
      const anomalies = [...new Set([...held, ...report.kinds])].slice(0, 64);
      return { anomalies, reason: `${report.reasons.join("; ")} (seen by ${this.#instance})` };
    });
  }

  /** Queues one write of the caller's behaviour signal, computed from what the store holds then. */
  #write(caller: string, next: (held: readonly string[]) => { anomalies: string[]; reason: string }): void {
    if (this.#writesQueued >= 1_000) {
      this.#metrics?.behaviorSignalWrites.labels("dropped").inc();
      return;
    }
    this.#writesQueued++;
    this.#writes = this.#writes.then(async () => {
      try {
        const at = this.#now();
        const held = this.#store.get(caller, "behavior", "", at)?.data.anomalies ?? NONE;
        const { anomalies, reason } = next(held);
        await this.#store.put({
          id: `behavior-${randomUUID()}`, kind: "behavior", subject: caller, name: "", source: BEHAVIOR_SIGNAL_SOURCE,
          observedAt: at, expiresAt: at + this.#config.signalTtlMs,
          data: { anomalies, reason: reason.length > MAX_REASON ? `${reason.slice(0, MAX_REASON - 1)}…` : reason },
        });
        this.#metrics?.behaviorSignalWrites.labels("written").inc();
      } catch (err) {
        this.#metrics?.behaviorSignalWrites.labels("failed").inc();
        this.#log.error({ err: { message: VigilError.from(err).message }, caller }, "behaviour signal not written");
      } finally {
        this.#writesQueued--;
      }
    });
  }

  /** Resolves when every queued observation is folded and every signal write settled (tests, shutdown). */
  async settled(): Promise<void> {
    this.drain();
    await this.#writes;
  }

  // ---- Operators ---------------------------------------------------------------------------

  summary(): BehaviorSummary {
    const at = this.#now();
    let learning = 0;
    for (const b of this.#held()) if (at < b.firstSeen + this.#config.learningPeriodMs) learning++;
    return {
      enabled: this.enabled, callers: this.#baselines.size, learning, maxCallers: this.#config.maxCallers,
      learningPeriodMs: this.#config.learningPeriodMs, windowMs: this.#config.windowMs,
    };
  }

  /** The callers held, most recently seen last, at most `limit`. */
  callers(limit = 1_000): string[] {
    const out: string[] = [];
    for (const caller of this.#baselines.keys()) {
      if (out.length >= limit) break;
      out.push(caller);
    }
    return out;
  }

  show(caller: string): BaselineReport | undefined {
    this.drain();
    const b = this.#baseline(caller);
    if (b === undefined) return undefined;
    const learningUntil = b.firstSeen + this.#config.learningPeriodMs;
    return {
      caller,
      firstSeen: new Date(b.firstSeen).toISOString(),
      lastSeen: new Date(b.lastSeen).toISOString(),
      learningUntil: new Date(learningUntil).toISOString(),
      learning: this.#now() < learningUntil,
      actions: [...b.actions].sort(),
      networks: [...b.networks].sort(),
      rate: Math.round(b.ewma * 100) / 100,
      windowMs: this.#config.windowMs,
      fanoutMax: b.fanoutMax,
      pending: [...b.pending.values()].map((p) => ({ kind: p.kind, label: p.label, at: new Date(p.at).toISOString() })),
    };
  }

  /**
   * Adds actions and networks to a caller's baseline (every pending one when none is named),
   * and takes the matching anomaly kinds off its behaviour signal. The caller audits it.
   */
  accept(request: AcceptRequest): AcceptResult {
    this.drain();
    const b = this.#baseline(request.caller);
    if (b === undefined) throw new VigilError("not_found", "no baseline is held for this caller");
    const all = request.actions === undefined && request.networks === undefined;
    const actions = all ? [...b.pending.values()].filter((p) => p.kind === "action").map((p) => p.label) : request.actions ?? [];
    const networks = all ? [...b.pending.values()].filter((p) => p.kind === "network").map((p) => p.label) : request.networks ?? [];
    for (const network of networks) {
      const address = network.slice(0, network.lastIndexOf("/"));
      if (network !== OTHER_NETWORK && networkLabel(address, this.#prefixes) !== network) {
        throw new VigilError("invalid_input",
          `networks are written as this sidecar learns them (IPv4 /${String(this.#prefixes.ipv4)}, IPv6 /${String(this.#prefixes.ipv6)}), e.g. 10.1.2.0/${String(this.#prefixes.ipv4)}`);
      }
    }
    if (b.actions.length + actions.length > this.#config.maxActionsPerCaller) {
      throw new VigilError("conflict", `the baseline would hold more than ${String(this.#config.maxActionsPerCaller)} actions (behavior.maxActionsPerCaller)`);
    }
    if (b.networks.length + networks.length > this.#config.maxNetworksPerCaller) {
      throw new VigilError("conflict", `the baseline would hold more than ${String(this.#config.maxNetworksPerCaller)} networks (behavior.maxNetworksPerCaller)`);
    }
    for (const label of actions) {
      const key = labelHash(this.#key, label);
      this.#learnAction(b, key, label);
      b.pending.delete(key);
    }
    for (const label of networks) {
      const key = labelHash(this.#key, label);
      this.#learnNetwork(b, key, label);
      b.pending.delete(key);
    }
    const cleared: string[] = [];
    if (actions.length > 0 && ![...b.pending.values()].some((p) => p.kind === "action")) cleared.push("new_action");
    if (networks.length > 0 && ![...b.pending.values()].some((p) => p.kind === "network")) cleared.push("new_source_network");
    for (const kind of cleared) b.reportedUntil[kind as AnomalyKind] = 0;
    this.#dirty = true;
    this.#metrics?.behaviorAccepted.inc(actions.length + networks.length);
    if (cleared.length > 0 && this.#store.get(request.caller, "behavior", "", this.#now()) !== undefined) {
      this.#write(request.caller, (held) => ({
        anomalies: held.filter((a) => !cleared.includes(a)),
        reason: `accepted into the baseline: ${[...actions, ...networks].join(", ")}`,
      }));
    }
    return { caller: request.caller, actions, networks, cleared };
  }

  // ---- Persistence (persist.ts reads and writes the file) -----------------------------------

  /** A snapshot could not be written: write it again at the next chance. */
  markDirty(): void {
    this.#dirty = true;
  }

  /** True when baselines changed since the last `snapshot`. */
  get dirty(): boolean {
    return this.#dirty;
  }

  snapshot(): SavedBaseline[] {
    this.drain();
    this.#dirty = false;
    return this.#held().map((b) => ({
      caller: b.caller, firstSeen: b.firstSeen, lastSeen: b.lastSeen,
      actions: [...b.actions], networks: [...b.networks],
      ewma: b.ewma, fanoutMax: b.fanoutMax,
    }));
  }

  /** Loads saved baselines (least recently seen first), keeping the caps. */
  restore(saved: readonly SavedBaseline[]): void {
    const ordered = [...saved].sort((a, b) => a.lastSeen - b.lastSeen);
    for (const s of ordered) {
      if (this.excluded(s.caller)) continue;
      const window = Math.floor(s.lastSeen / this.#config.windowMs);
      const b = this.#admit(s.caller, s.firstSeen, window);
      b.lastSeen = s.lastSeen;
      b.ewma = s.ewma;
      b.fanoutMax = s.fanoutMax;
      b.windowCount = 0;
      for (const label of s.actions) {
        if (b.actions.length >= this.#config.maxActionsPerCaller) break;
        this.#learnAction(b, labelHash(this.#key, label), label);
      }
      for (const label of s.networks) {
        if (b.networks.length >= this.#config.maxNetworksPerCaller) break;
        this.#learnNetwork(b, labelHash(this.#key, label), label);
      }
    }
  }

  /** Every baseline held, least recently seen first. */
  #held(): Baseline[] {
    const out: Baseline[] = [];
    for (const block of this.#baselines.values()) {
      const b = this.#owners[block / BLOCK_ALIGN];
      if (b !== undefined) out.push(b);
    }
    return out;
  }

  /** Baselines held (a gauge). */
  get size(): number {
    return this.#baselines.size;
  }

  get droppedCount(): number {
    return this.#dropped;
  }

  async close(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.drain();
    this.#closed = true;
    await this.#writes;
  }
}

function shortLabel(label: string): string {
  return label.length <= MAX_ACTION_LABEL ? label : `${label.slice(0, MAX_ACTION_LABEL - 1)}…`;
}

function newBaseline(caller: string, at: number, window: number, block: number): Baseline {
  return {
    caller, firstSeen: at, lastSeen: at, block, actions: [], networks: [], ewma: 0, window, windowCount: 0,
    destinations: new Set(), fanoutMax: 0, pending: new Map(), touched: window,
    reportedUntil: { new_action: 0, new_source_network: 0, rate_spike: 0, fan_out: 0 },
  };
}
