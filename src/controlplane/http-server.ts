// The HTTP server around the app: listen, graceful drain, and the SIGTERM/SIGINT handler the CLI installs.
// Drain order: refuse new work (readyz 503, /v1 503, listener closed so new connections are refused), let in-flight
// generations finish up to a deadline, cancel what is left, then close the remaining connections.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import type { TunerControl } from '../tuner/facade.js';
import { createApp, type AppDeps, type AppState, type ServerOptions } from './app.js';
import type { MetricsHook } from './hooks.js';
import { AlertInbox } from '../alerts/inbox.js';
import { ControlPlaneError } from './errors.js';
import type { ApiToken } from '../config/schema.js';

export interface StartServerArgs {
  engine: Engine;
  options: ServerOptions;
  logger: Logger;
  metricsHook?: MetricsHook;
  /** Inbox for POST /api/alerts; default a fresh in-memory one. */
  alerts?: AlertInbox;
  /** The tuner behind the /api tuner routes (tuner-api.ts); absent: those routes are absent. */
  tuner?: TunerControl;
  /** auth.tokens for the tuner and report routes. */
  authTokens?: readonly ApiToken[];
  /** The weekly reports behind GET /api/reports (reports-api.ts); absent: those routes are absent. */
  reports?: AppDeps['reports'];
  /** Every finished generation request that reached the engine (hooks.ts GenerationEvent): the tuner's request log
   *  and shadow mirror. */
  onGeneration?: AppDeps['onGeneration'];
  /** The model's chat template (openai/chat-template.ts loadChatTemplate); absent: the built-in default. */
  chatTemplate?: AppDeps['chatTemplate'];
}

export interface DrainResult {
  /** Generation requests that finished on their own during the drain. */
  completed: boolean;
  /** Generations cancelled because the deadline passed. */
  cancelled: number;
}

export interface RunningServer {
  url: string;
  port: number;
  state: AppState;
  server: Server;
  /** Alerts received on POST /api/alerts; listen to its 'alert' event for firing ones. */
  alerts: AlertInbox;
  /** Stop accepting, wait for in-flight requests up to `deadlineMs`, cancel the rest, close all connections. */
  drain(deadlineMs: number): Promise<DrainResult>;
  /** Drain with no grace: cancel everything now. Does not close the engine (the caller owns it). */
  close(): Promise<void>;
}

export async function startServer(args: StartServerArgs): Promise<RunningServer> {
  const { engine, options, logger } = args;
  const alerts = args.alerts ?? new AlertInbox();
  const deps: AppDeps = { engine, options, logger, alerts };
  if (args.metricsHook) deps.metrics = args.metricsHook;
  if (args.tuner) deps.tuner = args.tuner;
  if (args.authTokens) deps.authTokens = args.authTokens;
  if (args.reports) deps.reports = args.reports;
  if (args.onGeneration) deps.onGeneration = args.onGeneration;
  if (args.chatTemplate) deps.chatTemplate = args.chatTemplate;
  const { app, state } = createApp(deps);
  // Requests without a Host header are answered by the app (its JSON errors) rather than by Node's bare 400.
  const server = createServer({ requireHostHeader: false }, app);
  // Requests Node refuses before the app sees them (an unknown method, an oversized or malformed header) get a JSON
  // error in the catalogue's shape instead of a bare status line, then the socket closes.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const reason = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
    const body = JSON.stringify(new ControlPlaneError('CP_ERR_INVALID_REQUEST', `The HTTP request is malformed (${err.code ?? 'parse error'})`).toResponse());
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  // requestTimeout bounds *receiving* a request (headers and body), not the response: a client that promises a body
  // and never sends it is cut after a minute, while long streaming responses are unaffected.
  server.requestTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${host}:${addr.port}`;

  let draining: Promise<DrainResult> | undefined;
  const closed = new Promise<void>((res) => server.once('close', () => res()));

  async function doDrain(deadlineMs: number): Promise<DrainResult> {
    state.draining = true;
    // Stop listening: new connections are refused from here on. Idle keep-alive sockets are closed; busy ones get
    // 'Connection: close' on their next /v1 response (middleware.ts refuseWhileDraining) and are closed once idle.
    server.close();
    server.closeIdleConnections();
    logger.info({ inflight: state.active, deadlineMs }, 'draining');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((res) => (timer = setTimeout(() => res('timeout'), deadlineMs)));
    const outcome = await Promise.race([state.onIdle().then(() => 'idle' as const), timedOut]);
    clearTimeout(timer);
    let cancelled = 0;
    if (outcome === 'timeout') {
      for (const g of state.inflight) {
        g.cancel();
        cancelled++;
      }
      logger.warn({ cancelled }, 'drain deadline passed: cancelled in-flight generations');
      // Cancelled streams end at the engine's next step; give them a moment to write their final bytes.
      await Promise.race([state.onIdle(), new Promise((res) => setTimeout(res, 1000))]);
    }
    server.closeAllConnections();
    await closed;
    logger.info({ cancelled }, 'drained');
    return { completed: outcome === 'idle', cancelled };
  }

  return {
    url,
    port: addr.port,
    state,
    server,
    alerts,
    drain(deadlineMs) {
      draining ??= doDrain(deadlineMs);
      return draining;
    },
    async close() {
      draining ??= doDrain(0);
      await draining;
    },
  };
}

export interface ShutdownOptions {
  server: RunningServer;
  engine: Engine;
  logger: Logger;
  drainTimeoutMs: number;
  /** Runs after the drain, before the engine closes (stop the tuner, close its store). */
  beforeEngineClose?: () => Promise<void>;
  /** Injected for tests; default process.exit. */
  exit?: (code: number) => void;
  signals?: NodeJS.Signals[];
}

/**
 * Install graceful shutdown: the first SIGTERM/SIGINT drains (up to drainTimeoutMs), closes the engine and exits 0;
 * a second signal exits at once with 130 (the operator insists). Returns a function that removes the handlers.
 */
export function installGracefulShutdown(o: ShutdownOptions): () => void {
  const exit = o.exit ?? ((code: number) => process.exit(code));
  const signals = o.signals ?? ['SIGTERM', 'SIGINT'];
  let shuttingDown = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (shuttingDown) {
      o.logger.warn({ signal }, 'second signal: exiting now');
      exit(130);
      return;
    }
    shuttingDown = true;
    o.logger.info({ signal, drainTimeoutMs: o.drainTimeoutMs }, 'shutdown requested: draining');
    void (async () => {
      let code = 0;
      try {
        await o.server.drain(o.drainTimeoutMs);
        await o.beforeEngineClose?.();
        await o.engine.close();
      } catch (err) {
        o.logger.error({ err }, 'error during shutdown');
        code = 1;
      }
      o.logger.info({ code }, 'exiting');
      exit(code);
    })();
  };
  for (const s of signals) process.on(s, handler);
  return () => {
    for (const s of signals) process.off(s, handler);
  };
}
