// The HTTP app (express 5): the order of the middleware and the mounts, nothing else.
//
//   request id + request log (middleware.ts) → security headers, CORS (security.ts) → /healthz /readyz /metrics
//   → per-key rate limit on /v1, /api, /tokenize, /detokenize → /v1: draining refusal, API-key auth (auth.ts), JSON
//   body, the OpenAI routes (openai/router.ts) → /tokenize, /detokenize (tokenize-api.ts, the same guards) → /api: alerts webhook (alerts-api.ts), tuner (tuner-api.ts), reports (reports-api.ts)
//   → 404 → error handler (every error in OpenAI's shape, errors.ts)
//
// Generation requests end in one FinishedRequest each, fanned out once (hooks.ts) to the request metrics and the
// tuner's onGeneration hook. The composition root (src/serve.ts) builds the dependencies; http-server.ts listens and
// drains.
import express from 'express';
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import type { AlertInbox } from '../alerts/inbox.js';
import type { ApiToken } from '../config/schema.js';
import type { TunerControl } from '../tuner/facade.js';
import { alertsRouter } from './alerts-api.js';
import { createApiAuth, createV1Auth } from './auth.js';
import { fanOutFinished, type GenerationHook, type MetricsHook } from './hooks.js';
import { errorHandler, probesRouter, refuseWhileDraining, requestContext, routeNotFound } from './middleware.js';
import { DEFAULT_CHAT_TEMPLATE, type ChatTemplate } from './openai/chat-template.js';
import { openaiRouter } from './openai/router.js';
import { ServerState, type AppState } from './server-state.js';
import { reportsRouter, type ReportsRouterOptions } from './reports-api.js';
import { ConcurrencyLimiter, RateLimiter, apiKeyDigest, clientKeyOf, cors, credentialDigest, rateLimit, securityHeaders } from './security.js';
import { tokenizeRouter } from './tokenize-api.js';
import { tunerRouter } from './tuner-api.js';

export type { FinishedRequest, GenerationEvent, GenerationHook, MetricsHook, RequestRecord } from './hooks.js';
export type { AppState } from './server-state.js';

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
  /** Tokens per streamed event after the first (server.streamInterval); absent: 1. */
  streamInterval?: number | undefined;
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
  onGeneration?: GenerationHook;
}

export function createApp(deps: AppDeps): { app: express.Express; state: AppState } {
  const { engine, options, logger, metrics } = deps;
  const state = new ServerState();
  const observeError = metrics?.observeError?.bind(metrics);

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // Request id and a child logger first, so every later log line (errors included) carries the id.
  app.use(requestContext(logger, metrics));
  // Headers on every answer, errors and 404s included; preflights answered before any authentication (security.ts).
  app.use(securityHeaders());
  app.use(cors(options.corsOrigins ?? []));
  app.use(probesRouter({ engine, state, modelName: options.modelName, metrics }));

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
  app.use(['/v1', '/api', '/tokenize', '/detokenize'], rateLimit(clientKeyOf(known), limiter));

  app.use(
    '/v1',
    refuseWhileDraining(state),
    createV1Auth(options.apiKeys),
    express.json({ limit: options.bodyLimit }),
    openaiRouter({
      engine,
      options,
      server: state,
      observeError,
      observeEmbeddings: metrics?.observeEmbeddings?.bind(metrics),
      template: deps.chatTemplate ?? DEFAULT_CHAT_TEMPLATE,
      streams: new ConcurrencyLimiter(options.maxConcurrentStreamsPerKey ?? 0),
      onFinished: fanOutFinished({ metrics, onGeneration: deps.onGeneration }),
    }),
  );

  // POST /tokenize and /detokenize at the root (llama.cpp's and vLLM's paths), guarded as /v1 is.
  app.use(
    tokenizeRouter({ engine, modelName: options.modelName, template: deps.chatTemplate ?? DEFAULT_CHAT_TEMPLATE, observeError }, [
      refuseWhileDraining(state),
      createV1Auth(options.apiKeys),
      express.json({ limit: options.bodyLimit }),
    ]),
  );

  if (deps.alerts) {
    // Alertmanager authenticates with its own token (alerts.webhookToken), not an API key.
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

  app.use(routeNotFound());
  app.use(errorHandler(metrics));
  return { app, state };
}
