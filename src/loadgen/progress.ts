// Progress while a run goes: one redrawn line on a terminal, a plain line every few seconds otherwise (CI logs stay
// readable), nothing with --quiet. Written to stderr so that stdout carries only the report.
import type { RequestRecord } from './types.js';

// Function-valued fields rather than methods: the run hands `progress.sent` on as a callback.
export interface Progress {
  sent: (n: number) => void;
  settled: (r: RequestRecord) => void;
  stop: () => void;
}

export interface ProgressOptions {
  quiet?: boolean;
  stream?: NodeJS.WriteStream;
  /** Planned seconds of sending (the bar's length); the bar shows requests instead when absent. */
  durationS?: number;
  /** Planned requests, when known. */
  total?: number;
  /** Redraw period; plain mode writes every 10 periods. */
  intervalMs?: number;
}

const SILENT: Progress = { sent: () => undefined, settled: () => undefined, stop: () => undefined };

export function createProgress(o: ProgressOptions): Progress {
  if (o.quiet) return SILENT;
  const out = o.stream ?? process.stderr;
  const tty = out.isTTY === true;
  const t0 = performance.now();
  let sent = 0,
    done = 0,
    failed = 0,
    tokens = 0,
    ticks = 0;
  const line = (): string => {
    const el = (performance.now() - t0) / 1000;
    const frac = o.durationS ? el / o.durationS : o.total ? done / o.total : 0;
    const width = 24,
      filled = Math.max(0, Math.min(width, Math.round(frac * width)));
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    const when = o.durationS ? `${el.toFixed(1)}/${o.durationS} s` : `${el.toFixed(1)} s`;
    const total = o.total ? `/${o.total}` : '';
    return `${bar} ${when}  sent ${sent}${total}  done ${done}  failed ${failed}  ${(tokens / Math.max(el, 1e-9)).toFixed(1)} tok/s`;
  };
  const timer = setInterval(() => {
    ticks++;
    if (tty) out.write(`\r${line()}\x1b[K`);
    else if (ticks % 10 === 0) out.write(`${line()}\n`);
  }, o.intervalMs ?? 250);
  // Never keep the process alive for the sake of a progress line.
  timer.unref();
  return {
    sent: (n) => void (sent = n),
    settled: (r) => {
      if (r.ok) {
        done++;
        tokens += r.completionTokens;
      } else failed++;
    },
    stop: () => {
      clearInterval(timer);
      out.write(tty ? `\r${line()}\x1b[K\n` : `${line()}\n`);
    },
  };
}
