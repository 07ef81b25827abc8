// The OpenAI-compatible HTTP surface (express 5): /v1/completions, /v1/chat/completions (plain and SSE streaming),
// /v1/models, /healthz, /readyz, /metrics when a registry is given, the Alertmanager webhook (alerts-api.ts), the
// tuner's REST API (tuner-api.ts) and the weekly reports (reports-api.ts) under /api when their dependencies are
// given. Every error leaves in OpenAI's shape (errors.ts). A client that goes away cancels its generation at once,
// so abandoned requests free their KV blocks and batch slots instead of decoding for nobody.
import { randomUUID, timingSafeEqual } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { isEngineError } from '../engine/errors.js';
import type { Engine } from '../engine/engine.js';
import type { Generation } from '../engine/generation.js';
import type { FinishReason, GenerateRequest, GenerationResult, TokenLogprob } from '../engine/types.js';
import { CP_ERRORS, ControlPlaneError, RETRY_AFTER_S, fromEngineError, isControlPlaneError, modelNotFound } from './errors.js';
import { parseChatRequest, parseCompletionRequest, type ChatRequest, type CompletionRequest } from './openai/schema.js';
import { DEFAULT_CHAT_TEMPLATE, type ChatTemplate } from './openai/chat-template.js';
import type { AlertInbox } from '../alerts/inbox.js';
import { alertsRouter } from './alerts-api.js';
import type { TunerControl } from '../tuner/facade.js';
import type { ApiToken } from '../config/schema.js';
import { createApiAuth } from './auth.js';
import { tunerRouter } from './tuner-api.js';
import { reportsRouter, type ReportsRouterOptions } from './reports-api.js';
import { ConcurrencyLimiter, RateLimiter, apiKeyDigest, clientKeyOf, cors, credentialDigest, rateLimit, securityHeaders } from './security.js';

/** The settings the HTTP layer needs; serve.ts fills them from the config file or defaults. */
export interface ServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Bearer keys accepted on /v1/*; empty = no authentication. */
  apiKeys: string[];
  /** express.json limit: bytes, or a string like '1mb'. */
  bodyLimit: number | string;
  /** How long a graceful drain waits for in-flight requests before cancelling them. */
  drainTimeoutMs: number;
  /** The name /v1/models lists and requests must use. */
  modelName: string;
  /** Per-request deadline handed to the engine (0 = none): TIMEOUT → 504. */
  requestTimeoutMs: number;
  /** Bearer token Alertmanager must send to /api/alerts; '' = the alerts routes are disabled (404). */
  alertsWebhookToken: string;
  // The limits below are off when absent (an embedding caller opts in); `tuneloop serve` sets them from server.* in
  // the config, where they are on by default. security.ts has the mechanics.
  /** Exact browser origins allowed cross-origin; absent or empty: CORS closed. */
  corsOrigins?: string[];
  /** Requests per minute per key (or client address) on /v1 and /api; absent or 0: no limit. */
  rateLimitPerMinute?: number;
  /** Token-bucket size of that limit (default: one minute's worth). */
  rateLimitBurst?: number;
  /** Generation requests in flight per key (or client address); absent or 0: no limit. */
  maxConcurrentStreamsPerKey?: number;
  /** Most prompt tokens per request; absent: the context window decides. */
  maxPromptTokens?: number | undefined;
  /** Largest max_tokens accepted (and the cap of the default); absent: the context window decides. */
  maxTokensLimit?: number | undefined;
}

export const DEFAULT_SERVER_OPTIONS: Omit<ServerOptions, 'modelName'> = {
  host: '127.0.0.1',
  port: 8080,
  apiKeys: [],
  bodyLimit: 1024 * 1024,
  drainTimeoutMs: 30_000,
  requestTimeoutMs: 0,
  alertsWebhookToken: '',
};

/** One finished HTTP generation request, for request-level metrics (metrics.ts counts these). */
export interface RequestRecord {
  endpoint: 'completions' | 'chat_completions';
  status: number;
  stream: boolean;
  durationS: number;
  /** CP_ERR_* code when the request failed. */
  errorCode?: string;
  finishReason?: FinishReason;
  promptTokens?: number;
  completionTokens?: number;
  /** True when the client went away before the response finished. */
  clientDisconnected: boolean;
}

/** One finished generation request as the engine ran it: what the tuner records (request log, shadow mirror). */
export interface GenerationEvent {
  /** What was submitted to the engine; `request.tokens` holds the prompt token ids. */
  request: GenerateRequest;
  /** The prompt token ids (the same array as request.tokens). */
  promptTokens: number[];
  /** Absent when the generation failed before producing a result (ok false). */
  result?: GenerationResult;
  /** From the request's arrival to the end of its response, seconds. */
  durationS: number;
  /** False when it failed with an error; a client that went away is not an error (result.finishReason 'cancelled'). */
  ok: boolean;
}

/** What the app drives in metrics.ts's `Metrics` (structural, so tests can pass a stub or nothing). */
export interface MetricsHook {
  /** Every answered HTTP request, by route template (/v1/completions) and status. */
  observeRequest?(endpoint: string, status: number): void;
  /** Every error answer, by its stable wire code (invalid_request, queue_full, …). */
  observeError?(reason: string): void;
  /** Generation requests, with tokens and finish reason, once their response ends. */
  onRequest?(record: RequestRecord): void;
  /** GET /metrics exposition. */
  metricsText?(): Promise<string>;
  contentType?: string;
}

/** Live state shared with server.ts (draining, in-flight accounting). */
export interface AppState {
  draining: boolean;
  /** Generation requests whose response has not finished. */
  readonly inflight: Set<Generation>;
  /** HTTP generation requests being handled (including those not yet submitted to the engine). */
  active: number;
  /** Resolves the next time `active` drops to 0. */
  onIdle(): Promise<void>;
}

export interface AppDeps {
  engine: Engine;
  options: ServerOptions;
  logger: Logger;
  metrics?: MetricsHook;
  chatTemplate?: ChatTemplate;
  /** Where POST /api/alerts records Alertmanager's alerts (alerts-api.ts); without one the routes are absent. */
  alerts?: AlertInbox;
  /** The tuner behind /api/tuner, /api/proposals, /api/config, /api/audit (tuner-api.ts); without one they are absent. */
  tuner?: TunerControl;
  /** auth.tokens for those routes; none = reads open, changes refused (auth.ts). */
  authTokens?: readonly ApiToken[];
  /** The weekly reports behind GET /api/reports (reports-api.ts, same tokens); without it the routes are absent. */
  reports?: Omit<ReportsRouterOptions, 'auth'>;
  /** Called once per generation request that reached the engine, when its response has ended (not for requests
   *  refused before: validation, context overflow, a full queue). Runs on the response path: keep it cheap. Its
   *  exceptions are logged and never affect the response. */
  onGeneration?(e: GenerationEvent): void;
}

declare module 'express-serve-static-core' {
  interface Request {
    id?: string;
    log?: Logger;
  }
}

const REQUEST_ID_RE = /^[\w.:-]{1,128}$/;

function makeAuth(keys: readonly string[]) {
  // Compare digests in constant time so response timing does not leak how much of a key matched.
  const digests = keys.map(apiKeyDigest);
  return (req: Request, _res: Response, next: NextFunction): void => {
    if (digests.length === 0) return next();
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(.+)$/i.exec(h.trim()) : null;
    if (!m) {
      return next(new ControlPlaneError('CP_ERR_UNAUTHORIZED', "You didn't provide an API key: use the header 'Authorization: Bearer KEY'"));
    }
    const d = credentialDigest(m[1]!);
    // Every key is compared, always (no early exit at a match): timing does not tell which entry matched.
    let ok = false;
    for (const k of digests) ok = timingSafeEqual(k, d) || ok;
    if (!ok) {
      return next(new ControlPlaneError('CP_ERR_UNAUTHORIZED', 'Incorrect API key provided'));
    }
    next();
  };
}

/** A refusal's log fields. JSON.parse's message quotes the start of the body (a prompt, say): that one is not logged. */
function refusalLog(cpe: ControlPlaneError): { code: string; param: string | null; message?: string } {
  const fields = { code: cpe.code, param: cpe.param };
  return cpe.code === 'CP_ERR_MALFORMED_JSON' ? fields : { ...fields, message: cpe.message };
}

function sendError(res: Response, err: ControlPlaneError, metrics?: MetricsHook): void {
  metrics?.observeError?.(CP_ERRORS[err.code].code);
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res.status(err.status).json(err.toResponse());
}

/** Body-parser failures carry `type` and `status`; map them into the catalogue. */
function fromBodyParserError(err: unknown): ControlPlaneError | undefined {
  if (typeof err !== 'object' || err === null || !('type' in err)) return undefined;
  const t = (err as { type: unknown }).type;
  const msg = err instanceof Error ? err.message : String(err);
  if (t === 'entity.too.large') return new ControlPlaneError('CP_ERR_BODY_TOO_LARGE', `Request body too large: ${msg}`);
  if (t === 'entity.parse.failed') return new ControlPlaneError('CP_ERR_MALFORMED_JSON', `The request body is not valid JSON: ${msg}`, { param: 'body' });
  if (t === 'encoding.unsupported' || t === 'charset.unsupported') return new ControlPlaneError('CP_ERR_UNSUPPORTED_MEDIA_TYPE', msg);
  if (t === 'request.aborted' || t === 'request.size.invalid') return new ControlPlaneError('CP_ERR_INVALID_REQUEST', msg);
  return undefined;
}

/** Errors from the HTTP stack that carry a 4xx status but no body-parser `type`: a malformed percent-encoding in a
 *  path parameter (the router's URIError, status 400), a body that is not in its declared Content-Encoding (zlib
 *  errors wrapped by body-parser). They are the client's fault: answer 4xx, never 500. */
function fromHttpStatusError(err: unknown): ControlPlaneError | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const st = Number((err as { status?: unknown; statusCode?: unknown }).status ?? (err as { statusCode?: unknown }).statusCode);
  if (!(st >= 400 && st < 500)) return undefined;
  const msg = err instanceof URIError ? 'The request path is not valid percent-encoding' : `The request could not be read: ${(err as Error).message ?? 'bad request'}`;
  if (st === 413) return new ControlPlaneError('CP_ERR_BODY_TOO_LARGE', msg);
  if (st === 415) return new ControlPlaneError('CP_ERR_UNSUPPORTED_MEDIA_TYPE', msg);
  return new ControlPlaneError('CP_ERR_INVALID_REQUEST', msg);
}

function toControlPlaneError(err: unknown, promptParam: string): ControlPlaneError {
  if (isControlPlaneError(err)) return err;
  if (isEngineError(err)) return fromEngineError(err, promptParam);
  return fromBodyParserError(err) ?? fromHttpStatusError(err)
    ?? new ControlPlaneError('CP_ERR_INTERNAL', 'The server had an error while processing your request');
}

// ---- OpenAI response shapes ---------------------------------------------------------------------------------

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

function usageOf(promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** 'cancelled' only happens when the client left or the drain deadline passed; OpenAI has no such reason. */
function finishReasonOf(r: FinishReason): 'stop' | 'length' {
  return r === 'length' ? 'length' : 'stop';
}

type Detok = (id: number) => string;

function completionLogprobs(lps: readonly TokenLogprob[], detok: Detok, textOffset: number) {
  const tokens: string[] = [], token_logprobs: number[] = [], top_logprobs: Record<string, number>[] = [], text_offset: number[] = [];
  let off = textOffset;
  for (const lp of lps) {
    const t = detok(lp.token);
    tokens.push(t);
    token_logprobs.push(lp.logprob);
    top_logprobs.push(Object.fromEntries(lp.top.map((a) => [detok(a.token), a.logprob])));
    text_offset.push(off);
    off += t.length;
  }
  return { tokens, token_logprobs, top_logprobs, text_offset };
}

function chatLogprobs(lps: readonly TokenLogprob[], detok: Detok) {
  const entry = (token: number, logprob: number) => {
    const t = detok(token);
    return { token: t, logprob, bytes: [...Buffer.from(t, 'utf8')] };
  };
  return {
    content: lps.map((lp) => ({ ...entry(lp.token, lp.logprob), top_logprobs: lp.top.map((a) => entry(a.token, a.logprob)) })),
    refusal: null,
  };
}

// ---- The app --------------------------------------------------------------------------------------------------

export function createApp(deps: AppDeps): { app: express.Express; state: AppState } {
  const { engine, options, logger, metrics } = deps;
  const template = deps.chatTemplate ?? DEFAULT_CHAT_TEMPLATE;
  let idleWaiters: (() => void)[] = [];
  const state: AppState = {
    draining: false,
    inflight: new Set(),
    active: 0,
    onIdle() {
      if (state.active === 0) return Promise.resolve();
      return new Promise((res) => idleWaiters.push(res));
    },
  };
  const endActive = (): void => {
    state.active--;
    if (state.active === 0) {
      const w = idleWaiters;
      idleWaiters = [];
      for (const f of w) f();
    }
  };
  const detok: Detok = (id) => engine.detokenize([id]);

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // Request id and a child logger first, so every later log line (errors included) carries the id.
  app.use((req, res, next) => {
    const given = req.headers['x-request-id'];
    const id = typeof given === 'string' && REQUEST_ID_RE.test(given) ? given : randomUUID();
    req.id = id;
    req.log = logger.child({ reqId: id });
    res.setHeader('x-request-id', id);
    const started = performance.now();
    // The path only: a query string may carry a secret (?token=…) and is not logged. Taken now, before routers
    // strip their mount paths from req.url.
    const path = req.path;
    let counted = false;
    const done = (): void => {
      if (counted) return;
      counted = true;
      // The route template, never the raw URL: user-controlled paths must not become label values.
      const route = (req.route as { path?: unknown } | undefined)?.path;
      metrics?.observeRequest?.(typeof route === 'string' ? `${req.baseUrl}${route}` : 'unmatched', res.statusCode);
      req.log?.info({ method: req.method, path, status: res.statusCode, ms: Math.round(performance.now() - started) }, 'request');
    };
    res.on('finish', done);
    res.on('close', done);
    next();
  });

  // Headers on every answer, errors and 404s included; preflights answered before any authentication (security.ts).
  app.use(securityHeaders());
  app.use(cors(options.corsOrigins ?? []));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', (_req, res) => {
    const ready = !state.draining && !engine.isClosed;
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : state.draining ? 'draining' : 'not_loaded', model: options.modelName });
  });

  if (metrics?.metricsText) {
    const text = metrics.metricsText.bind(metrics);
    // Outside /v1: scrapers do not carry API keys.
    app.get('/metrics', async (_req, res) => {
      res.setHeader('Content-Type', metrics.contentType ?? 'text/plain; version=0.0.4; charset=utf-8');
      res.send(await text());
    });
  }

  // Per-key limits on /v1 and /api only: probes and scrapers (above) must never be refused for being frequent. Every
  // credential the server accepts names a key; the limiter runs before authentication so floods of bad tokens are
  // paced too (they count against the client's address).
  const known = [
    ...options.apiKeys.map(apiKeyDigest),
    ...(deps.authTokens ?? []).map((t) => Buffer.from(t.sha256, 'hex')),
    ...(options.alertsWebhookToken ? [credentialDigest(options.alertsWebhookToken)] : []),
  ];
  const perMinute = options.rateLimitPerMinute ?? 0;
  const limiter = perMinute > 0 ? new RateLimiter(perMinute, options.rateLimitBurst ?? perMinute) : undefined;
  app.use(['/v1', '/api'], rateLimit(clientKeyOf(known), limiter));
  const streams = new ConcurrencyLimiter(options.maxConcurrentStreamsPerKey ?? 0);

  if (deps.alerts) {
    // Outside /v1: Alertmanager authenticates with its own token (alerts.webhookToken), not an API key.
    app.use('/api', alertsRouter({ inbox: deps.alerts, token: options.alertsWebhookToken ?? '', bodyLimit: options.bodyLimit }));
  }

  const apiAuth = deps.tuner || deps.reports ? createApiAuth(deps.authTokens ?? []) : undefined;
  if (deps.tuner && apiAuth) {
    // After the alerts router: it owns /api/alerts; this one matches only its own routes and lets the rest through.
    app.use('/api', tunerRouter({ tuner: deps.tuner, auth: apiAuth, bodyLimit: options.bodyLimit }));
  }
  if (deps.reports && apiAuth) {
    app.use('/api', reportsRouter({ ...deps.reports, auth: apiAuth }));
  }

  const v1 = express.Router();
  v1.use((_req, res, next) => {
    if (state.draining) {
      res.setHeader('Connection', 'close');
      return next(new ControlPlaneError('CP_ERR_DRAINING', 'The server is shutting down; retry on another instance', { headers: { 'Retry-After': '1' } }));
    }
    next();
  });
  v1.use(makeAuth(options.apiKeys));
  v1.use(express.json({ limit: options.bodyLimit }));

  v1.get('/models', (_req, res) => {
    res.json({
      object: 'list',
      data: [{ id: options.modelName, object: 'model', created: Math.floor(Date.now() / 1000), owned_by: 'tuneloop' }],
    });
  });

  const handle = (endpoint: RequestRecord['endpoint']) => async (req: Request, res: Response) => {
    const started = performance.now();
    state.active++;
    const record: RequestRecord = { endpoint, status: 200, stream: false, durationS: 0, clientDisconnected: false };
    let gen: Generation | undefined;
    let submitted: GenerateRequest | undefined;
    let result: GenerationResult | undefined;
    let ended = false;
    let handled = false;
    let release: (() => void) | undefined;
    // onGeneration fires once both the response has ended (durationS known) and the handler is done (the result, or
    // the error, known): after a client disconnect the response ends first and the result arrives a step later.
    let reported = false;
    const report = (): void => {
      if (reported || !ended || !handled || !submitted || !deps.onGeneration) return;
      reported = true;
      const e: GenerationEvent = { request: submitted, promptTokens: submitted.tokens ?? [], durationS: record.durationS, ok: record.errorCode === undefined };
      if (result) e.result = result;
      try {
        const r: unknown = deps.onGeneration(e);
        if (r instanceof Promise) r.catch((err: unknown) => req.log?.error({ err }, 'onGeneration hook failed'));
      } catch (err) {
        req.log?.error({ err }, 'onGeneration hook failed');
      }
    };
    const finish = (): void => {
      if (ended) return;
      ended = true;
      if (gen) state.inflight.delete(gen);
      release?.();
      record.status = res.statusCode;
      record.durationS = (performance.now() - started) / 1000;
      endActive();
      metrics?.onRequest?.(record);
      report();
    };
    res.on('close', () => {
      // 'close' before the response finished: the client went away. Cancel now; the engine frees the sequence at
      // its next step boundary.
      if (!res.writableFinished) {
        record.clientDisconnected = true;
        if (gen) {
          req.log?.info({ generation: gen.id }, 'client disconnected: cancelling generation');
          gen.cancel();
        }
      }
      finish();
    });
    const promptParam = endpoint === 'chat_completions' ? 'messages' : 'prompt';
    try {
      // Counted from arrival, not from submission: a key may not park more requests than its limit in parsing either.
      release = streams.acquire(req.clientKey ?? 'anonymous');
      if (!release) {
        throw new ControlPlaneError('CP_ERR_RATE_LIMITED',
          `Too many concurrent generation requests: at most ${streams.limit} in flight per API key or client address ` +
          '(server.maxConcurrentStreamsPerKey); retry when one has finished', { headers: { 'Retry-After': String(RETRY_AFTER_S) } });
      }
      if (req.body === undefined) {
        throw new ControlPlaneError('CP_ERR_INVALID_REQUEST', "Expected a JSON body with 'Content-Type: application/json'", { param: 'body' });
      }
      const parsed: CompletionRequest | ChatRequest = endpoint === 'chat_completions' ? parseChatRequest(req.body) : parseCompletionRequest(req.body);
      record.stream = parsed.stream;
      if (parsed.model !== options.modelName) throw modelNotFound(parsed.model, options.modelName);
      const { request, promptTokens } = buildEngineRequest(parsed);
      record.promptTokens = promptTokens;
      if (record.clientDisconnected) return;
      gen = engine.generate(request);
      submitted = request;
      state.inflight.add(gen);
      req.log?.debug({ generation: gen.id, promptTokens, maxTokens: request.maxTokens, stream: parsed.stream }, 'generation started');
      if (parsed.stream) result = await streamResponse(req, res, parsed, gen, promptTokens, record);
      else result = await plainResponse(res, parsed, gen, promptTokens, record);
    } catch (err) {
      const cpe = toControlPlaneError(err, promptParam);
      record.errorCode = cpe.code;
      if (cpe.status >= 500) req.log?.error({ err }, 'request failed');
      else req.log?.info(refusalLog(cpe), 'request refused');
      if (res.headersSent) {
        // Mid-stream: the status line is gone; report in-band as OpenAI does, then end the stream.
        if (!res.writableEnded) {
          metrics?.observeError?.(CP_ERRORS[cpe.code].code);
          res.write(`data: ${JSON.stringify(cpe.toResponse())}\n\n`);
          res.end();
        }
      } else if (!record.clientDisconnected) {
        sendError(res, cpe, metrics);
      }
    } finally {
      handled = true;
      report();
    }
  };

  function buildEngineRequest(p: CompletionRequest | ChatRequest): { request: GenerateRequest; promptTokens: number } {
    const ctx = engine.info.contextLength;
    let tokens: number[];
    let stop = p.stop;
    if (p.kind === 'chat') {
      tokens = engine.tokenize(template.render(p.messages));
      stop = [...(p.stop ?? []), ...template.stop];
    } else if (typeof p.prompt === 'string') {
      tokens = engine.tokenize(p.prompt);
    } else {
      tokens = p.prompt;
    }
    const promptParam = p.kind === 'chat' ? 'messages' : 'prompt';
    if (tokens.length === 0) throw new ControlPlaneError('CP_ERR_INVALID_REQUEST', `'${promptParam}' must not be empty`, { param: promptParam });
    // The operator's limits come before the model's: context_length_exceeded is what clients trim prompts on.
    const maxPrompt = options.maxPromptTokens;
    if (maxPrompt !== undefined && tokens.length > maxPrompt) {
      throw new ControlPlaneError('CP_ERR_CONTEXT_OVERFLOW',
        `This server accepts at most ${maxPrompt} prompt tokens (server.maxPromptTokens), but your ${promptParam} has ${tokens.length} tokens`,
        { param: promptParam });
    }
    const maxTokensParam = p.maxTokensParam ?? 'max_tokens';
    const cap = options.maxTokensLimit ?? Infinity;
    if (p.maxTokens !== undefined && p.maxTokens > cap) {
      throw new ControlPlaneError('CP_ERR_INVALID_REQUEST',
        `'${maxTokensParam}' must be at most ${cap} on this server (server.maxTokensLimit), got ${p.maxTokens}`, { param: maxTokensParam });
    }
    if (tokens.length >= ctx) {
      throw new ControlPlaneError('CP_ERR_CONTEXT_OVERFLOW',
        `This model's maximum context length is ${ctx} tokens, but your ${promptParam} has ${tokens.length} tokens (at least one must be left to generate)`,
        { param: promptParam });
    }
    let maxTokens: number;
    if (p.maxTokens === undefined) {
      // OpenAI's defaults: 16 for completions; chat runs until the context is full.
      maxTokens = Math.min(p.kind === 'completion' ? 16 : ctx, ctx - tokens.length, cap);
    } else {
      if (tokens.length + p.maxTokens > ctx) {
        throw new ControlPlaneError('CP_ERR_CONTEXT_OVERFLOW',
          `This model's maximum context length is ${ctx} tokens. However, you requested ${tokens.length + p.maxTokens} tokens (${tokens.length} in the ${promptParam}, ${p.maxTokens} for the completion). Please reduce the ${promptParam} or ${maxTokensParam}`,
          { param: maxTokensParam });
      }
      maxTokens = p.maxTokens;
    }
    const request: GenerateRequest = { tokens, maxTokens, stopAtEos: !p.ignoreEos };
    if (p.temperature !== undefined) request.temperature = p.temperature;
    if (p.topP !== undefined) request.topP = p.topP;
    if (p.topK !== undefined) request.topK = p.topK;
    if (p.seed !== undefined) request.seed = p.seed;
    if (stop !== undefined) request.stop = stop;
    if (p.logprobs !== undefined) request.logprobs = p.logprobs;
    if (options.requestTimeoutMs > 0) request.deadlineMs = options.requestTimeoutMs;
    return { request, promptTokens: tokens.length };
  }

  async function plainResponse(res: Response, p: CompletionRequest | ChatRequest, gen: Generation, promptTokens: number, record: RequestRecord): Promise<GenerationResult> {
    const r: GenerationResult = await gen.result;
    record.finishReason = r.finishReason;
    record.completionTokens = r.usage.completionTokens;
    if (record.clientDisconnected) return r;
    const created = Math.floor(Date.now() / 1000);
    const usage = usageOf(r.usage.promptTokens || promptTokens, r.usage.completionTokens);
    if (p.kind === 'completion') {
      res.json({
        id: `cmpl-${randomUUID()}`,
        object: 'text_completion',
        created,
        model: options.modelName,
        choices: [{
          index: 0,
          text: r.text,
          logprobs: p.logprobs !== undefined && r.logprobs ? completionLogprobs(r.logprobs, detok, 0) : null,
          finish_reason: finishReasonOf(r.finishReason),
        }],
        usage,
      });
    } else {
      res.json({
        id: `chatcmpl-${randomUUID()}`,
        object: 'chat.completion',
        created,
        model: options.modelName,
        choices: [{
          index: 0,
          message: { role: 'assistant', content: r.text, refusal: null },
          logprobs: p.logprobs !== undefined && r.logprobs ? chatLogprobs(r.logprobs, detok) : null,
          finish_reason: finishReasonOf(r.finishReason),
        }],
        usage,
      });
    }
    return r;
  }

  async function streamResponse(req: Request, res: Response, p: CompletionRequest | ChatRequest, gen: Generation, promptTokens: number, record: RequestRecord): Promise<GenerationResult> {
    const created = Math.floor(Date.now() / 1000);
    const id = p.kind === 'chat' ? `chatcmpl-${randomUUID()}` : `cmpl-${randomUUID()}`;
    const object = p.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
    const base = { id, object, created, model: options.modelName };
    // With include_usage, OpenAI puts `usage: null` on every chunk and the totals on one last chunk.
    const usageField = p.includeUsage ? { usage: null } : {};
    const send = (payload: unknown): void => {
      if (!res.writableEnded) res.write(`data: ${JSON.stringify(payload)}\n\n`);
    };
    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();

    let textOffset = 0;
    if (p.kind === 'chat') {
      send({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], ...usageField });
    }
    for await (const chunk of gen) {
      if (record.clientDisconnected) break;
      // Text held back (a possible stop sequence, a partial UTF-8 character) arrives as empty chunks: skip them.
      if (chunk.text.length === 0 && !(p.logprobs !== undefined && chunk.logprobs?.length)) continue;
      if (p.kind === 'chat') {
        const lp = p.logprobs !== undefined && chunk.logprobs ? chatLogprobs(chunk.logprobs, detok) : null;
        send({ ...base, choices: [{ index: 0, delta: { content: chunk.text }, logprobs: lp, finish_reason: null }], ...usageField });
      } else {
        const lp = p.logprobs !== undefined && chunk.logprobs ? completionLogprobs(chunk.logprobs, detok, textOffset) : null;
        send({ ...base, choices: [{ index: 0, text: chunk.text, logprobs: lp, finish_reason: null }], ...usageField });
      }
      textOffset += chunk.text.length;
    }
    const r = await gen.result;
    record.finishReason = r.finishReason;
    record.completionTokens = r.usage.completionTokens;
    if (record.clientDisconnected) return r;
    const fr = finishReasonOf(r.finishReason);
    if (p.kind === 'chat') send({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: fr }], ...usageField });
    else send({ ...base, choices: [{ index: 0, text: '', logprobs: null, finish_reason: fr }], ...usageField });
    if (p.includeUsage) send({ ...base, choices: [], usage: usageOf(r.usage.promptTokens || promptTokens, r.usage.completionTokens) });
    res.write('data: [DONE]\n\n');
    res.end();
    req.log?.debug({ generation: gen.id, finishReason: r.finishReason, completionTokens: r.usage.completionTokens }, 'stream finished');
    return r;
  }

  v1.post('/completions', handle('completions'));
  v1.post('/chat/completions', handle('chat_completions'));
  app.use('/v1', v1);

  app.use((req, _res, next) => {
    next(new ControlPlaneError('CP_ERR_ROUTE_NOT_FOUND', `Unknown request URL: ${req.method} ${req.path}`));
  });

  // Errors from middleware (auth, draining, body parsing) and unknown routes; generation errors are answered in
  // the handler itself.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const cpe = toControlPlaneError(err, 'prompt');
    if (cpe.status >= 500 && cpe.code !== 'CP_ERR_DRAINING') req.log?.error({ err }, 'request failed');
    else req.log?.info(refusalLog(cpe), 'request refused');
    if (res.headersSent) {
      res.end();
      return;
    }
    sendError(res, cpe, metrics);
  });

  return { app, state };
}
