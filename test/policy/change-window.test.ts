// Change windows: inside → 0, outside → whole seconds until the window next opens, in the
// window's own time zone (across DST switches and midnight).

import { describe, expect, it } from "vitest";
import { ChangeWindow } from "../../src/policy/change-window.js";

const HOUR = 3600;
const weekdays = new ChangeWindow({ timezone: "UTC", days: ["mon", "tue", "wed", "thu", "fri"], start: "09:00", end: "17:00" });

describe("change windows", () => {
  it.each([
    { at: "2025-06-11T09:00:00Z", wait: 0, what: "opening minute" },
    { at: "2025-06-11T16:59:59Z", wait: 0, what: "last second" },
    { at: "2025-06-11T17:00:00Z", wait: 16 * HOUR, what: "closing time (end is exclusive)" },
    { at: "2025-06-11T08:59:59.500Z", wait: 1, what: "half a second before opening (rounded up)" },
    { at: "2025-06-14T10:00:00Z", wait: 47 * HOUR, what: "Saturday" },
    { at: "2025-06-13T18:00:00Z", wait: 63 * HOUR, what: "Friday evening" },
    { at: "2025-06-16T00:00:00Z", wait: 9 * HOUR, what: "Monday midnight" },
  ])("UTC weekdays 09–17 at $at ($what) → $wait s", ({ at, wait }) => {
    expect(weekdays.secondsUntilOpen(Date.parse(at))).toBe(wait);
  });

  it("uses the window's time zone, across a DST switch", () => {
    const berlin = new ChangeWindow({ timezone: "Europe/Berlin", days: ["mon", "tue", "wed", "thu", "fri"], start: "09:00", end: "17:00" });
    // Tuesday 10:00 CEST = 08:00 UTC: inside.
    expect(berlin.secondsUntilOpen(Date.parse("2025-06-10T08:00:00Z"))).toBe(0);
    // Tuesday 08:00 UTC in winter = 09:00 CET: inside; 07:30 UTC = 08:30 CET: 30 minutes to go.
    expect(berlin.secondsUntilOpen(Date.parse("2025-01-14T08:00:00Z"))).toBe(0);
    expect(berlin.secondsUntilOpen(Date.parse("2025-01-14T07:30:00Z"))).toBe(1800);
    // Friday 2025-03-28 17:30 CET (16:30 UTC) → Monday 2025-03-31 09:00 CEST (07:00 UTC):
    // the clocks went forward on Sunday, so the wait is one hour shorter than wall-clock time.
    expect(berlin.secondsUntilOpen(Date.parse("2025-03-28T16:30:00Z"))).toBe(62.5 * HOUR);
  });

  it("handles windows that run past midnight", () => {
    const night = new ChangeWindow({ timezone: "UTC", days: ["sat"], start: "22:00", end: "02:00" });
    expect(night.secondsUntilOpen(Date.parse("2025-06-14T23:00:00Z"))).toBe(0);
    expect(night.secondsUntilOpen(Date.parse("2025-06-15T01:59:00Z"))).toBe(0);
    expect(night.secondsUntilOpen(Date.parse("2025-06-15T02:00:00Z"))).toBe(6 * 24 * HOUR + 20 * HOUR);
    expect(night.secondsUntilOpen(Date.parse("2025-06-14T21:00:00Z"))).toBe(HOUR);
  });

  it("wraps from Sunday night into Monday", () => {
    const sundayNight = new ChangeWindow({ timezone: "UTC", days: ["sun"], start: "23:00", end: "01:00" });
    expect(sundayNight.secondsUntilOpen(Date.parse("2025-06-16T00:30:00Z"))).toBe(0);
    expect(sundayNight.secondsUntilOpen(Date.parse("2025-06-16T01:00:00Z"))).toBe(6 * 24 * HOUR + 22 * HOUR);
  });

  it("accepts 24:00 as the end of the day", () => {
    const allDay = new ChangeWindow({ timezone: "Asia/Kolkata", days: ["sun"], start: "00:00", end: "24:00" });
    // Sunday 2025-06-15 00:00 IST = Saturday 18:30 UTC.
    expect(allDay.secondsUntilOpen(Date.parse("2025-06-14T18:30:00Z"))).toBe(0);
    expect(allDay.secondsUntilOpen(Date.parse("2025-06-14T18:00:00Z"))).toBe(1800);
    expect(allDay.description).toBe("sun 00:00-24:00 Asia/Kolkata");
  });
});
