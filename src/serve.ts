// `tuneloop serve`: load the engine, start the OpenAI-compatible server, drain gracefully on SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { pino, type DestinationStream, type Logger } from 'pino';
import { EMBEDDED_MODELS, resolveModelArg } from './defaults.js';
import { Engine } from './engine/engine.js';
import { EngineError } from './engine/errors.js';
import type { EngineOptions } from './engine/types.js';
import { DEFAULT_SERVER_OPTIONS, type ServerOptions } from './controlplane/app.js';
import { installGracefulShutdown, startServer } from './controlplane/http-server.js';
import { createMetrics } from './metrics/registry.js';
import { AlertInbox } from './alerts/inbox.js';
import { ConfigError, engineOptionsFromConfig, loadConfig, type TuneloopConfig } from './config/load.js';
import type { LogLevel } from './config/schema.js';
import { LOG_REDACT_PATHS, isPlainApiKey } from './controlplane/security.js';
import { engineOptionsWithSettings, openTunerStore, startTuner, type RunningTuner } from './tuner/bootstrap.js';
import type { TunerStore } from './tuner/store.js';
import { loadChatTemplate, type ChatTemplate } from './controlplane/openai/chat-template.js';
import { TemplateSandbox } from './controlplane/openai/template-sandbox.js';

export const SERVE_USAGE = `usage:
  tuneloop serve [--config FILE] [--model PATH] [--host H] [--port N] [--threads N]
                 [--log-level fatal|error|warn|info|debug|trace|silent] [--set SECTION.KEY=VALUE]...
  --model takes a GGUF path or a shipped model's name: tuneloop-shakespeare (the default), tuneloop-deepseek-tiny.
  Precedence: defaults < --config file < TUNELOOP_<SECTION>_<KEY> env vars < flags (--set, then the named flags).
`;

export interface ServeSettings {
  config: TuneloopConfig;
  engine: EngineOptions;
  server: ServerOptions;
}

/** The model's served name: the file name without .gguf ("tuneloop-shakespeare"). */
export function modelNameOf(path: string): string {
  return basename(path).replace(/\.gguf$/i, '');
}

/** The HTTP layer's options from a loaded config. */
export function serverOptionsFromConfig(cfg: TuneloopConfig): ServerOptions {
  return {
    ...DEFAULT_SERVER_OPTIONS,
    host: cfg.server.host,
    port: cfg.server.port,
    apiKeys: [...cfg.server.apiKeys],
    bodyLimit: cfg.server.requestBodyLimitBytes,
    drainTimeoutMs: cfg.server.drainTimeoutMs,
    modelName: cfg.model.name,
    alertsWebhookToken: cfg.alerts.webhookToken,
    corsOrigins: [...cfg.server.corsOrigins],
    rateLimitPerMinute: cfg.server.rateLimitPerMinute,
    rateLimitBurst: cfg.server.rateLimitBurst,
    maxConcurrentStreamsPerKey: cfg.server.maxConcurrentStreamsPerKey,
    maxPromptTokens: cfg.server.maxPromptTokens,
    maxTokensLimit: cfg.server.maxTokensLimit,
    streamInterval: cfg.server.streamInterval,
  };
}

/** The server's logger: JSON lines, with credentials and prompts redacted should a log call ever carry them. */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const options = { level, base: { service: 'tuneloop' }, redact: { paths: [...LOG_REDACT_PATHS], censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}

/** The chat template the model file carries (rendered on a bounded worker thread), or the built-in default; every
 *  template that does not parse is logged as a warning (and shown in GET /v1/models). */
export async function modelChatTemplate(engine: Engine, logger: Logger, sandbox = new TemplateSandbox()): Promise<ChatTemplate> {
  const template = await loadChatTemplate(engine.info.tokenizer, sandbox);
  for (const warning of template.summary.warnings) logger.warn({ chatTemplate: template.summary.source }, warning);
  logger.info({ chatTemplate: template.summary.source, names: template.summary.names }, 'chat template');
  return template;
}

/** Flags become config overrides, so they are validated (and reported) exactly like file and env values. */
export function resolveServeSettings(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeSettings {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      model: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      threads: { type: 'string' },
      'log-level': { type: 'string' },
      set: { type: 'string', multiple: true },
    },
    strict: true,
  });
  const overrides: Record<string, string> = {};
  for (const kv of values.set ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new ConfigError(kv, '--set expects SECTION.KEY=VALUE, e.g. --set scheduler.maxBatchSize=8');
    overrides[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  if (values.model !== undefined) {
    // A path, or the name of a model shipped in models/ (EMBEDDED_MODELS).
    const path = resolveModelArg(values.model);
    overrides['model.path'] = path;
    // A model given by path is served under its file name unless a name is set explicitly.
    overrides['model.name'] ??= modelNameOf(path);
  }
  if (values.host !== undefined) overrides['server.host'] = values.host;
  if (values.port !== undefined) overrides['server.port'] = values.port;
  if (values.threads !== undefined) overrides['model.threads'] = values.threads;
  if (values['log-level'] !== undefined) overrides['logging.level'] = values['log-level'];
  const config = loadConfig({ ...(values.config !== undefined ? { file: values.config } : {}), env, overrides });
  if (!existsSync(config.model.path)) {
    throw new EngineError(
      'MODEL_NOT_FOUND',
      `model file ${config.model.path} does not exist; pass --model PATH (or the name of a shipped model: ${Object.keys(EMBEDDED_MODELS).join(', ')})`,
    );
  }
  return { config, engine: engineOptionsFromConfig(config), server: serverOptionsFromConfig(config) };
}

/** Runs until a signal drains the server; the returned promise resolves only when startup fails. */
export async function serveCommand(argv: string[]): Promise<number> {
  let settings: ServeSettings;
  try {
    settings = resolveServeSettings(argv);
  } catch (e) {
    if (e instanceof EngineError) {
      process.stderr.write(`tuneloop serve: ${e.code}: ${e.message}\n`);
      return 2;
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`tuneloop serve: config: ${e.message}\n`);
      return 2;
    }
    if (e instanceof TypeError && String((e as { code?: string }).code ?? '').startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`tuneloop serve: ${e.message}\n${SERVE_USAGE}`);
      return 1;
    }
    throw e;
  }
  const logger = createLogger(settings.config.logging.level);
  // The store decides the settings the engine starts with: the last committed version (a crash mid-apply never
  // committed), or the config file when it changed since.
  let store: TunerStore;
  let engineOptions: EngineOptions;
  try {
    const opened = openTunerStore(settings.config);
    store = opened.store;
    engineOptions = engineOptionsWithSettings(settings.engine, opened.live.settings);
    logger.info({ store: store.path, version: opened.live.version, source: opened.live.source }, 'live settings');
  } catch (e) {
    process.stderr.write(`tuneloop serve: tuner store ${settings.config.tuner.storePath}: ${(e as Error).message}\n`);
    return 2;
  }
  let engine: Engine;
  try {
    engine = await Engine.load(engineOptions);
  } catch (e) {
    store.close();
    if (e instanceof EngineError) {
      logger.error({ code: e.code, model: settings.engine.model }, e.message);
      process.stderr.write(`tuneloop serve: ${e.code}: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  logger.info({ model: settings.engine.model, modelName: settings.server.modelName, loadMs: engine.info.loadMs, kernels: engine.info.kernels }, 'model loaded');
  // Tokenizer load-time warnings (a missing tokenizer.ggml.pre, turn-end tokens not typed control): docs/tokenizers.md.
  for (const warning of engine.info.tokenizer.warnings) logger.warn({ tokenizer: engine.info.tokenizer.model, pre: engine.info.tokenizer.pre }, warning);
  const chatTemplate = await modelChatTemplate(engine, logger);
  let server;
  let tuner: RunningTuner;
  try {
    const metrics = createMetrics({ engine, config: settings.config, modelName: settings.server.modelName });
    const alerts = new AlertInbox({ registry: metrics.registry });
    tuner = await startTuner({ config: settings.config, engine, store, logger, metrics, alerts });
    const t = tuner.tuner;
    server = await startServer({
      engine,
      options: settings.server,
      logger,
      metricsHook: metrics,
      alerts,
      tuner: t,
      authTokens: settings.config.auth.tokens,
      onGeneration: (e) => t.onGeneration(e),
      reports: { dir: settings.config.tuner.reportsDir, timezone: settings.config.tuner.timezone, index: () => store.reports() },
      chatTemplate,
    });
  } catch (e) {
    await engine.close();
    store.close();
    process.stderr.write(`tuneloop serve: cannot listen on ${settings.server.host}:${settings.server.port}: ${(e as Error).message}\n`);
    return 1;
  }
  const running = tuner;
  installGracefulShutdown({
    server,
    engine,
    logger,
    drainTimeoutMs: settings.server.drainTimeoutMs,
    beforeEngineClose: async () => {
      await running.close();
      store.close();
    },
  });
  logger.info(
    {
      url: server.url,
      auth: settings.server.apiKeys.length > 0,
      alertsWebhook: settings.server.alertsWebhookToken !== '',
      tuner: settings.config.tuner.enabled,
      tunerTokens: settings.config.auth.tokens.length,
    },
    'listening',
  );
  const plainKeys = settings.server.apiKeys.filter(isPlainApiKey).length;
  if (plainKeys > 0) {
    logger.warn({ plainKeys }, 'server.apiKeys holds plain-text keys: configure sha256:HEX digests instead (tuneloop hash-token KEY)');
  }
  // Never resolves: the shutdown handler exits the process once drained.
  return new Promise<number>(() => undefined);
}
