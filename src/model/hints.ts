/**
 * Numbers a Check's later phases keep per calling principal, on the identity resolver's memo entry
 * for it, which every Check from that principal reads anyway: a hint spares a phase a lookup of its
 * own, and with it the cache lines of a Map bucket and entry that nothing else in the Check touches
 * (callgrind's cache model, issue #12). Hints only: an entry is lost whenever the memo drops its
 * principal, and every Check from the principal shares it, so a phase checks a hint before it
 * trusts one and falls back to its own lookup when the check fails.
 *
 * Small integers only (V8 keeps them in the object itself; a fractional or 52-bit number would be
 * a separate heap number, one more line to read): a 52-bit value is kept as two 26-bit halves.
 */
export interface PrincipalHints {
  /** Behaviour: the caller's block in the monitor's key tables; -1 when not known. */
  baselineBlock: number;
  /** Behaviour: the identity that block held when the hint was written (high and low 26 bits). */
  baselineIdentHigh: number;
  baselineIdentLow: number;
  /**
   * Behaviour: an action and a source network the caller's baseline was last found to hold (their
   * keys, 52 bits each, high and low 26 bits), and the monitor's stamp then (high and low 26 bits).
   * A baseline only ever gains keys until it is forgotten, and forgetting any baseline changes the
   * stamp: while the stamp holds, a request with these keys is known without reading the baseline.
   */
  knownActionHigh: number;
  knownActionLow: number;
  knownNetworkHigh: number;
  knownNetworkLow: number;
  knownStampHigh: number;
  knownStampLow: number;
}

