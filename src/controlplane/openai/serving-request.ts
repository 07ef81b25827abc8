// One /v1 generation request's life, in one small object: it takes the request's slots (the server's active count,
// the key's concurrent-stream slot), cancels the generation the moment the client goes away, answers errors in
// OpenAI's shape, gives the slots back when the response ends, and produces the request's one `FinishedRequest`
// (hooks.ts) once both its response has ended and its handler has settled (after a client disconnect the response
// ends first and the engine's cancelled result arrives a step later).
//
//   parsing ── submit() ──▶ running ── streaming() ──▶ streaming
//   running | streaming ── answered() ──▶ finished
//   parsing | running | streaming ── an error (answered as a status, or in-band mid-stream) ──▶ failed
//   parsing | running | streaming ── the client goes away ──▶ cancelled
//
// finished, failed and cancelled are terminal: the first ending wins (a handler that fails after its client went away
// stays cancelled; its error is still recorded). Any other transition is a bug and throws.
import type { Request, Response } from 'express';
import type { Generation } from '../../engine/generation.js';
import type { GenerateRequest, GenerationResult } from '../../engine/types.js';
import { CP_ERRORS, ControlPlaneError, RETRY_AFTER_S, refusalLog, sendError, toControlPlaneError } from '../errors.js';
import type { FinishedRequest, GenerationEndpoint, ToolOutcome } from '../hooks.js';
import type { ServerState } from '../server-state.js';
import type { ConcurrencyLimiter } from '../security.js';
import type { BuiltRequest } from './request-builder.js';
import { sseFrame } from './sse.js';
import type { StructuredOutput } from './schema-structured.js';

export type ServingState = 'parsing' | 'running' | 'streaming' | 'finished' | 'failed' | 'cancelled';

const NEXT: { readonly [S in ServingState]: readonly ServingState[] } = {
  parsing: ['running', 'failed', 'cancelled'],
  running: ['streaming', 'finished', 'failed', 'cancelled'],
  streaming: ['finished', 'failed', 'cancelled'],
  finished: [],
  failed: [],
  cancelled: [],
};

export interface ServingRequestDeps {
  endpoint: GenerationEndpoint;
  req: Request;
  res: Response;
  server: ServerState;
  /** Concurrent generation requests per key (server.maxConcurrentStreamsPerKey). */
  streams: ConcurrencyLimiter;
  /** Counts error answers by wire code (MetricsHook.observeError). */
  observeError?: ((reason: string) => void) | undefined;
  /** Receives the request's one FinishedRequest (hooks.ts fanOutFinished). */
  onFinished(f: FinishedRequest, log: Request['log']): void;
}

/** What the response's 'close' tells: how it ended. */
interface ResponseEnd {
  status: number;
  durationS: number;
  clientDisconnected: boolean;
}

export class ServingRequest {
  /** Whether the answer is a stream (set once the body is parsed; refusals before that count as plain). */
  stream = false;
  /** Set by the router for a chat request with tools or a reasoning template (hooks.ts ToolOutcome). */
  tools: ToolOutcome | undefined;
  private current: ServingState = 'parsing';
  private readonly startedMs = performance.now();
  private readonly responseEnded: Promise<ResponseEnd>;
  private release: (() => void) | undefined;
  private gen: Generation | undefined;
  private submitted: GenerateRequest | undefined;
  /** The request's response_format / grammar (router.ts), for the structured-output metrics. */
  structured: StructuredOutput | undefined;
  private promptTokens: number | undefined;
  private result: GenerationResult | undefined;
  private error: ControlPlaneError | undefined;

  constructor(private readonly d: ServingRequestDeps) {
    d.server.begin();
    this.responseEnded = new Promise((resolve) => d.res.once('close', () => resolve(this.responseClosed())));
  }

  get state(): ServingState {
    return this.current;
  }

  /** True once the client has gone: write nothing more. */
  get cancelled(): boolean {
    return this.current === 'cancelled';
  }

  /**
   * The request's whole life around `body` (parse, submit, answer): slots first, errors answered in OpenAI's shape,
   * then — once the response has ended too — the FinishedRequest, exactly once.
   */
  async run(body: (sr: ServingRequest) => Promise<void>): Promise<void> {
    try {
      this.acquire();
      await body(this);
    } catch (err) {
      this.fail(err);
    }
    const end = await this.responseEnded;
    this.d.onFinished(this.finished(end), this.d.req.log);
  }

  /** Submit to the engine (`generate`); undefined, and nothing submitted, when the client left while parsing. */
  submit(built: BuiltRequest, generate: (r: GenerateRequest) => Generation): Generation | undefined {
    this.promptTokens = built.promptTokens;
    if (this.cancelled) return undefined;
    const gen = generate(built.request);
    this.gen = gen;
    this.submitted = built.request;
    this.d.server.inflight.add(gen);
    this.transition('running');
    return gen;
  }

  /** The SSE head has been sent: from here on errors are answered in-band. */
  streaming(): void {
    this.transition('streaming');
  }

  /** The engine's result, kept for the report whatever the response's fate; false when the client has gone. */
  resultArrived(r: GenerationResult): boolean {
    this.result = r;
    return !this.cancelled;
  }

  /** The whole answer has been written. */
  answered(): void {
    this.transition('finished');
  }

  private transition(next: ServingState): boolean {
    const allowed = NEXT[this.current];
    if (allowed.length === 0) return false; // terminal: the first ending wins
    if (!allowed.includes(next)) throw new Error(`ServingRequest: no transition ${this.current} → ${next}`);
    this.current = next;
    return true;
  }

  private acquire(): void {
    const { streams, req } = this.d;
    // Counted from arrival, not from submission: a key may not park more requests than its limit in parsing either.
    this.release = streams.acquire(req.clientKey ?? 'anonymous');
    if (this.release) return;
    throw new ControlPlaneError(
      'CP_ERR_RATE_LIMITED',
      `Too many concurrent generation requests: at most ${streams.limit} in flight per API key or client address ` +
        '(server.maxConcurrentStreamsPerKey); retry when one has finished',
      { headers: { 'Retry-After': String(RETRY_AFTER_S) } },
    );
  }

  private fail(err: unknown): void {
    const { req, res, endpoint, observeError } = this.d;
    const cpe = toControlPlaneError(err, endpoint === 'chat_completions' ? 'messages' : 'prompt');
    this.error = cpe;
    if (cpe.status >= 500) req.log?.error({ err }, 'request failed');
    else req.log?.info(refusalLog(cpe), 'request refused');
    const clientGone = this.cancelled;
    this.transition('failed');
    if (res.headersSent) {
      // Mid-stream: the status line is gone; report in-band as OpenAI does, then end the stream.
      if (!res.writableEnded) {
        observeError?.(CP_ERRORS[cpe.code].code);
        res.write(sseFrame(cpe.toResponse()));
        res.end();
      }
    } else if (!clientGone) {
      sendError(res, cpe, observeError);
    }
  }

  /** The response's 'close': before it finished means the client went away, so cancel now (the engine frees the
   *  sequence at its next step boundary). Either way the slots are given back here, not when the result arrives. */
  private responseClosed(): ResponseEnd {
    const { req, res, server } = this.d;
    const clientDisconnected = !res.writableFinished;
    if (clientDisconnected) {
      this.transition('cancelled');
      if (this.gen) {
        req.log?.info({ generation: this.gen.id }, 'client disconnected: cancelling generation');
        this.gen.cancel();
      }
    }
    if (this.gen) server.inflight.delete(this.gen);
    this.release?.();
    server.end();
    return { status: res.statusCode, durationS: (performance.now() - this.startedMs) / 1000, clientDisconnected };
  }

  private finished(end: ResponseEnd): FinishedRequest {
    const s = this.current;
    const outcome = s === 'finished' || s === 'failed' || s === 'cancelled' ? s : end.clientDisconnected ? 'cancelled' : this.error ? 'failed' : 'finished';
    const f: FinishedRequest = {
      endpoint: this.d.endpoint,
      outcome,
      status: end.status,
      stream: this.stream,
      durationS: end.durationS,
      clientDisconnected: end.clientDisconnected,
    };
    if (this.error) f.errorCode = this.error.code;
    if (this.promptTokens !== undefined) f.promptTokens = this.promptTokens;
    if (this.submitted) f.request = this.submitted;
    if (this.result) f.result = this.result;
    if (this.structured) f.structured = this.structured;
    if (this.tools) f.tools = this.tools;
    return f;
  }
}
