// Fault points for crash tests: `TUNELOOP_FAULTS=tuner.applying` (comma-separated names) makes the process kill itself with SIGKILL when it
// reaches that named point, exactly as `kill -9` would at that instant (no handlers, no flushing). Off unless the
// variable is set; the names are listed here so a typo in a test fails loudly instead of silently never firing.
export const FAULT_POINTS = [
  /** After the engine accepted a change, before the new settings version is committed. */
  'tuner.applying',
  /** Halfway through writing a report file's temporary copy (before its fsync and rename). */
  'report.writing',
] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

function armed(): Set<string> {
  const raw = process.env['TUNELOOP_FAULTS'] ?? '';
  const names = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names) {
    if (!(FAULT_POINTS as readonly string[]).includes(n)) throw new Error(`TUNELOOP_FAULTS: unknown fault point '${n}' (known: ${FAULT_POINTS.join(', ')})`);
  }
  return new Set(names);
}

export function faultPoint(name: FaultPoint): void {
  if (process.env['TUNELOOP_FAULTS'] && armed().has(name)) process.kill(process.pid, 'SIGKILL');
}
