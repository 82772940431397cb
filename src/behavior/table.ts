// The learned keys of every baseline, in one Float64Array: what the Check path reads to tell a
// known action or source network from a new one, touching as few cache lines as it can.
//
// Each baseline owns one block of the array: a header (when its baseline is enforced, the two
// tables' masks and counts), then its networks table, then its actions table, each an open-
// addressing table with linear probing at most half full. A request's lookup thus reads the
// header (which, with up to one network, shares its 64-byte line with the networks table) and one
// line of the actions table: no Map, no boxed number, no object per key. Keys are the 52-bit safe
// integers of action.ts, stored plus one so that 0 marks an empty slot.
//
// Keys are only ever added (a baseline forgets all at once, when evicted): no tombstones. A table
// that would pass half full moves its block to one twice the size (off the Check path: learning
// and accept run in the drain and the admin API); the caller keeps the block offset `add*` returns.
// Blocks are power-of-two sized and reused per size once freed; the array doubles when full.
// Labels are not here: a baseline keeps them in plain arrays, for reports and persistence.
//
// Each block also holds an identity, unique in the process (across every KeyTables) and changed
// whenever the block is opened, moved or closed: the Check path reaches a caller's block through a
// hint kept on the caller's identity memo entry (src/model/hints.ts) and believes the hint only
// when the identity it recorded is still the block's. A hint to a block since given to another
// caller, grown or closed thus fails, and the caller is looked up by name instead.

/**
 * Header slots of a block. The masks and counts are small integers, kept in the low half of their
 * slot through an Int32Array over the same memory (`#ints`, at `int(block, slot)`): read as doubles, every
 * index computed from them went through float-to-integer conversions and checks (TurboFan's code
 * for `check`, issue #12). The time and the identity need doubles.
 */
const ENFORCED_FROM = 0;
const ACTION_MASK = 1;
const NETWORK_MASK = 2;
const ACTION_COUNT = 3;
const NETWORK_COUNT = 4;
/** serial × IDENT_CLASSES + size class: the block's identity, and its size (log2 of its length in doubles). */
const IDENT = 5;
const HEADER = 6;
const IDENT_CLASSES = 64;

const MIN_ACTIONS = 8;
const MIN_NETWORKS = 2;
const MIN_CLASS = 4; // 16 doubles: the smallest block (6 + 2 + 8)

/** Serials of block identities: one sequence for every KeyTables, never reused (2^47 allocations before one loses precision). */
let serials = 0;

/** Every block's offset is a multiple of this: offset / BLOCK_ALIGN numbers blocks densely enough to index an array. */
export const BLOCK_ALIGN = 1 << MIN_CLASS;

export class KeyTables {
  #slab: Float64Array;
  /** The same memory as #slab, as 32-bit integers: the header's masks and counts. */
  #ints: Int32Array;
  #end = 0;
  /** Freed blocks by size class (log2 of their length in doubles). */
  readonly #free: number[][] = [];
  #used = 0;

  constructor(initialDoubles = 1 << 12) {
    this.#slab = new Float64Array(Math.max(1 << MIN_CLASS, initialDoubles));
    this.#ints = new Int32Array(this.#slab.buffer);
  }

  /** A new, empty block for a baseline enforced from `enforcedFrom` (epoch ms). */
  open(enforcedFrom: number): number {
    const block = this.#allocate(HEADER + MIN_NETWORKS + MIN_ACTIONS);
    this.#slab[block + ENFORCED_FROM] = enforcedFrom;
    const ints = this.#ints;
    ints[int(block, ACTION_MASK)] = MIN_ACTIONS - 1;
    ints[int(block, NETWORK_MASK)] = MIN_NETWORKS - 1;
    return block;
  }

  /** Gives a block back (its baseline was evicted). The offset must not be used again. */
  close(block: number): void {
    const sizeClass = sizeClassOf(this.#slab[block + IDENT] ?? 0);
    this.#slab.fill(0, block, block + (1 << sizeClass));
    (this.#free[sizeClass] ??= []).push(block);
    this.#used -= 1 << sizeClass;
  }

  enforcedFrom(block: number): number {
    return this.#slab[block + ENFORCED_FROM] ?? 0;
  }

  /** The block's identity (see above): nonzero while open, changed when it moves or closes. */
  ident(block: number): number {
    return this.#slab[block + IDENT] ?? 0;
  }

  // ---- The Check path: reads only, no allocation ----------------------------------------------

  hasAction(block: number, key: number): boolean {
    const ints = this.#ints;
    const mask = ints[int(block, ACTION_MASK)] ?? 0;
    const base = block + HEADER + (ints[int(block, NETWORK_MASK)] ?? 0) + 1;
    return probe(this.#slab, base, mask, key + 1) >= 0;
  }

  hasNetwork(block: number, key: number): boolean {
    return probe(this.#slab, block + HEADER, this.#ints[int(block, NETWORK_MASK)] ?? 0, key + 1) >= 0;
  }

  // ---- Off the Check path ---------------------------------------------------------------------

  actionCount(block: number): number {
    return this.#ints[int(block, ACTION_COUNT)] ?? 0;
  }

  networkCount(block: number): number {
    return this.#ints[int(block, NETWORK_COUNT)] ?? 0;
  }

  /** Adds an action key; returns the block's offset, which moves when its table grows. */
  addAction(block: number, key: number): number {
    if (this.hasAction(block, key)) return block;
    const count = this.actionCount(block);
    const mask = this.#ints[int(block, ACTION_MASK)] ?? 0;
    const at = (count + 1) * 2 > mask + 1 ? this.#grow(block, (mask + 1) * 2, this.#networkCapacity(block)) : block;
    // #grow may have replaced the arrays: read them only now.
    const slab = this.#slab;
    const ints = this.#ints;
    const newMask = ints[int(at, ACTION_MASK)] ?? 0;
    const base = at + HEADER + (ints[int(at, NETWORK_MASK)] ?? 0) + 1;
    slab[base + emptySlot(slab, base, newMask, key + 1)] = key + 1;
    ints[int(at, ACTION_COUNT)] = count + 1;
    return at;
  }

  /** Adds a network key; returns the block's offset, which moves when its table grows. */
  addNetwork(block: number, key: number): number {
    if (this.hasNetwork(block, key)) return block;
    const count = this.networkCount(block);
    const capacity = this.#networkCapacity(block);
    const at = (count + 1) * 2 > capacity ? this.#grow(block, (this.#ints[int(block, ACTION_MASK)] ?? 0) + 1, capacity * 2) : block;
    const slab = this.#slab;
    const ints = this.#ints;
    const base = at + HEADER;
    slab[base + emptySlot(slab, base, ints[int(at, NETWORK_MASK)] ?? 0, key + 1)] = key + 1;
    ints[int(at, NETWORK_COUNT)] = count + 1;
    return at;
  }

  /** Doubles held by open blocks (their whole size classes). */
  get usedDoubles(): number {
    return this.#used;
  }

  /** Length of the array behind every block. */
  get capacityDoubles(): number {
    return this.#slab.length;
  }

  #networkCapacity(block: number): number {
    return (this.#ints[int(block, NETWORK_MASK)] ?? 0) + 1;
  }

  /** Moves a block to one with the given table capacities, re-inserting every key. */
  #grow(block: number, actions: number, networks: number): number {
    const to = this.#allocate(HEADER + networks + actions);
    // #allocate may have replaced the array: read it only now.
    const slab = this.#slab;
    const ints = this.#ints;
    slab[to + ENFORCED_FROM] = slab[block + ENFORCED_FROM] ?? 0;
    ints[int(to, ACTION_MASK)] = actions - 1;
    ints[int(to, NETWORK_MASK)] = networks - 1;
    ints[int(to, ACTION_COUNT)] = ints[int(block, ACTION_COUNT)] ?? 0;
    ints[int(to, NETWORK_COUNT)] = ints[int(block, NETWORK_COUNT)] ?? 0;
    const oldNetworks = (ints[int(block, NETWORK_MASK)] ?? 0) + 1;
    const oldActions = (ints[int(block, ACTION_MASK)] ?? 0) + 1;
    rehash(slab, block + HEADER, oldNetworks, to + HEADER, networks - 1);
    rehash(slab, block + HEADER + oldNetworks, oldActions, to + HEADER + networks, actions - 1);
    this.close(block);
    return to;
  }

  #allocate(doubles: number): number {
    let sizeClass = MIN_CLASS;
    while (1 << sizeClass < doubles) sizeClass++;
    // Shifts, not `**`: V8's interpreter makes a power a heap number, and a block offset that is one
    // turns every field it is stored in (the caller's hint among them) into a boxed double.
    const size = 1 << sizeClass;
    const reused = this.#free[sizeClass]?.pop();
    let block: number;
    if (reused !== undefined) {
      block = reused;
    } else {
      if (this.#end + size > this.#slab.length) {
        let length = this.#slab.length * 2;
        while (length < this.#end + size) length *= 2;
        const bigger = new Float64Array(length);
        bigger.set(this.#slab.subarray(0, this.#end));
        this.#slab = bigger;
        this.#ints = new Int32Array(bigger.buffer);
      }
      block = this.#end;
      this.#end += size;
    }
    this.#slab[block + IDENT] = ++serials * IDENT_CLASSES + sizeClass;
    this.#used += size;
    return block;
  }
}

/** Where a header slot's small integer sits in #ints: one half of the slot's double, which only #ints ever reads. */
function int(block: number, slot: number): number {
  return 2 * (block + slot);
}

function sizeClassOf(ident: number): number {
  return ident % IDENT_CLASSES;
}

/**
 * Where `stored` (key + 1) sits in the table at `base`, or -1. A table is never more than half
 * full, so an empty slot ends the probe; the bound only keeps a broken table from spinning.
 */
function probe(slab: Float64Array, base: number, mask: number, stored: number): number {
  let i = stored & mask;
  for (let n = 0; n <= mask; n++) {
    const held = slab[base + i] ?? 0;
    if (held === stored) return i;
    if (held === 0) return -1;
    i = (i + 1) & mask;
  }
  return -1;
}

function emptySlot(slab: Float64Array, base: number, mask: number, stored: number): number {
  let i = stored & mask;
  for (let n = 0; n <= mask; n++) {
    if ((slab[base + i] ?? 0) === 0) return i;
    i = (i + 1) & mask;
  }
  throw new Error("behaviour key table full: a table is never let past half full");
}

function rehash(slab: Float64Array, from: number, length: number, to: number, mask: number): void {
  for (let i = 0; i < length; i++) {
    const stored = slab[from + i] ?? 0;
    if (stored !== 0) slab[to + emptySlot(slab, to, mask, stored)] = stored;
  }
}
