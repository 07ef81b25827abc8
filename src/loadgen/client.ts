// One streaming completion over HTTP (OpenAI's /v1/completions with stream: true), stamped on the client: TTFT at the
// first non-empty text chunk, a gap per later chunk, e2e at [DONE]. Plain fetch, no SDK: the load generator ships
// in the package and the openai SDK is a dev dependency only.
import type { RequestRecord } from './types.js';
import type { RequestSpec } from './workload.js';

/** Server-sent events parser (the subset OpenAI uses): feed decoded text as it arrives, get each event's data.
 *  Handles lines and events split across network chunks, \n / \r\n / \r line ends, multi-line data and comments. */
export class SseParser {
  private buf = '';
  private data: string[] = [];

  push(text: string): string[] {
    this.buf += text;
    const out: string[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      // A lone \r at the very end may be the first half of \r\n: wait for the next chunk to tell.
      if (m[0] === '\r' && m.index === this.buf.length - 1) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line, out);
    }
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

export async function streamCompletion(o: StreamOptions): Promise<RequestRecord> {
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
  let res: Response;
  try {
    res = await fetch(`${apiRoot(o.url)}/completions`, {
      method: 'POST',
      headers: headers(o.apiKey),
      body: JSON.stringify({
        model: o.model,
        prompt: o.spec.prompt,
        max_tokens: o.spec.maxTokens,
        temperature: o.temperature,
        seed: o.spec.seed,
        stream: true,
        stream_options: { include_usage: true },
        ...(o.ignoreEos ? { ignore_eos: true } : {}),
      }),
      ...(o.signal ? { signal: o.signal } : {}),
    });
  } catch (e) {
    return o.signal?.aborted ? fail('aborted', 'the run ended first') : fail('network', (e as Error).message);
  }
  if (!res.ok || !res.body) {
    // A refusal says when to come back; overload runs check that every shed request was told.
    const retryAfter = res.headers.get('retry-after');
    if (retryAfter !== null) rec.retryAfterS = Number(retryAfter);
    const text = await res.text().catch(() => '');
    return fail(`http_${res.status}`, text.slice(0, 300));
  }
  const parser = new SseParser();
  const decoder = new TextDecoder();
  const reader = res.body.getReader();
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
  try {
    for (;;) {
      const { value, done } = await reader.read();
      const events = done ? parser.end() : parser.push(decoder.decode(value, { stream: true }));
      for (const ev of events) {
        const r = onData(ev);
        if (r === 'error') {
          await reader.cancel().catch(() => undefined);
          return rec;
        }
        if (r === 'done') {
          // Anything after [DONE] is ignored; release the connection.
          await reader.cancel().catch(() => undefined);
          rec.ok = true;
          rec.e2eS = (performance.now() - t0) / 1000;
          rec.completionTokens = usageTokens ?? chunks;
          return rec;
        }
      }
      if (done) return fail('protocol', 'the stream ended without [DONE]');
    }
  } catch (e) {
    return o.signal?.aborted ? fail('aborted', 'the run ended first') : fail('network', (e as Error).message);
  }
}
