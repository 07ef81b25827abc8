// ISO-8601 weeks in a time zone: `2026-W47` ↔ the half-open range [Monday 00:00, next Monday 00:00) of local time.
//
// Design note. The week's dates are pure calendar arithmetic (done in UTC, where every day has 24 hours); only the two
// boundaries are turned into instants, through the zone's UTC offset as Intl reports it. A local midnight can be
// missing (a DST gap at 00:00, e.g. America/Santiago) — the week then starts at the first instant of that day, the
// end of the gap — or happen twice (a fall-back at 00:00) — the week starts at the first one. So a week is 168 hours
// long except across a DST change, where it is 167 or 169 hours, and consecutive weeks tile time with no gap.
export interface IsoWeek {
  /** ISO week-numbering year (may differ from the calendar year of the days near New Year). */
  year: number;
  /** 1..52 or 53. */
  week: number;
}

export interface WeekRange {
  startMs: number;
  endMs: number;
}

const DAY_MS = 86_400_000;
const WEEK_RE = /^(\d{4})-W(\d{2})$/;

/** A malformed or impossible week ('2025-W53', '2026-w1', 'last week'). */
export class IsoWeekError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IsoWeekError';
  }
}

/** The ISO week of a calendar date (y, m 1..12, d). */
function weekOfDate(y: number, m: number, d: number): IsoWeek {
  const dayMs = Date.UTC(y, m - 1, d);
  const weekday = (new Date(dayMs).getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  // The week belongs to the year of its Thursday.
  const thursday = new Date(dayMs + (3 - weekday) * DAY_MS);
  const year = thursday.getUTCFullYear();
  return { year, week: 1 + Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * DAY_MS)) };
}

/** 52 or 53: a year has 53 ISO weeks when 28 December (always in the last week) is in week 53. */
export function weeksInIsoYear(year: number): number {
  return weekOfDate(year, 12, 28).week;
}

export function formatIsoWeek(w: IsoWeek): string {
  return `${String(w.year).padStart(4, '0')}-W${String(w.week).padStart(2, '0')}`;
}

/** '2026-W47' → { year: 2026, week: 47 }; throws IsoWeekError naming what is wrong. */
export function parseIsoWeek(text: string): IsoWeek {
  const m = WEEK_RE.exec(text);
  if (!m) throw new IsoWeekError(`'${text}' is not an ISO week: expected YYYY-Www, e.g. 2026-W47`);
  const year = Number(m[1]),
    week = Number(m[2]);
  if (year < 1970) throw new IsoWeekError(`'${text}': the year must be 1970 or later`);
  const weeks = weeksInIsoYear(year);
  if (week < 1 || week > weeks) throw new IsoWeekError(`'${text}': ${year} has ISO weeks 01 to ${weeks}`);
  return { year, week };
}

export function isIsoWeekText(text: string): boolean {
  try {
    parseIsoWeek(text);
    return true;
  } catch {
    return false;
  }
}

// One formatter per zone: building Intl.DateTimeFormat is the expensive part.
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatterOf(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

export interface LocalTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** The wall-clock time of an instant in a zone (whole seconds). */
export function localTimeOf(ms: number, timeZone: string): LocalTime {
  const parts: Record<string, number> = {};
  for (const p of formatterOf(timeZone).formatToParts(new Date(ms))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  return { year: parts['year']!, month: parts['month']!, day: parts['day']!, hour: parts['hour']!, minute: parts['minute']!, second: parts['second']! };
}

/** The zone's offset from UTC at an instant, ms (Europe/Berlin in summer: +7_200_000). */
export function utcOffsetMs(ms: number, timeZone: string): number {
  const t = localTimeOf(ms, timeZone);
  const wall = Date.UTC(t.year, t.month - 1, t.day, t.hour, t.minute, t.second);
  return wall - (ms - (((ms % 1000) + 1000) % 1000));
}

/** The first instant of a local calendar day (its midnight, or the end of a DST gap that swallowed midnight). */
export function startOfLocalDay(y: number, m: number, d: number, timeZone: string): number {
  const wall = Date.UTC(y, m - 1, d);
  // The offsets in force around that wall time: a day either side covers any transition near midnight.
  const offsets = new Set([utcOffsetMs(wall - DAY_MS, timeZone), utcOffsetMs(wall, timeZone), utcOffsetMs(wall + DAY_MS, timeZone)]);
  const candidates = [...offsets].map((o) => wall - o);
  const isMidnight = (t: number): boolean => {
    const l = localTimeOf(t, timeZone);
    return l.year === y && l.month === m && l.day === d && l.hour === 0 && l.minute === 0 && l.second === 0;
  };
  const exact = candidates.filter(isMidnight);
  if (exact.length > 0) return Math.min(...exact);
  // Midnight does not exist: the day starts where the gap ends, the latest candidate that falls on that day.
  const onDay = candidates.filter((t) => {
    const l = localTimeOf(t, timeZone);
    return l.year === y && l.month === m && l.day === d;
  });
  if (onDay.length === 0) throw new Error(`cannot find the start of ${y}-${m}-${d} in ${timeZone}`);
  return Math.min(...onDay);
}

/** Calendar date (UTC arithmetic) of the Monday of an ISO week. */
function mondayOf(w: IsoWeek): { y: number; m: number; d: number } {
  const jan4 = Date.UTC(w.year, 0, 4);
  const weekday = (new Date(jan4).getUTCDay() + 6) % 7;
  const monday = new Date(jan4 - weekday * DAY_MS + (w.week - 1) * 7 * DAY_MS);
  return { y: monday.getUTCFullYear(), m: monday.getUTCMonth() + 1, d: monday.getUTCDate() };
}

/** [Monday 00:00, next Monday 00:00) local time of the week, as unix ms. */
export function isoWeekRange(w: IsoWeek, timeZone: string): WeekRange {
  const mon = mondayOf(w);
  const next = new Date(Date.UTC(mon.y, mon.m - 1, mon.d) + 7 * DAY_MS);
  return {
    startMs: startOfLocalDay(mon.y, mon.m, mon.d, timeZone),
    endMs: startOfLocalDay(next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate(), timeZone),
  };
}

/** The ISO week an instant falls in, by its local date in the zone. */
export function isoWeekOf(ms: number, timeZone: string): IsoWeek {
  const l = localTimeOf(ms, timeZone);
  return weekOfDate(l.year, l.month, l.day);
}

export function previousIsoWeek(w: IsoWeek): IsoWeek {
  return w.week > 1 ? { year: w.year, week: w.week - 1 } : { year: w.year - 1, week: weeksInIsoYear(w.year - 1) };
}

/** The last week that has ended by `nowMs` (the week before the current one): what the Monday cron reports on. */
export function lastCompleteIsoWeek(nowMs: number, timeZone: string): IsoWeek {
  return previousIsoWeek(isoWeekOf(nowMs, timeZone));
}

/** 'YYYY-MM-DD HH:MM' (or 'YYYY-MM-DD HH:MM:SS') of an instant in the zone (for report headers). */
export function formatLocal(ms: number, timeZone: string, withSeconds = false): string {
  const l = localTimeOf(ms, timeZone);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${l.year}-${p(l.month)}-${p(l.day)} ${p(l.hour)}:${p(l.minute)}${withSeconds ? `:${p(l.second)}` : ''}`;
}
