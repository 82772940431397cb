// Which rules of a rule list admit a caller (their `sources`), remembered per caller: the
// compiler's rule lists consult this instead of testing each rule's patterns on every Check.

/** What the memo asks of a rule (CompiledRule). */
export interface SourceTest {
  /** Whether the rule's sources admit this caller (no sources: everyone). */
  admits(spiffeId: string): boolean;
  /** Whether the rule has sources to test at all. */
  readonly hasSources: boolean;
}

/** A caller's `sources` answers are remembered for this many callers per rule list. */
export const SOURCE_MEMO_CALLERS = 64;
/** Longer SPIFFE IDs (up to 2,048 bytes are valid) are answered but not kept as keys. */
export const SOURCE_MEMO_MAX_ID = 256;

/**
 * Which rules of one list admit a caller, remembered per caller: `rules` first, then
 * `privilegedOnly`, one byte each (1: admitted). A Check tests the sources of every candidate rule
 * against the same caller, and each test is a string comparison (about 340 instructions for a
 * SPIFFE prefix, callgrind); a sidecar's callers are few and come back, so after a caller's first
 * request one map lookup answers them all. Answers depend on the caller alone (the patterns are
 * fixed for the policy's life), so a remembered answer is the answer. Bounded: the memo is
 * emptied when it holds SOURCE_MEMO_CALLERS callers, so callers that never come back (or a peer
 * that cycles through identities) cost a recomputation, never memory, and an ID longer than
 * SOURCE_MEMO_MAX_ID is never kept.
 */
export class SourceMemo {
  readonly #rules: readonly SourceTest[];
  readonly #memo = new Map<string, Uint8Array>();
  /** Every rule admits everyone (no rule has sources): nothing to test or remember. */
  readonly #all: Uint8Array | undefined;

  constructor(rules: readonly SourceTest[]) {
    this.#rules = rules;
    this.#all = rules.some((rule) => rule.hasSources) ? undefined : new Uint8Array(rules.length).fill(1);
  }

  admitted(spiffeId: string): Uint8Array {
    if (this.#all !== undefined) return this.#all;
    const known = this.#memo.get(spiffeId);
    if (known !== undefined) return known;
    const rules = this.#rules;
    const answers = new Uint8Array(rules.length);
    for (let i = 0; i < rules.length; i++) answers[i] = rules[i]?.admits(spiffeId) === true ? 1 : 0;
    if (spiffeId.length > SOURCE_MEMO_MAX_ID) return answers;
    if (this.#memo.size >= SOURCE_MEMO_CALLERS) this.#memo.clear();
    this.#memo.set(spiffeId, answers);
    return answers;
  }

  /** Callers remembered now (at most SOURCE_MEMO_CALLERS). */
  get size(): number {
    return this.#memo.size;
  }
}
