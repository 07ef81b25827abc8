// The package face: `import { Engine, loadConfig, startServer } from 'tuneloop'`. Subpaths for lighter imports:
// 'tuneloop/engine' (the engine alone, no HTTP stack) and 'tuneloop/config' (the config loader and schema).

// The engine: load a GGUF model, generate, reconfigure and reload live (src/engine/).
export { Engine, Generation, EngineError, ENGINE_ERROR_CODES, isEngineError, VocabTokenizer, type EngineErrorCode, type VocabTokenizerInfo } from './engine/index.js';
export * from './engine/types.js';
export * from './engine/knobs.js';

// The config: defaults < YAML file < env < overrides, validated against the schema (src/config/).
export { ConfigError, loadConfig, engineOptionsFromConfig, DEFAULT_CONFIG, CONFIG_SCHEMA, type LoadConfigOptions } from './config/load.js';
export type {
  AlertsConfig,
  ApiRole,
  AuthConfig,
  LoggingConfig,
  LogLevel,
  MetricsCompat,
  MetricsConfig,
  MetricsSource,
  ModelConfig,
  ServerConfig,
  SloConfig,
  TuneloopConfig,
  TunerConfig,
  TunerKnob,
} from './config/load.js';

// The server: the OpenAI-compatible HTTP app and its listener (src/controlplane/). Only these two names are part of
// the face; their argument types are `Parameters<typeof startServer>[0]` and `Parameters<typeof createApp>[0]`.
export { startServer } from './controlplane/http-server.js';
export { createApp } from './controlplane/app.js';

// The embedded default model (models/tuneloop-shakespeare.gguf) and the package root it is found from.
export { defaultModelPath, DEFAULT_MODEL_FILE, EMBEDDED_MODELS, embeddedModelPath, packageRoot, resolveModelArg } from './defaults.js';
