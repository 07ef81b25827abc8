// Loading the one YAML config: defaults < file < env vars (TUNELOOP_<SECTION>_<KEY>) < CLI overrides ('section.key').
// Every value is checked against CONFIG_SCHEMA as it is applied, so an error names the layer it came from (file and
// line, env var, or override) as well as the field path and the reason. Unknown keys are errors, not ignored: a typo
// in a knob name would otherwise silently run with the default.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isPair, isScalar, type Document, type Node as YamlNode } from 'yaml';
import { validateDetailed as validateCron } from 'node-cron';
import type { EngineOptions, ExpertRef } from '../engine/types.js';
import { API_ROLES, CONFIG_SCHEMA, DEFAULT_CONFIG, envKeyOf, type ApiToken, type FieldSpec, type SectionName, type StringFormat, type TuneloopConfig } from './schema.js';

export { API_ROLES, CONFIG_SCHEMA, DEFAULT_CONFIG, METRICS_SOURCES, TUNER_KNOBS, configKeyDocs, envKeyOf } from './schema.js';
export type {
  AlertsConfig,
  ApiRole,
  ApiToken,
  AuthConfig,
  ConfigKeyDoc,
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
  VerifyConfigSection,
} from './schema.js';

/** A bad config value. `path` is the field (`scheduler.maxBatchSize`), or `file:line:col` for a YAML syntax error;
 *  `origin` says where the value came from (file and line, env var, CLI override). */
export class ConfigError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
    readonly origin?: string,
  ) {
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

/** Paths that, set in the file, are relative to the file (elsewhere: to the working directory). */
const PATH_KEYS = new Set(['model.path', 'tuner.storePath', 'tuner.reportsDir']);

/** The config being built, and where each set value came from (for errors that span several keys). */
interface Target {
  cfg: TuneloopConfig;
  origins: Map<string, string>;
}

export function loadConfig(opts: LoadConfigOptions = {}): TuneloopConfig {
  const t: Target = { cfg: structuredClone(DEFAULT_CONFIG), origins: new Map() };
  if (opts.file !== undefined) applyFile(t, opts.file);
  if (opts.env) applyEnv(t, opts.env);
  if (opts.overrides) applyOverrides(t, opts.overrides);
  checkCrossField(t);
  return t.cfg;
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
    // MoE layout only when set away from the defaults: an engine that predates MoE never sees the keys.
    ...(m.epDegree !== 1 ? { epDegree: m.epDegree } : {}),
    ...(m.redundantExperts.length > 0 ? { redundantExperts: parseExpertRefs(m.redundantExperts) } : {}),
    kvCacheMaxBytes: m.kvCacheMaxBytes,
    scheduler: { ...cfg.scheduler },
  };
  if (m.threadsPerRank !== undefined) opts.threadsPerRank = m.threadsPerRank;
  if (m.threads !== undefined) opts.threads = m.threads;
  if (m.contextLength !== undefined) opts.contextLength = m.contextLength;
  return opts;
}

/** `LAYER:EXPERT` strings (format 'expertRef', already checked) to {layer, expert}. */
export function parseExpertRefs(refs: readonly string[]): ExpertRef[] {
  return refs.map((r) => {
    const [layer, expert] = r.split(':').map(Number) as [number, number];
    return { layer, expert };
  });
}

// ---- layers ----

function applyFile(t: Target, file: string): void {
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
      const where = origin([section, key]);
      const spec = specOf(section, key, where);
      const path = `${section}.${key}`;
      const parsed = checkValue(path, spec, value, where);
      set(t, section, key, PATH_KEYS.has(path) ? resolve(baseDir, parsed as string) : parsed, where);
    }
  }
}

function applyEnv(t: Target, env: NodeJS.ProcessEnv): void {
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
    applyString(t, section, key, raw, `env ${name}`);
  }
}

function applyOverrides(t: Target, overrides: Record<string, string>): void {
  for (const [path, raw] of Object.entries(overrides)) {
    const origin = `override ${path}`;
    const dot = path.indexOf('.');
    const section = dot < 0 ? path : path.slice(0, dot);
    const key = dot < 0 ? '' : path.slice(dot + 1);
    if (!isSection(section)) {
      throw new ConfigError(path, `unknown section '${section}'${suggest(section, SECTIONS)} (known: ${SECTIONS.join(', ')})`, origin);
    }
    specOf(section, key, origin);
    applyString(t, section, key, raw, origin);
  }
}

/** Env vars and CLI overrides are strings: parse by the field's type, then check as a file value would be. */
function applyString(t: Target, section: SectionName, key: string, raw: string, origin: string): void {
  const path = `${section}.${key}`;
  const spec = (CONFIG_SCHEMA[section] as Record<string, FieldSpec>)[key]!;
  if (raw.trim() === '' && spec.optional) {
    set(t, section, key, undefined, origin);
    return;
  }
  let value: unknown = raw;
  if (spec.kind === 'integer' || spec.kind === 'number') {
    const n = raw.trim() === '' ? NaN : Number(raw);
    value = Number.isNaN(n) ? raw : n; // keep the string so the error shows what was given
  } else if (spec.kind === 'stringList') {
    value = commaList(raw);
  } else if (spec.kind === 'boolean') {
    value = parseBoolean(path, raw, origin);
  } else if (spec.kind === 'tokenList') {
    value = parseTokenEntries(path, raw, origin);
  }
  const parsed = checkValue(path, spec, value, origin);
  set(t, section, key, PATH_KEYS.has(path) ? resolve(parsed as string) : parsed, origin);
}

function commaList(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

const TRUE_WORDS = new Set(['true', '1', 'yes']);
const FALSE_WORDS = new Set(['false', '0', 'no']);

function parseBoolean(path: string, raw: string, origin: string): boolean {
  const w = raw.trim().toLowerCase();
  if (TRUE_WORDS.has(w)) return true;
  if (FALSE_WORDS.has(w)) return false;
  throw new ConfigError(path, `expected true or false (or 1/0, yes/no), got ${describe(raw)}`, origin);
}

/** `name:role:sha256,…` → entries for checkValue. A malformed entry is reported by position, never echoed: it may
 *  hold a raw token pasted by mistake. */
function parseTokenEntries(path: string, raw: string, origin: string): Record<string, string>[] {
  return commaList(raw).map((entry, i) => {
    const parts = entry.split(':').map((s) => s.trim());
    if (parts.length !== 3) {
      throw new ConfigError(`${path}[${i}]`, `expected name:role:sha256, got ${parts.length} ':'-separated part(s)`, origin);
    }
    const [name, role, sha256] = parts as [string, string, string];
    return { name, role, sha256 };
  });
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
    case 'string': {
      if (typeof v !== 'string' || (v.length === 0 && !spec.allowEmpty)) throw bad(spec.allowEmpty ? 'a string' : 'a non-empty string');
      const problem = spec.format && v.length > 0 ? formatProblem(spec.format, v) : undefined;
      if (problem) throw new ConfigError(path, `${problem}, got ${describe(v)}`, origin);
      return v;
    }
    case 'enum':
      if (typeof v !== 'string' || !spec.values.includes(v)) throw bad(`one of ${spec.values.join(', ')}`);
      return v;
    case 'stringList': {
      if (!Array.isArray(v)) throw bad('a list of non-empty strings');
      const values = spec.values;
      v.forEach((item, i) => {
        const at = `${path}[${i}]`;
        if (typeof item !== 'string' || item.length === 0) {
          throw new ConfigError(at, `expected a non-empty string, got ${describe(item)}`, origin);
        }
        if (values && !values.includes(item)) {
          throw new ConfigError(at, `unknown name ${describe(item)}${suggest(item, values)} (known: ${values.join(', ')})`, origin);
        }
        if ((values || spec.format === 'expertRef') && v.indexOf(item) !== i) throw new ConfigError(at, `${describe(item)} is listed twice`, origin);
        const problem = spec.format ? formatProblem(spec.format, item) : undefined;
        if (problem) throw new ConfigError(at, `${problem}, got ${describe(item)}`, origin);
      });
      return [...(v as string[])];
    }
    case 'boolean':
      if (typeof v !== 'boolean') throw bad('true or false');
      return v;
    case 'tokenList':
      return checkTokens(path, v, origin);
  }
}

const TOKEN_KEYS = ['name', 'role', 'sha256'];
const TOKEN_NAME_RE = /^[\w.@-]{1,64}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;

function checkTokens(path: string, v: unknown, origin: string): ApiToken[] {
  if (!Array.isArray(v)) throw new ConfigError(path, `expected a list of {name, role, sha256}, got ${describe(v)}`, origin);
  const out: ApiToken[] = [];
  v.forEach((item: unknown, i) => {
    const at = `${path}[${i}]`;
    const err = (field: string, reason: string): ConfigError => new ConfigError(`${at}.${field}`, reason, origin);
    if (!isPlainObject(item)) throw new ConfigError(at, `expected a mapping {name, role, sha256}, got ${describe(item)}`, origin);
    for (const k of Object.keys(item)) {
      if (!TOKEN_KEYS.includes(k)) throw err(k, `unknown key (known: ${TOKEN_KEYS.join(', ')})`);
    }
    const { name, role, sha256 } = item;
    if (typeof name !== 'string' || !TOKEN_NAME_RE.test(name)) {
      throw err('name', `expected 1 to 64 letters, digits, '_', '.', '@' or '-', got ${describe(name)}`);
    }
    if (typeof role !== 'string' || !(API_ROLES as readonly string[]).includes(role)) {
      throw err('role', `expected one of ${API_ROLES.join(', ')}, got ${describe(role)}`);
    }
    // Never echo the value: a raw token pasted here by mistake must not reach logs.
    if (typeof sha256 !== 'string' || !SHA256_RE.test(sha256)) {
      const got = typeof sha256 === 'string' ? `a string of ${sha256.length} characters` : describe(sha256);
      throw err('sha256', `expected 64 lowercase hex digits, the SHA-256 of the token (tuneloop hash-token), got ${got}`);
    }
    const j = out.findIndex((o) => o.name === name);
    if (j >= 0) throw err('name', `duplicate name ${describe(name)} (also ${path}[${j}])`);
    const k = out.findIndex((o) => o.sha256 === sha256);
    if (k >= 0) throw err('sha256', `the same token as ${path}[${k}]: one token, one name and role`);
    out.push({ name, role: role as ApiToken['role'], sha256 });
  });
  return out;
}

/** Why `v` is not of the format, as "expected …"; undefined when it is. */
function formatProblem(format: StringFormat, v: string): string | undefined {
  switch (format) {
    case 'cron': {
      const r = validateCron(v);
      return r.valid ? undefined : `expected a cron expression ([second] minute hour day-of-month month day-of-week): ${r.errors.map((e) => e.message).join('; ')}`;
    }
    case 'timezone':
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: v });
        return undefined;
      } catch {
        return 'expected an IANA time zone name such as UTC or Europe/Berlin';
      }
    case 'url': {
      let u: URL;
      try {
        u = new URL(v);
      } catch {
        return 'expected an http(s) URL';
      }
      return u.protocol === 'http:' || u.protocol === 'https:' ? undefined : 'expected an http(s) URL';
    }
    case 'apiKey':
      // A prefixed entry must be a whole digest: a typo would otherwise lock every client out with no hint why.
      return !v.startsWith('sha256:') || /^sha256:[0-9a-f]{64}$/.test(v) ? undefined : 'expected sha256: followed by 64 lowercase hex digits (tuneloop hash-token KEY)';
    case 'expertRef':
      // The canonical spelling only (no leading zeros), so a repeat is a repeated string.
      return /^(0|[1-9]\d{0,4}):(0|[1-9]\d{0,4})$/.test(v) ? undefined : 'expected LAYER:EXPERT, two whole numbers such as 3:17';
    case 'origin': {
      // Browsers send the serialized origin (lower-case host, no default port, no path); anything else never matches.
      const expected = 'expected an origin such as https://ops.example.com (scheme://host[:port], no path or trailing slash)';
      try {
        const u = new URL(v);
        return (u.protocol === 'http:' || u.protocol === 'https:') && u.origin === v ? undefined : expected;
      } catch {
        return expected;
      }
    }
  }
}

// ---- checks across keys (after every layer, so a later layer may fix an earlier one) ----

function checkCrossField(t: Target): void {
  const { tuner } = t.cfg;
  const from = (...paths: string[]): string => {
    const o = [...new Set(paths.map((p) => t.origins.get(p)).filter((x): x is string => x !== undefined))];
    return o.length > 0 ? o.join('; ') : 'defaults';
  };
  if (tuner.metricsSource === 'prometheus' && tuner.prometheusUrl === '') {
    throw new ConfigError(
      'tuner.prometheusUrl',
      "required when tuner.metricsSource is prometheus: the Prometheus HTTP API's base URL, e.g. http://prometheus:9090",
      from('tuner.metricsSource', 'tuner.prometheusUrl'),
    );
  }
  const both = tuner.autoApply.find((k) => tuner.requireApproval.includes(k));
  if (both !== undefined) {
    throw new ConfigError(
      'tuner.requireApproval',
      `knob '${both}' is also in tuner.autoApply; a knob is either applied automatically or waits for approval, not both`,
      from('tuner.autoApply', 'tuner.requireApproval'),
    );
  }
  if (tuner.watchFailureThreshold > tuner.watchChecks) {
    throw new ConfigError(
      'tuner.watchFailureThreshold',
      `expected at most tuner.watchChecks (${tuner.watchChecks}), got ${tuner.watchFailureThreshold}: the change could never be rolled back`,
      from('tuner.watchChecks', 'tuner.watchFailureThreshold'),
    );
  }
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? v.slice(0, 60) + '…' : v);
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return `a ${typeof v}`;
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

function set(t: Target, section: SectionName, key: string, value: unknown, origin: string): void {
  (t.cfg[section] as unknown as Record<string, unknown>)[key] = value;
  t.origins.set(`${section}.${key}`, origin);
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
