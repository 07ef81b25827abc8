// `tuneloop load`: flags to LoadOptions, Ctrl-C to an early (still reported) end, the summary to stdout, JSON to a
// file. The lead's src/cli.ts dispatches `load` here.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { formatReport } from './report.js';
import { runLoad, type LoadOptions } from './run.js';
import { DEFAULT_SLO } from './types.js';
import { loadPromptFile, parseOutputLen } from './workload.js';

export const LOAD_USAGE = `usage:
  tuneloop load --url URL [--rate R] [--duration S] [--concurrency C] [--requests N]
                [--prompt-file F] [--output-len N|uniform:A-B|exp:MEAN] [--temperature T] [--model NAME] [--seed N]
                [--slo-ttft S] [--slo-itl S] [--slo-e2e S] [--json FILE] [--records] [--ignore-eos] [--quiet] [--api-key KEY]

  --rate R         open loop: Poisson arrivals, R requests/s (with --concurrency: at most C in flight)
  --concurrency C  without --rate, closed loop: C streams, each sending its next request when the last ends
  --duration S     seconds of sending (default 30 unless --requests is given); stragglers get 30 s, then are cut
  --requests N     stop after N requests
  --prompt-file F  one prompt per line (\\n in a line is a newline); default: built-in Shakespeare openings
  --output-len     max_tokens per request: fixed N (default 64), uniform:A-B, or exp:MEAN
  --ignore-eos     always generate the full length (sends ignore_eos: true, a vLLM-style extension)
  --model NAME     default: the first model of GET /v1/models
  --slo-*          per-request targets for goodput: TTFT (default ${DEFAULT_SLO.ttftP99Seconds} s), the request's p99
                   inter-token gap (${DEFAULT_SLO.interTokenP99Seconds} s), end to end (${DEFAULT_SLO.e2eP99Seconds} s)
  --json FILE      write the report as JSON (--records: with every request's record)
`;

class UsageError extends Error {}

function num(name: string, v: string | undefined, check: (n: number) => boolean = (n) => n > 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !check(n)) throw new UsageError(`--${name}: invalid value '${v}'`);
  return n;
}
const posInt = (n: number) => Number.isInteger(n) && n >= 1;

/** Parse `tuneloop load` flags (without the subcommand) into run options. Throws on bad flags. */
export function parseLoadArgs(argv: string[]): LoadOptions & { json?: string; quiet: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      rate: { type: 'string' },
      duration: { type: 'string' },
      concurrency: { type: 'string' },
      requests: { type: 'string' },
      'prompt-file': { type: 'string' },
      'output-len': { type: 'string' },
      temperature: { type: 'string' },
      model: { type: 'string' },
      seed: { type: 'string' },
      'slo-ttft': { type: 'string' },
      'slo-itl': { type: 'string' },
      'slo-e2e': { type: 'string' },
      json: { type: 'string' },
      records: { type: 'boolean', default: false },
      'ignore-eos': { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      'api-key': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (!values.url) throw new UsageError('--url is required');
  try {
    new URL(values.url);
  } catch {
    throw new UsageError(`--url: not a URL: '${values.url}'`);
  }
  const rate = num('rate', values.rate);
  const concurrency = num('concurrency', values.concurrency, posInt);
  const maxRequests = num('requests', values.requests, posInt);
  if (rate === undefined && concurrency === undefined) throw new UsageError('give --rate (open loop) or --concurrency (closed loop)');
  const durationS = num('duration', values.duration) ?? (maxRequests === undefined || rate !== undefined ? 30 : undefined);
  let outputLen;
  try {
    outputLen = parseOutputLen(values['output-len'] ?? '64');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const slo = {
    ttftP99Seconds: num('slo-ttft', values['slo-ttft']) ?? DEFAULT_SLO.ttftP99Seconds,
    interTokenP99Seconds: num('slo-itl', values['slo-itl']) ?? DEFAULT_SLO.interTokenP99Seconds,
    e2eP99Seconds: num('slo-e2e', values['slo-e2e']) ?? DEFAULT_SLO.e2eP99Seconds,
  };
  const opt = <K extends string, V>(k: K, v: V | undefined) => (v === undefined ? {} : ({ [k]: v } as Record<K, V>));
  return {
    url: values.url,
    outputLen,
    slo,
    quiet: values.quiet,
    includeRecords: values.records,
    ignoreEos: values['ignore-eos'],
    progress: !values.quiet,
    ...opt('rate', rate),
    ...opt('concurrency', concurrency),
    ...opt('maxRequests', maxRequests),
    ...opt('durationS', durationS),
    ...opt(
      'temperature',
      num('temperature', values.temperature, (n) => n >= 0),
    ),
    ...opt(
      'seed',
      num('seed', values.seed, (n) => Number.isInteger(n) && n >= 0),
    ),
    ...opt('model', values.model),
    ...opt('apiKey', values['api-key'] ?? process.env.OPENAI_API_KEY),
    ...opt('json', values.json),
    ...opt('prompts', values['prompt-file'] !== undefined ? loadPromptFile(values['prompt-file']) : undefined),
  };
}

/** `tuneloop load ARGS`: returns the exit code (0 ran, 1 no request completed, 2 bad flags). */
export async function loadCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(LOAD_USAGE);
    return 0;
  }
  let o;
  try {
    o = parseLoadArgs(argv);
  } catch (e) {
    process.stderr.write(`tuneloop load: ${(e as Error).message}\n${LOAD_USAGE}`);
    return 2;
  }
  // First Ctrl-C ends the run early and still reports; a second one kills as usual.
  const stop = new AbortController();
  const onSigint = () => {
    process.stderr.write('\nstopping: aborting requests in flight (Ctrl-C again to quit at once)\n');
    stop.abort();
    process.off('SIGINT', onSigint);
  };
  process.on('SIGINT', onSigint);
  try {
    const report = await runLoad({ ...o, signal: stop.signal });
    process.stdout.write(`${formatReport(report)}\n`);
    if (o.json) {
      writeFileSync(o.json, `${JSON.stringify(report, null, 2)}\n`);
      if (!o.quiet) process.stderr.write(`wrote ${o.json}\n`);
    }
    return report.requests.completed > 0 ? 0 : 1;
  } catch (e) {
    process.stderr.write(`tuneloop load: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
