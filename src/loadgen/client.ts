// One streaming completion over HTTP (OpenAI's /v1/completions with stream: true), stamped on the client: TTFT at the
// first non-empty text chunk, a gap per later chunk, e2e at [DONE]. node:http, no SDK: the load generator ships in the
// package and the openai SDK is a dev dependency only.
import http from 'node:http';
import https from 'node:https';
import type { RequestRecord } from './types.js';
import type { RequestSpec } from './workload.js';

/** Server-sent events parser (the subset OpenAI uses): feed decoded text as it arrives, get each event's data.
 *  Handles lines and events split across network chunks, \n / \r\n / \r line ends, multi-line data and comments. */
export class SseParser {
  private buf = '';
  private data: string[] = [];

  push(text: string): string[] {
    // One scan per pushed text, from where the last line ended (no re-scan and no copy of the rest per line).
    const buf = this.buf.length > 0 ? this.buf + text : text;
    const out: string[] = [];
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      // A lone \r at the very end may be the first half of \r\n: wait for the next chunk to tell.
      if (c === 13 && i === buf.length - 1) break;
      this.line(buf.slice(start, i), out);
      if (c === 13 && buf.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
    this.buf = start === 0 ? buf : buf.slice(start);
    return out;
  }

  /** The stream ended: an event without its closing blank line still counts. */
  end(): string[] {
    const out: string[] = [];
    if (this.buf.length > 0) this.line(this.buf, out);
    this.buf = '';
    this.line('', out);
    return out;
  }

  private line(line: string, out: string[]): void {
    if (line === '') {
      if (this.data.length > 0) out.push(this.data.join('\n'));
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return; // comment / keep-alive
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
  }
}

/** `http://host:port`, `http://host:port/` and `http://host:port/v1` all mean the same API root. */
export function apiRoot(url: string): string {
  const u = url.replace(/\/+$/, '');
  return u.endsWith('/v1') ? u : `${u}/v1`;
}

function headers(apiKey: string | undefined): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json' };
  if (apiKey) h.authorization = `Bearer ${apiKey}`;
  return h;
}

/** The first model the server lists (GET /v1/models), for when --model is not given. */
export async function firstModel(url: string, apiKey?: string, signal?: AbortSignal): Promise<string> {
  const res = await fetch(`${apiRoot(url)}/models`, { headers: headers(apiKey), ...(signal ? { signal } : {}) });
  if (!res.ok) throw new Error(`GET ${apiRoot(url)}/models answered HTTP ${res.status}`);
  const body = (await res.json()) as { data?: { id?: unknown }[] };
  const id = body.data?.[0]?.id;
  if (typeof id !== 'string') throw new Error(`GET ${apiRoot(url)}/models listed no model; pass --model`);
  return id;
}

export interface StreamOptions {
  url: string;
  model: string;
  spec: RequestSpec;
  temperature: number;
  ignoreEos?: boolean;
  apiKey?: string;
  /** Aborts the request (the run's end); the record then says `aborted`. */
  signal?: AbortSignal;
  /** performance.now() at the run's start, for startS. */
  runStartMs: number;
}

interface CompletionChunk {
  choices?: { text?: string; finish_reason?: string | null }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: { message?: string; type?: string } | string;
}

/** Keep-alive connections for the load: fetch's (undici's) per-chunk path — web streams, promise per read — costs
 *  the client several times node:http's, and in benchmarks the client shares the machine with the server. */
const httpAgent = new http.Agent({ keepAlive: true });
const httpsAgent = new https.Agent({ keepAlive: true });

export function streamCompletion(o: StreamOptions): Promise<RequestRecord> {
  const t0 = performance.now();
  const rec: RequestRecord = { index: o.spec.index, startS: (t0 - o.runStartMs) / 1000, ok: false, itlS: [], e2eS: 0, completionTokens: 0 };
  let chunks = 0;
  let usageTokens: number | undefined;
  let last = 0;
  const fail = (kind: string, message: string): RequestRecord => {
    rec.errorKind = kind;
    rec.errorMessage = message;
    rec.e2eS = (performance.now() - t0) / 1000;
    rec.completionTokens = usageTokens ?? chunks;
    return rec;
  };
  const onData = (data: string): 'done' | 'error' | undefined => {
    if (data === '[DONE]') return 'done';
    let msg: CompletionChunk;
    try {
      msg = JSON.parse(data) as CompletionChunk;
    } catch {
      fail('protocol', `unparsable SSE data: ${data.slice(0, 100)}`);
      return 'error';
    }
    if (msg.error) {
      fail('stream_error', typeof msg.error === 'string' ? msg.error : (msg.error.message ?? JSON.stringify(msg.error)));
      return 'error';
    }
    if (msg.usage?.completion_tokens !== undefined) {
      usageTokens = msg.usage.completion_tokens;
      if (msg.usage.prompt_tokens !== undefined) rec.promptTokens = msg.usage.prompt_tokens;
    }
    const text = msg.choices?.[0]?.text;
    if (text) {
      const now = performance.now();
      if (chunks === 0) rec.ttftS = (now - t0) / 1000;
      else rec.itlS.push((now - last) / 1000);
      last = now;
      chunks++;
    }
    return undefined;
  };
  const body = JSON.stringify({
    model: o.model,
    prompt: o.spec.prompt,
    max_tokens: o.spec.maxTokens,
    temperature: o.temperature,
    seed: o.spec.seed,
    stream: true,
    stream_options: { include_usage: true },
    ...(o.ignoreEos ? { ignore_eos: true } : {}),
  });
  return new Promise<RequestRecord>((resolve) => {
    let settled = false;
    const settle = (r: RequestRecord): void => {
      if (settled) return;
      settled = true;
      resolve(r);
    };
    const networkError = (e: Error): void => settle(o.signal?.aborted ? fail('aborted', 'the run ended first') : fail('network', e.message));
    let url: URL;
    try {
      url = new URL(`${apiRoot(o.url)}/completions`);
    } catch (e) {
      settle(fail('network', (e as Error).message));
      return;
    }
    const secure = url.protocol === 'https:';
    const req = (secure ? https : http).request(url, {
      method: 'POST',
      headers: { ...headers(o.apiKey), 'content-length': Buffer.byteLength(body) },
      agent: secure ? httpsAgent : httpAgent,
      ...(o.signal ? { signal: o.signal } : {}),
    });
    req.on('error', networkError);
    req.on('response', (res) => {
      res.on('error', networkError);
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        // A refusal says when to come back; overload runs check that every shed request was told.
        const retryAfter = res.headers['retry-after'];
        if (typeof retryAfter === 'string') rec.retryAfterS = Number(retryAfter);
        let text = '';
        res.on('data', (d: string) => {
          if (text.length < 300) text += d;
        });
        res.on('end', () => settle(fail(`http_${res.statusCode}`, text.slice(0, 300))));
        return;
      }
      const parser = new SseParser();
      const handle = (events: string[]): boolean => {
        for (const ev of events) {
          const r = onData(ev);
          if (r === 'error') {
            res.destroy();
            settle(rec);
            return true;
          }
          if (r === 'done') {
            // Anything after [DONE] is ignored; the rest of the body (the chunked terminator) is read so that the
            // connection goes back to the pool.
            rec.ok = true;
            rec.e2eS = (performance.now() - t0) / 1000;
            rec.completionTokens = usageTokens ?? chunks;
            settle(rec);
            res.resume();
            return true;
          }
        }
        return false;
      };
      let finished = false;
      res.on('data', (text: string) => {
        if (!finished) finished = handle(parser.push(text));
      });
      res.on('end', () => {
        if (!finished && !handle(parser.end())) settle(fail('protocol', 'the stream ended without [DONE]'));
      });
      res.on('close', () => {
        if (!res.complete) networkError(new Error('the connection closed mid-stream'));
      });
    });
    req.end(body);
  });
}
