// Weekly change windows ("mon–fri 09:00–17:00 Europe/Berlin"): whether an instant is inside,
// and otherwise how many seconds until the window next opens (the `retry-after` of a delay).
// Windows are kept as intervals of local wall-clock time within a week; only the time zone offset
// needs Intl, and it is remembered per quarter hour because offsets only change on DST switches.

export const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;
export type Weekday = (typeof WEEKDAYS)[number];

const MINUTE = 60_000;
const DAY = 86_400_000;
const WEEK = 7 * DAY;
const QUARTER_HOUR = 15 * MINUTE;
const DAY_INDEX: Readonly<Record<Weekday, number>> = { mon: 0, tue: 1, wed: 2, thu: 3, fri: 4, sat: 5, sun: 6 };

export interface ChangeWindowDefinition {
  timezone: string;
  days: readonly Weekday[];
  /** "HH:MM"; end may be "24:00"; end at or before start means the window runs past midnight. */
  start: string;
  end: string;
}

export function timezoneProblem(timezone: string): string | undefined {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
    return undefined;
  } catch {
    return `unknown time zone "${timezone}" (expected an IANA name such as "UTC" or "Europe/Berlin")`;
  }
}

function minutesOf(clock: string): number {
  const [hours, minutes] = clock.split(":").map(Number);
  return (hours ?? 0) * 60 + (minutes ?? 0);
}

/** Quarter-hour offsets a ChangeWindow remembers before starting over. */
export const OFFSET_CACHE_LIMIT = 32;

export class ChangeWindow {
  readonly description: string;
  /** [start, end) in milliseconds since Monday 00:00 local time; end may pass the week's end. */
  readonly #intervals: readonly (readonly [number, number])[];
  readonly #format: Intl.DateTimeFormat | undefined;
  /** Offsets by quarter hour; small, since only "now" and the next opening are asked for. */
  readonly #offsets = new Map<number, number>();

  constructor(definition: ChangeWindowDefinition) {
    const start = minutesOf(definition.start) * MINUTE;
    let end = minutesOf(definition.end) * MINUTE;
    if (end <= start) end += DAY;
    this.#intervals = definition.days.map((day) => {
      const base = DAY_INDEX[day] * DAY;
      return [base + start, base + end] as const;
    });
    const format = new Intl.DateTimeFormat("en-US", {
      timeZone: definition.timezone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    const zone = format.resolvedOptions().timeZone;
    this.#format = zone === "UTC" || zone === "Etc/UTC" || zone === "GMT" || zone === "Etc/GMT" ? undefined : format;
    this.description = `${definition.days.join(",")} ${definition.start}-${definition.end} ${definition.timezone}`;
  }

  /** Offsets remembered now (never more than OFFSET_CACHE_LIMIT; for tests). */
  get cachedOffsets(): number {
    return this.#offsets.size;
  }

  /** 0 when `nowMs` is inside the window, else whole seconds (at least 1) until it opens. */
  secondsUntilOpen(nowMs: number): number {
    const offset = this.#offsetAt(nowMs);
    const local = nowMs + offset;
    const dayNumber = Math.floor(local / DAY);
    // 1970-01-01 was a Thursday: index 3 when Monday is 0.
    const position = (((dayNumber + 3) % 7 + 7) % 7) * DAY + (local - dayNumber * DAY);
    let wait = Number.POSITIVE_INFINITY;
    for (const [start, end] of this.#intervals) {
      if ((position >= start && position < end) || (position + WEEK >= start && position + WEEK < end)) return 0;
      const until = ((start - position) % WEEK + WEEK) % WEEK;
      if (until < wait) wait = until;
    }
    // Turn the local opening time back into an instant, with the offset valid at that instant.
    const targetLocal = local + wait;
    let target = targetLocal - this.#offsetAt(targetLocal - offset);
    target = targetLocal - this.#offsetAt(target);
    return Math.max(1, Math.ceil((target - nowMs) / 1000));
  }

  #offsetAt(ms: number): number {
    if (this.#format === undefined) return 0;
    const quarter = Math.floor(ms / QUARTER_HOUR);
    const cached = this.#offsets.get(quarter);
    if (cached !== undefined) return cached;
    const whole = quarter * QUARTER_HOUR;
    const fields: Record<string, number> = {};
    for (const part of this.#format.formatToParts(new Date(whole))) {
      if (part.type !== "literal") fields[part.type] = Number(part.value);
    }
    const asUtc = Date.UTC(fields.year ?? 1970, (fields.month ?? 1) - 1, fields.day ?? 1, fields.hour ?? 0, fields.minute ?? 0, fields.second ?? 0);
    const offset = asUtc - whole;
    if (this.#offsets.size >= OFFSET_CACHE_LIMIT) this.#offsets.clear();
    this.#offsets.set(quarter, offset);
    return offset;
  }
}
