// The app-wide pieces app.ts puts in order around the routers: the request id and request log line, the probes
// (/healthz, /readyz, /metrics), the /v1 draining refusal, the 404 for unknown routes and the error handler that
// answers every error from middleware and routers in OpenAI's shape (errors.ts).
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import { ControlPlaneError, refusalLog, sendError, toControlPlaneError } from './errors.js';
import type { MetricsHook } from './hooks.js';
import type { AppState } from './server-state.js';

declare module 'express-serve-static-core' {
  interface Request {
    id?: string;
    log?: Logger;
  }
}

const REQUEST_ID_RE = /^[\w.:-]{1,128}$/;

/** First in the chain: the request id (the client's x-request-id when well-formed) and a child logger carrying it,
 *  so every later log line has it; one log line and one metrics count per answered request. */
export function requestContext(logger: Logger, metrics: MetricsHook | undefined): RequestHandler {
  return (req, res, next) => {
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
  };
}

/** GET /healthz (the process answers), GET /readyz (the model is loaded and the server not draining) and, with a
 *  registry, GET /metrics. Outside /v1 and /api: probes and scrapers carry no keys and are never rate-limited. */
export function probesRouter(o: { engine: Engine; state: AppState; modelName: string; metrics: MetricsHook | undefined }): express.Router {
  const { engine, state, modelName, metrics } = o;
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', (_req, res) => {
    const ready = !state.draining && !engine.isClosed;
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : state.draining ? 'draining' : 'not_loaded', model: modelName });
  });
  if (metrics?.metricsText) {
    const text = metrics.metricsText.bind(metrics);
    router.get('/metrics', async (_req, res) => {
      res.setHeader('Content-Type', metrics.contentType ?? 'text/plain; version=0.0.4; charset=utf-8');
      res.send(await text());
    });
  }
  return router;
}

/** /v1 while draining: 503 with Retry-After, and the connection is closed after the answer. */
export function refuseWhileDraining(state: AppState): RequestHandler {
  return (_req, res, next) => {
    if (state.draining) {
      res.setHeader('Connection', 'close');
      return next(new ControlPlaneError('CP_ERR_DRAINING', 'The server is shutting down; retry on another instance', { headers: { 'Retry-After': '1' } }));
    }
    next();
  };
}

export function routeNotFound(): RequestHandler {
  return (req, _res, next) => {
    next(new ControlPlaneError('CP_ERR_ROUTE_NOT_FOUND', `Unknown request URL: ${req.method} ${req.path}`));
  };
}

/** Errors from middleware (auth, draining, body parsing, limits), the /api routers and unknown routes; generation
 *  errors are answered by their ServingRequest. */
export function errorHandler(metrics: MetricsHook | undefined) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const cpe = toControlPlaneError(err, 'prompt');
    if (cpe.status >= 500 && cpe.code !== 'CP_ERR_DRAINING') req.log?.error({ err }, 'request failed');
    else req.log?.info(refusalLog(cpe), 'request refused');
    if (res.headersSent) {
      res.end();
      return;
    }
    sendError(res, cpe, metrics?.observeError?.bind(metrics));
  };
}
