// Loading the one YAML config: defaults < file < env vars (TUNELOOP_<SECTION>_<KEY>) < CLI overrides ('section.key').
// Every value is checked against CONFIG_SCHEMA as it is applied, so an error names the layer it came from (file and
// line, env var, or override) as well as the field path and the reason. Unknown keys are errors, not ignored: a typo
// in a knob name would otherwise silently run with the default.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isPair, isScalar, type Document, type Node as YamlNode } from 'yaml';
import type { EngineOptions } from '../engine/types.js';
import {
  CONFIG_SCHEMA, DEFAULT_CONFIG, envKeyOf, type FieldSpec, type SectionName, type TuneloopConfig,
} from './config-schema.js';

export { CONFIG_SCHEMA, DEFAULT_CONFIG, configKeyDocs, envKeyOf } from './config-schema.js';
export type {
  AlertsConfig, ConfigKeyDoc, LoggingConfig, LogLevel, MetricsCompat, MetricsConfig, ModelConfig, ServerConfig, SloConfig, TuneloopConfig,
} from './config-schema.js';

/** A bad config value. `path` is the field (`scheduler.maxBatchSize`), or `file:line:col` for a YAML syntax error;
 *  `origin` says where the value came from (file and line, env var, CLI override). */
export class ConfigError extends Error {
  constructor(readonly path: string, readonly reason: string, readonly origin?: string) {
    super(`${path}: ${reason}${origin ? ` (${origin})` : ''}`);
    this.name = 'ConfigError';
  }
}

export interface LoadConfigOptions {
  /** YAML file; absent = defaults (plus env and overrides). */
  file?: string;
  /** Environment to read TUNELOOP_* overrides from; absent = none (callers pass process.env explicitly). */
  env?: NodeJS.ProcessEnv;
  /** Flat CLI overrides: { 'server.port': '9000' }. */
  overrides?: Record<string, string>;
}

const SECTIONS = Object.keys(CONFIG_SCHEMA) as SectionName[];

export function loadConfig(opts: LoadConfigOptions = {}): TuneloopConfig {
  const cfg = structuredClone(DEFAULT_CONFIG) as TuneloopConfig;
  if (opts.file !== undefined) applyFile(cfg, opts.file);
  if (opts.env) applyEnv(cfg, opts.env);
  if (opts.overrides) applyOverrides(cfg, opts.overrides);
  return cfg;
}

/** The engine's load options from a config (undefined keys are left to the engine's own defaults). */
export function engineOptionsFromConfig(cfg: TuneloopConfig): EngineOptions {
  const m = cfg.model;
  const opts: EngineOptions = {
    model: m.path,
    weights: m.weights,
    kvDtype: m.kvDtype,
    tpDegree: m.tpDegree,
    kvBlockSizeTokens: m.kvBlockSizeTokens,
    kvCacheMaxBytes: m.kvCacheMaxBytes,
    scheduler: { ...cfg.scheduler },
  };
  if (m.threadsPerRank !== undefined) opts.threadsPerRank = m.threadsPerRank;
  if (m.threads !== undefined) opts.threads = m.threads;
  if (m.contextLength !== undefined) opts.contextLength = m.contextLength;
  return opts;
}

// ---- layers ----

function applyFile(cfg: TuneloopConfig, file: string): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, `cannot read config file: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const err = doc.errors[0];
  if (err) {
    // Positions come from the line counter (YAMLError.linePos is only filled with prettyErrors, which also
    // rewrites the message into a multi-line excerpt).
    const pos = lineCounter.linePos(err.pos[0]);
    const where = `${file}:${pos.line}:${pos.col}`;
    throw new ConfigError(where, `invalid YAML: ${err.message.split('\n')[0]}`);
  }
  const origin = (path: (string | number)[]): string => {
    const line = lineOfPath(doc, lineCounter, path);
    return line ? `${file}:${line}` : file;
  };
  const root: unknown = doc.toJS();
  if (root === null || root === undefined) return; // an empty file: defaults
  if (!isPlainObject(root)) throw new ConfigError('(root)', `expected a mapping of sections, got ${describe(root)}`, file);
  const baseDir = dirname(resolve(file));
  for (const [section, body] of Object.entries(root)) {
    if (!isSection(section)) {
      throw new ConfigError(section, `unknown section${suggest(section, SECTIONS)} (known: ${SECTIONS.join(', ')})`, origin([section]));
    }
    if (body === null) continue; // `scheduler:` with nothing under it
    if (!isPlainObject(body)) throw new ConfigError(section, `expected a mapping, got ${describe(body)}`, origin([section]));
    for (const [key, value] of Object.entries(body)) {
      const spec = specOf(section, key, origin([section, key]));
      const parsed = checkValue(`${section}.${key}`, spec, value, origin([section, key]));
      set(cfg, section, key, section === 'model' && key === 'path' ? resolve(baseDir, parsed as string) : parsed);
    }
  }
}

function applyEnv(cfg: TuneloopConfig, env: NodeJS.ProcessEnv): void {
  // Only variables under a known section prefix are ours; others (TUNELOOP_CONFIG, …) are left alone.
  for (const [name, raw] of Object.entries(env)) {
    if (raw === undefined) continue;
    const section = SECTIONS.find((s) => name.startsWith(`TUNELOOP_${s.toUpperCase()}_`));
    if (!section) continue;
    const keys = Object.keys(CONFIG_SCHEMA[section]);
    const key = keys.find((k) => envKeyOf(section, k) === name);
    if (!key) {
      const known = keys.map((k) => envKeyOf(section, k));
      throw new ConfigError(`${section}.?`, `unknown env var ${name}${suggest(name, known)} (known: ${known.join(', ')})`, `env ${name}`);
    }
    applyString(cfg, section, key, raw, `env ${name}`);
  }
}

function applyOverrides(cfg: TuneloopConfig, overrides: Record<string, string>): void {
  for (const [path, raw] of Object.entries(overrides)) {
    const origin = `override ${path}`;
    const dot = path.indexOf('.');
    const section = dot < 0 ? path : path.slice(0, dot);
    const key = dot < 0 ? '' : path.slice(dot + 1);
    if (!isSection(section)) {
      throw new ConfigError(path, `unknown section '${section}'${suggest(section, SECTIONS)} (known: ${SECTIONS.join(', ')})`, origin);
    }
    specOf(section, key, origin);
    applyString(cfg, section, key, raw, origin);
  }
}

/** Env vars and CLI overrides are strings: parse by the field's type, then check as a file value would be. */
function applyString(cfg: TuneloopConfig, section: SectionName, key: string, raw: string, origin: string): void {
  const path = `${section}.${key}`;
  const spec = (CONFIG_SCHEMA[section] as Record<string, FieldSpec>)[key]!;
  if (raw.trim() === '' && spec.optional) {
    set(cfg, section, key, undefined);
    return;
  }
  let value: unknown = raw;
  if (spec.kind === 'integer' || spec.kind === 'number') {
    const n = raw.trim() === '' ? NaN : Number(raw);
    value = Number.isNaN(n) ? raw : n; // keep the string so the error shows what was given
  } else if (spec.kind === 'stringList') {
    value = raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  }
  const parsed = checkValue(path, spec, value, origin);
  set(cfg, section, key, section === 'model' && key === 'path' ? resolve(parsed as string) : parsed);
}

// ---- checking ----

function specOf(section: SectionName, key: string, origin: string): FieldSpec {
  const fields = CONFIG_SCHEMA[section] as Record<string, FieldSpec>;
  const spec = Object.hasOwn(fields, key) ? fields[key] : undefined;
  if (!spec) {
    const known = Object.keys(fields);
    throw new ConfigError(`${section}.${key}`, `unknown key${suggest(key, known)} (known: ${known.join(', ')})`, origin);
  }
  return spec;
}

function checkValue(path: string, spec: FieldSpec, v: unknown, origin: string): unknown {
  if (v === null && spec.optional) return undefined;
  const bad = (expected: string): ConfigError => new ConfigError(path, `expected ${expected}, got ${describe(v)}`, origin);
  switch (spec.kind) {
    case 'integer':
      if (typeof v !== 'number' || !Number.isInteger(v) || v < spec.min || v > spec.max) {
        throw bad(`an integer between ${spec.min} and ${spec.max}`);
      }
      return v;
    case 'number': {
      const tooLow = typeof v === 'number' && (spec.minExclusive ? v <= spec.min : v < spec.min);
      if (typeof v !== 'number' || !Number.isFinite(v) || tooLow || v > spec.max) {
        throw bad(spec.minExclusive ? `a number greater than ${spec.min} and at most ${spec.max}` : `a number between ${spec.min} and ${spec.max}`);
      }
      return v;
    }
    case 'string':
      if (typeof v !== 'string' || (v.length === 0 && !spec.allowEmpty)) throw bad(spec.allowEmpty ? 'a string' : 'a non-empty string');
      return v;
    case 'enum':
      if (typeof v !== 'string' || !spec.values.includes(v)) throw bad(`one of ${spec.values.join(', ')}`);
      return v;
    case 'stringList':
      if (!Array.isArray(v)) throw bad('a list of non-empty strings');
      v.forEach((item, i) => {
        if (typeof item !== 'string' || item.length === 0) {
          throw new ConfigError(`${path}[${i}]`, `expected a non-empty string, got ${describe(item)}`, origin);
        }
      });
      return [...(v as string[])];
  }
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? v.slice(0, 60) + '…' : v);
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

/** " (did you mean 'x'?)" for a near miss: same letters ignoring case and separators, or edit distance ≤ 2. */
function suggest(given: string, known: readonly string[]): string {
  const norm = (s: string): string => s.toLowerCase().replace(/[_\-.]/g, '');
  const hit = known.find((k) => norm(k) === norm(given)) ?? known.find((k) => editDistance(norm(k), norm(given)) <= 2);
  return hit ? ` (did you mean '${hit}'?)` : '';
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur.push(Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

// ---- helpers ----

function isSection(s: string): s is SectionName {
  return (SECTIONS as string[]).includes(s);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function set(cfg: TuneloopConfig, section: SectionName, key: string, value: unknown): void {
  (cfg[section] as unknown as Record<string, unknown>)[key] = value;
}

/** 1-based line of the key at `path` in the YAML document (the value's line if the key has none). */
function lineOfPath(doc: Document, lc: LineCounter, path: (string | number)[]): number | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined;
  for (const part of path) {
    if (!isMap(node)) return offset === undefined ? undefined : lc.linePos(offset).line;
    const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === part);
    if (!pair) break;
    const keyNode = pair.key as YamlNode;
    offset = keyNode.range?.[0] ?? offset;
    node = pair.value;
  }
  return offset === undefined ? undefined : lc.linePos(offset).line;
}
