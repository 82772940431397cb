// Remembers which (iss, jti) pairs this receiver has taken, for the replay window, so a SET pushed
// twice is refused the second time. In memory and per instance: after a restart, or on another
// instance, the store's idempotency on the signal id (ssf:<iss>:<jti>) is what catches a repeat.

/** Bound on remembered pairs; past it the oldest are forgotten first (the store still dedupes). */
export const REPLAY_MEMORY_LIMIT = 100_000;

export class ReplayGuard {
  /** key → epoch ms when it may be forgotten; insertion order is (nearly) expiry order. */
  private readonly seen = new Map<string, number>();
  /** SETs being processed right now: a concurrent copy is a replay too. */
  private readonly inFlight = new Set<string>();

  constructor(private readonly windowMs: number, private readonly limit = REPLAY_MEMORY_LIMIT) {}

  private static key(iss: string, jti: string): string {
    return `${iss}\u0000${jti}`;
  }

  /** Claims the pair for processing; false when it was taken before (or is being processed). */
  reserve(iss: string, jti: string, nowMs: number): boolean {
    const key = ReplayGuard.key(iss, jti);
    const until = this.seen.get(key);
    if (until !== undefined && until > nowMs) return false;
    if (this.inFlight.has(key)) return false;
    this.inFlight.add(key);
    return true;
  }

  /** The SET was handled (written or deliberately ignored): remember it for the window. */
  commit(iss: string, jti: string, nowMs: number): void {
    const key = ReplayGuard.key(iss, jti);
    this.inFlight.delete(key);
    this.seen.delete(key);
    this.seen.set(key, nowMs + this.windowMs);
    for (const [oldest, until] of this.seen) {
      if (until > nowMs && this.seen.size <= this.limit) break;
      this.seen.delete(oldest);
    }
  }

  /** The SET could not be handled (store unavailable): let the transmitter's retry through. */
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
