// ISO-8601 week arithmetic as the weekly report uses it: parsing, year boundaries (53-week years), the week an instant
// falls in, and the week's [Monday 00:00, next Monday 00:00) in a time zone, across DST changes (167 h / 169 h weeks,
// a midnight swallowed by a gap, a midnight that happens twice).
import { describe, expect, it } from 'vitest';
import {
  IsoWeekError,
  formatIsoWeek,
  formatLocal,
  isoWeekOf,
  isoWeekRange,
  lastCompleteIsoWeek,
  parseIsoWeek,
  previousIsoWeek,
  startOfLocalDay,
  utcOffsetMs,
  weeksInIsoYear,
} from '../../src/tuner/report/iso-week.js';

const H = 3_600_000;
const range = (w: string, tz: string) => isoWeekRange(parseIsoWeek(w), tz);

describe('parsing and formatting', () => {
  it('round-trips well-formed weeks', () => {
    expect(parseIsoWeek('2026-W47')).toEqual({ year: 2026, week: 47 });
    expect(formatIsoWeek({ year: 2026, week: 7 })).toBe('2026-W07');
    expect(formatIsoWeek(parseIsoWeek('2020-W53'))).toBe('2020-W53');
  });

  it.each([
    ['2026-w47', /YYYY-Www/],
    ['2026-W7', /YYYY-Www/],
    ['2026W47', /YYYY-Www/],
    ['', /YYYY-Www/],
    ['2026-W47 ', /YYYY-Www/],
    ['2026-W00', /weeks 01 to 53/],
    ['2026-W54', /weeks 01 to 53/],
    ['2025-W53', /2025 has ISO weeks 01 to 52/],
    ['1969-W10', /1970/],
  ])('refuses %j', (text, msg) => {
    expect(() => parseIsoWeek(text)).toThrow(IsoWeekError);
    expect(() => parseIsoWeek(text)).toThrow(msg);
  });

  it('knows which years have 53 weeks', () => {
    // A year has 53 ISO weeks when it starts on a Thursday, or is a leap year starting on a Wednesday.
    expect([2015, 2020, 2026, 2032].map(weeksInIsoYear)).toEqual([53, 53, 53, 53]);
    expect([2021, 2024, 2025, 2027].map(weeksInIsoYear)).toEqual([52, 52, 52, 52]);
  });
});

describe('year boundaries (UTC)', () => {
  it('2020-W53 runs into January 2021 and 2021-W01 starts on 4 January', () => {
    expect(range('2020-W53', 'UTC')).toEqual({ startMs: Date.UTC(2020, 11, 28), endMs: Date.UTC(2021, 0, 4) });
    expect(range('2021-W01', 'UTC').startMs).toBe(Date.UTC(2021, 0, 4));
    expect(isoWeekOf(Date.UTC(2021, 0, 3, 23, 59), 'UTC')).toEqual({ year: 2020, week: 53 });
    expect(isoWeekOf(Date.UTC(2021, 0, 4), 'UTC')).toEqual({ year: 2021, week: 1 });
  });

  it('2026-W01 starts in December 2025; 2026-W53 ends in January 2027', () => {
    expect(range('2026-W01', 'UTC').startMs).toBe(Date.UTC(2025, 11, 29));
    expect(range('2026-W53', 'UTC')).toEqual({ startMs: Date.UTC(2026, 11, 28), endMs: Date.UTC(2027, 0, 4) });
    expect(isoWeekOf(Date.UTC(2024, 11, 30), 'UTC')).toEqual({ year: 2025, week: 1 });
  });

  it('every week starts on a Monday and tiles the year with the next', () => {
    for (const year of [2020, 2021, 2026]) {
      for (let week = 1; week <= weeksInIsoYear(year); week++) {
        const r = isoWeekRange({ year, week }, 'UTC');
        expect(new Date(r.startMs).getUTCDay()).toBe(1);
        expect(r.endMs - r.startMs).toBe(168 * H);
        expect(isoWeekOf(r.startMs, 'UTC')).toEqual({ year, week });
        expect(isoWeekOf(r.endMs - 1, 'UTC')).toEqual({ year, week });
      }
    }
  });

  it('steps back over the year boundary', () => {
    expect(previousIsoWeek({ year: 2021, week: 1 })).toEqual({ year: 2020, week: 53 });
    expect(previousIsoWeek({ year: 2026, week: 1 })).toEqual({ year: 2025, week: 52 });
    expect(previousIsoWeek({ year: 2026, week: 47 })).toEqual({ year: 2026, week: 46 });
  });
});

describe('time zones', () => {
  it('starts the week at local midnight', () => {
    expect(range('2026-W47', 'Asia/Tokyo').startMs).toBe(Date.UTC(2026, 10, 15, 15));
    expect(range('2026-W47', 'America/New_York').startMs).toBe(Date.UTC(2026, 10, 16, 5));
    // A zone with a 45-minute offset.
    expect(range('2026-W47', 'Asia/Kathmandu').startMs).toBe(Date.UTC(2026, 10, 15, 18, 15));
    expect(formatLocal(range('2026-W47', 'Europe/Berlin').startMs, 'Europe/Berlin')).toBe('2026-11-16 00:00');
  });

  it('takes the week of an instant from its local date', () => {
    // Sunday 23:30 UTC is already Monday in Berlin: the next week there.
    const t = Date.UTC(2026, 10, 22, 23, 30);
    expect(isoWeekOf(t, 'UTC')).toEqual({ year: 2026, week: 47 });
    expect(isoWeekOf(t, 'Europe/Berlin')).toEqual({ year: 2026, week: 48 });
    expect(lastCompleteIsoWeek(t, 'Europe/Berlin')).toEqual({ year: 2026, week: 47 });
    expect(lastCompleteIsoWeek(t, 'UTC')).toEqual({ year: 2026, week: 46 });
  });

  it('has 167 hours in the week clocks spring forward and 169 in the week they fall back (Europe/Berlin)', () => {
    const spring = range('2026-W13', 'Europe/Berlin');
    expect(spring).toEqual({ startMs: Date.UTC(2026, 2, 22, 23), endMs: Date.UTC(2026, 2, 29, 22) });
    expect(spring.endMs - spring.startMs).toBe(167 * H);
    const fall = range('2026-W43', 'Europe/Berlin');
    expect(fall.endMs - fall.startMs).toBe(169 * H);
    expect(utcOffsetMs(fall.startMs, 'Europe/Berlin')).toBe(2 * H);
    expect(utcOffsetMs(fall.endMs, 'Europe/Berlin')).toBe(1 * H);
    // Consecutive weeks tile time across the change.
    expect(range('2026-W14', 'Europe/Berlin').startMs).toBe(spring.endMs);
  });

  it('starts a day whose midnight a DST gap skipped at the end of the gap (America/Santiago)', () => {
    const t = startOfLocalDay(2026, 9, 6, 'America/Santiago');
    expect(t).toBe(Date.UTC(2026, 8, 6, 4));
    expect(formatLocal(t, 'America/Santiago', true)).toBe('2026-09-06 01:00:00');
    expect(formatLocal(t - 1000, 'America/Santiago', true)).toBe('2026-09-05 23:59:59');
  });

  it('starts a day whose midnight happens twice at the first one (America/Havana)', () => {
    const t = startOfLocalDay(2026, 11, 1, 'America/Havana');
    expect(t).toBe(Date.UTC(2026, 10, 1, 4));
    expect(formatLocal(t + H, 'America/Havana')).toBe('2026-11-01 00:00');
  });
});
