// Mixed traffic for soak runs: completions and chat, streamed and not, and clients that go away mid-stream: every
// path whose resources (KV blocks, sockets, listeners) and counters the server must keep straight over a long run.
// Closed loop, C workers back to back; each request's kind is drawn from a seeded RNG. Every request asks for
// exactly maxTokens tokens (ignore_eos), so a disconnect always leaves a generation still running to be cancelled.
import { driveClosedLoop } from './arrivals.js';
import { apiRoot, SseParser } from './client.js';
import { summarize, type Distribution } from './report.js';
import { BUILTIN_PROMPTS, createRng } from './workload.js';

export type MixedEndpoint = 'completions' | 'chat';

/** The route template each endpoint is counted under (tuneloop_requests_total's `endpoint`). */
export const MIXED_ROUTES: Record<MixedEndpoint, string> = { completions: '/v1/completions', chat: '/v1/chat/completions' };

export interface MixedRecord {
  endpoint: MixedEndpoint;
  stream: boolean;
  /** `ok`, `disconnected` (the client left after the first text), or a failure: `http_<status>`, `network`,
   *  `stream_error`, `protocol`. */
  outcome: string;
  /** usage.completion_tokens when ok; text chunks seen before leaving when disconnected. */
  completionTokens: number;
  e2eS: number;
}

export interface MixedOptions {
  url: string;
  model: string;
  concurrency: number;
  durationS: number;
  /** Default 48. */
  maxTokens?: number;
  /** Share of chat requests (the rest are completions); default 0.5. */
  chatShare?: number;
  /** Share of streamed requests; default 0.5. */
  streamShare?: number;
  /** Share of streamed requests whose client disconnects after the first text; default 0.2. */
  disconnectShare?: number;
  seed?: number;
  signal?: AbortSignal;
  onRecord?: (r: MixedRecord) => void;
}

export interface MixedSummary {
  sent: number;
  ok: number;
  disconnected: number;
  failed: number;
  /** Requests by `endpoint stream|plain outcome`. */
  byKind: Record<string, number>;
  /** Requests by endpoint and outcome, for checking the server's counters. */
  byEndpoint: Record<MixedEndpoint, Record<string, number>>;
  /** Sum of usage.completion_tokens over the ok requests. */
  okCompletionTokens: number;
  /** Text chunks the disconnected clients saw before they left. */
  disconnectedTokensSeen: number;
  maxTokens: number;
  /** Completed requests, seconds. */
  e2e: Distribution;
}

interface Chunk {
  choices?: { text?: string; delta?: { content?: string } }[];
  usage?: { completion_tokens?: number } | null;
  error?: unknown;
}

async function sendOne(o: MixedOptions, endpoint: MixedEndpoint, stream: boolean, leave: boolean, prompt: string, seed: number, maxTokens: number): Promise<MixedRecord> {
  const t0 = performance.now();
  const rec: MixedRecord = { endpoint, stream, outcome: 'ok', completionTokens: 0, e2eS: 0 };
  const done = (outcome: string): MixedRecord => {
    rec.outcome = outcome;
    rec.e2eS = (performance.now() - t0) / 1000;
    return rec;
  };
  const body = {
    model: o.model,
    max_tokens: maxTokens,
    temperature: 0.8,
    seed,
    ignore_eos: true,
    ...(endpoint === 'chat' ? { messages: [{ role: 'user', content: prompt }] } : { prompt }),
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  };
  const leaving = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, leaving.signal]) : leaving.signal;
  let res: Response;
  try {
    res = await fetch(`${apiRoot(o.url)}/${endpoint === 'chat' ? 'chat/completions' : 'completions'}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal,
    });
  } catch {
    return done('network');
  }
  if (!res.ok || !res.body) {
    await res.arrayBuffer().catch(() => undefined);
    return done(`http_${res.status}`);
  }
  try {
    if (!stream) {
      const j = (await res.json()) as Chunk;
      rec.completionTokens = j.usage?.completion_tokens ?? 0;
      return done('ok');
    }
    const parser = new SseParser();
    const decoder = new TextDecoder();
    const reader = res.body.getReader();
    for (;;) {
      const { value, done: end } = await reader.read();
      for (const data of end ? parser.end() : parser.push(decoder.decode(value, { stream: true }))) {
        if (data === '[DONE]') {
          await reader.cancel().catch(() => undefined);
          return done('ok');
        }
        const c = JSON.parse(data) as Chunk;
        if (c.error) return done('stream_error');
        if (c.usage?.completion_tokens !== undefined) rec.completionTokens = c.usage.completion_tokens;
        const text = c.choices?.[0]?.text ?? c.choices?.[0]?.delta?.content;
        if (!text) continue;
        if (leave) {
          // The client goes away mid-generation: the server must cancel it and free its KV blocks.
          rec.completionTokens = 1;
          leaving.abort();
          await reader.cancel().catch(() => undefined);
          return done('disconnected');
        }
      }
      if (end) return done('protocol');
    }
  } catch (e) {
    return done(e instanceof SyntaxError ? 'protocol' : 'network');
  }
}

/** Runs mixed traffic for durationS; resolves once every request has settled. Tallies as it goes rather than
 *  keeping every record: a soak runs in the server's process, and 40 000 records (~4 MiB) would read as server
 *  memory growth. */
export async function runMixedTraffic(o: MixedOptions): Promise<MixedSummary> {
  const maxTokens = o.maxTokens ?? 48;
  const rng = createRng(o.seed ?? 0);
  const t: MixedSummary = {
    sent: 0,
    ok: 0,
    disconnected: 0,
    failed: 0,
    byKind: {},
    byEndpoint: { completions: {}, chat: {} },
    okCompletionTokens: 0,
    disconnectedTokensSeen: 0,
    maxTokens,
    e2e: summarize([]),
  };
  const e2e: number[] = [];
  const tally = (r: MixedRecord): void => {
    t.sent++;
    const k = `${r.endpoint} ${r.stream ? 'stream' : 'plain'} ${r.outcome}`;
    t.byKind[k] = (t.byKind[k] ?? 0) + 1;
    t.byEndpoint[r.endpoint][r.outcome] = (t.byEndpoint[r.endpoint][r.outcome] ?? 0) + 1;
    if (r.outcome === 'ok') {
      t.ok++;
      t.okCompletionTokens += r.completionTokens;
      e2e.push(r.e2eS);
    } else if (r.outcome === 'disconnected') {
      t.disconnected++;
      t.disconnectedTokensSeen += r.completionTokens;
    } else {
      t.failed++;
    }
  };
  await driveClosedLoop({
    concurrency: o.concurrency,
    durationS: o.durationS,
    ...(o.signal ? { signal: o.signal } : {}),
    fire: async (i) => {
      // Drawn in order before the request is sent, so the sequence of kinds depends on the seed alone.
      const endpoint: MixedEndpoint = rng() < (o.chatShare ?? 0.5) ? 'chat' : 'completions';
      const stream = rng() < (o.streamShare ?? 0.5);
      const leave = stream && rng() < (o.disconnectShare ?? 0.2);
      const r = await sendOne(o, endpoint, stream, leave, BUILTIN_PROMPTS[i % BUILTIN_PROMPTS.length]!, i, maxTokens);
      tally(r);
      o.onRecord?.(r);
    },
  });
  t.e2e = summarize(e2e);
  return t;
}
