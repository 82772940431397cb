// Remembers which (iss, jti) pairs this receiver has taken, and a digest of the SET that carried
// each, for the replay window. An identical re-delivery (a transmitter retrying after a lost 202)
// is acknowledged without a second write; the same jti with other content is a replay and is
// refused. In memory and per instance: after a restart, or on another instance, the store's
// idempotency on the signal id (ssf:<iss>:<jti>) is what catches a repeat.

/** Bound on remembered pairs; past it the oldest are forgotten first (the store still dedupes). */
export const REPLAY_MEMORY_LIMIT = 100_000;

/**
 * What a SET's (iss, jti) is to this receiver: `new` (now reserved for processing), `repeat`
 * (handled before, same SET), `busy` (the same SET is being processed right now) or `replay`
 * (the jti came with other content).
 */
export type ReplayClaim = "new" | "repeat" | "busy" | "replay";

interface Seen { until: number; digest: string }

export class ReplayGuard {
  /** key → when it may be forgotten and the SET's digest; insertion order is (nearly) expiry order. */
  private readonly seen = new Map<string, Seen>();
  /** SETs being processed right now, with their digests. */
  private readonly inFlight = new Map<string, string>();

  constructor(private readonly windowMs: number, private readonly limit = REPLAY_MEMORY_LIMIT) {}

  private static key(iss: string, jti: string): string {
    return `${iss}\u0000${jti}`;
  }

  /** Claims the pair for processing when it is new; otherwise says what it is. */
  reserve(iss: string, jti: string, digest: string, nowMs: number): ReplayClaim {
    const key = ReplayGuard.key(iss, jti);
    const seen = this.seen.get(key);
    if (seen !== undefined && seen.until > nowMs) return seen.digest === digest ? "repeat" : "replay";
    const busy = this.inFlight.get(key);
    if (busy !== undefined) return busy === digest ? "busy" : "replay";
    this.inFlight.set(key, digest);
    return "new";
  }

  /** The SET was handled (written or deliberately ignored): remember it for the window. */
  commit(iss: string, jti: string, nowMs: number): void {
    const key = ReplayGuard.key(iss, jti);
    const digest = this.inFlight.get(key);
    this.inFlight.delete(key);
    if (digest === undefined) return;
    this.seen.delete(key);
    this.seen.set(key, { until: nowMs + this.windowMs, digest });
    for (const [oldest, { until }] of this.seen) {
      if (until > nowMs && this.seen.size <= this.limit) break;
      this.seen.delete(oldest);
    }
  }

  /** The SET could not be handled (store unavailable, refused): nothing is remembered, a retry goes through. */
  release(iss: string, jti: string): void {
    this.inFlight.delete(ReplayGuard.key(iss, jti));
  }

  get size(): number {
    return this.seen.size;
  }

  clear(): void {
    this.seen.clear();
    this.inFlight.clear();
  }
}
