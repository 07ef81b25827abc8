// The YAML config: defaults, precedence of file < env < CLI, and errors that name the field, the reason and where
// the bad value came from.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_CONFIG, configKeyDocs, engineOptionsFromConfig, loadConfig, type TuneloopConfig } from '../../src/config/load.js';
import { defaultModelPath } from '../../src/defaults.js';
import { validateEngineOptions } from '../../src/engine/validate.js';
import { REPO_ROOT } from '../helpers/shared.js';

const dir = mkdtempSync(join(tmpdir(), 'tuneloop-config-'));
let n = 0;
function yamlFile(text: string): string {
  const p = join(dir, `c${n++}.yaml`);
  writeFileSync(p, text);
  return p;
}

function configErrorOf(f: () => unknown): ConfigError {
  try {
    f();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig defaults', () => {
  it('gives the documented defaults with no file, env or overrides', () => {
    const cfg = loadConfig({});
    expect(cfg).toEqual(DEFAULT_CONFIG);
    expect(cfg.server).toEqual({
      host: '127.0.0.1',
      port: 8080,
      apiKeys: [],
      requestBodyLimitBytes: 1048576,
      drainTimeoutMs: 30000,
      corsOrigins: [],
      rateLimitPerMinute: 6000,
      rateLimitBurst: 200,
      maxConcurrentStreamsPerKey: 64,
      maxPromptTokens: undefined,
      maxTokensLimit: undefined,
      streamInterval: 1,
    });
    expect(cfg.model.path).toBe(defaultModelPath());
    expect(cfg.model.name).toBe('tuneloop-shakespeare');
    expect(cfg.scheduler).toEqual({ maxBatchSize: 16, maxBatchTokens: 512, maxQueueDelayMs: 2, queueGrowThreshold: 32, maxQueueLength: 256 });
    expect(cfg.slo).toEqual({ ttftP99Seconds: 1, interTokenP99Seconds: 0.25, e2eP99Seconds: 10, errorRateBudget: 0.01 });
    expect(cfg.metrics).toEqual({ compat: 'none', pricePerCoreHour: 0.05 });
    expect(cfg.logging.level).toBe('info');
  });

  it('returns a fresh, mutable copy each time', () => {
    const a = loadConfig({});
    a.server.apiKeys.push('k');
    a.scheduler.maxBatchSize = 1;
    expect(loadConfig({}).server.apiKeys).toEqual([]);
    expect(DEFAULT_CONFIG.scheduler.maxBatchSize).toBe(16);
  });

  it('treats an empty file and empty sections as defaults', () => {
    expect(loadConfig({ file: yamlFile('') })).toEqual(DEFAULT_CONFIG);
    expect(loadConfig({ file: yamlFile('# only a comment\nscheduler:\n') })).toEqual(DEFAULT_CONFIG);
  });
});

describe('loadConfig precedence: CLI > env > file > defaults', () => {
  const file = yamlFile(
    [
      'server:',
      '  port: 7000',
      '  host: 0.0.0.0',
      '  apiKeys: [a, b]',
      'scheduler:',
      '  maxBatchSize: 8',
      '  maxQueueDelayMs: 0.5',
      'model:',
      '  path: models/x.gguf',
      '  threads: 2',
      'metrics:',
      '  compat: vllm',
    ].join('\n'),
  );

  it('applies the file over the defaults', () => {
    const cfg = loadConfig({ file });
    expect(cfg.server).toMatchObject({ port: 7000, host: '0.0.0.0', apiKeys: ['a', 'b'] });
    expect(cfg.scheduler).toMatchObject({ maxBatchSize: 8, maxQueueDelayMs: 0.5, maxBatchTokens: 512 });
    expect(cfg.metrics.compat).toBe('vllm');
    expect(cfg.model.threads).toBe(2);
    // A relative model path in the file is relative to the file.
    expect(cfg.model.path).toBe(join(dir, 'models', 'x.gguf'));
  });

  it('applies env vars over the file and overrides over env', () => {
    const env = {
      TUNELOOP_SERVER_PORT: '9000',
      TUNELOOP_SCHEDULER_MAX_BATCH_SIZE: '32',
      TUNELOOP_SERVER_API_KEYS: 'x, y ,z',
      TUNELOOP_SLO_TTFT_P99_SECONDS: '0.5',
      TUNELOOP_MODEL_PATH: '/m/env.gguf',
      TUNELOOP_CONFIG: '/ignored/not/a/setting.yaml',
      PATH: '/usr/bin',
    };
    const cfg = loadConfig({ file, env, overrides: { 'server.port': '9100', 'model.threads': '' } });
    expect(cfg.server.port).toBe(9100); // CLI beats env beats file
    expect(cfg.scheduler.maxBatchSize).toBe(32); // env beats file
    expect(cfg.scheduler.maxQueueDelayMs).toBe(0.5); // file beats default
    expect(cfg.server.host).toBe('0.0.0.0');
    expect(cfg.server.apiKeys).toEqual(['x', 'y', 'z']);
    expect(cfg.slo.ttftP99Seconds).toBe(0.5);
    expect(cfg.model.path).toBe('/m/env.gguf');
    expect(cfg.model.threads).toBeUndefined(); // an empty override unsets an optional key
    expect(cfg.scheduler.maxBatchTokens).toBe(512);
  });

  it('parses an empty apiKeys env var as "authentication off"', () => {
    expect(loadConfig({ file, env: { TUNELOOP_SERVER_API_KEYS: '' } }).server.apiKeys).toEqual([]);
  });
});

describe('loadConfig errors name the path, the reason and the origin', () => {
  it('a non-number from env', () => {
    const e = configErrorOf(() => loadConfig({ env: { TUNELOOP_SCHEDULER_MAX_BATCH_SIZE: 'abc' } }));
    expect(e.path).toBe('scheduler.maxBatchSize');
    expect(e.reason).toBe('expected an integer between 1 and 4096, got "abc"');
    expect(e.message).toBe('scheduler.maxBatchSize: expected an integer between 1 and 4096, got "abc" (env TUNELOOP_SCHEDULER_MAX_BATCH_SIZE)');
  });

  it('a truncated sha256: API key digest', () => {
    const e = configErrorOf(() => loadConfig({ env: { TUNELOOP_SERVER_API_KEYS: `plain-key,sha256:${'ab'.repeat(31)}` } }));
    expect(e.path).toBe('server.apiKeys[1]');
    expect(e.reason).toMatch(/expected sha256: followed by 64 lowercase hex digits/);
    // A whole digest and a plain key both load.
    expect(loadConfig({ env: { TUNELOOP_SERVER_API_KEYS: `plain-key,sha256:${'ab'.repeat(32)}` } }).server.apiKeys).toHaveLength(2);
  });

  it('a non-number from a CLI override', () => {
    const e = configErrorOf(() => loadConfig({ overrides: { 'server.port': '80a' } }));
    expect(e.path).toBe('server.port');
    expect(e.reason).toBe('expected an integer between 0 and 65535, got "80a"');
    expect(e.origin).toBe('override server.port');
  });

  const cases: [string, string, string, string][] = [
    ['fraction for an integer', 'scheduler:\n  maxBatchSize: 1.5\n', 'scheduler.maxBatchSize', 'expected an integer between 1 and 4096, got 1.5'],
    ['out of range', 'scheduler:\n  maxBatchSize: 0\n', 'scheduler.maxBatchSize', 'expected an integer between 1 and 4096, got 0'],
    ['quoted number in YAML', 'server:\n  port: "9000"\n', 'server.port', 'expected an integer between 0 and 65535, got "9000"'],
    ['negative delay', 'scheduler:\n  maxQueueDelayMs: -1\n', 'scheduler.maxQueueDelayMs', 'expected a number between 0 and 60000, got -1'],
    ['zero SLO', 'slo:\n  ttftP99Seconds: 0\n', 'slo.ttftP99Seconds', 'expected a number greater than 0 and at most 3600, got 0'],
    ['budget over 1', 'slo:\n  errorRateBudget: 2\n', 'slo.errorRateBudget', 'expected a number between 0 and 1, got 2'],
    ['bad enum', 'model:\n  weights: fp8\n', 'model.weights', 'expected one of native, f32, bf16, q8_0, q6_k, q5_k, q4_k, q4_0, mixed, int8, int4, got "fp8"'],
    ['bad compat', 'metrics:\n  compat: tgi\n', 'metrics.compat', 'expected one of none, vllm, got "tgi"'],
    ['empty string', 'model:\n  name: ""\n', 'model.name', 'expected a non-empty string, got ""'],
    ['number for a string', 'server:\n  host: 12\n', 'server.host', 'expected a non-empty string, got 12'],
    ['string for a list', 'server:\n  apiKeys: secret\n', 'server.apiKeys', 'expected a list of non-empty strings, got "secret"'],
    ['bad list item', 'server:\n  apiKeys: [ok, 5]\n', 'server.apiKeys[1]', 'expected a non-empty string, got 5'],
    ['null for a required key', 'scheduler:\n  maxBatchTokens: null\n', 'scheduler.maxBatchTokens', 'expected an integer between 1 and 1048576, got null'],
    ['section not a mapping', 'scheduler: 5\n', 'scheduler', 'expected a mapping, got 5'],
    ['root not a mapping', '- a\n- b\n', '(root)', 'expected a mapping of sections, got a list of 2'],
  ];
  for (const [what, text, path, reason] of cases) {
    it(`${what}: ${path}`, () => {
      const file = yamlFile(text);
      const e = configErrorOf(() => loadConfig({ file }));
      expect(e.path).toBe(path);
      expect(e.reason).toBe(reason);
      expect(e.message.startsWith(`${path}: ${reason}`)).toBe(true);
      expect(e.origin).toContain(file);
    });
  }

  it('gives the line of a bad value in the file', () => {
    const file = yamlFile('server:\n  port: 80\nscheduler:\n  maxBatchTokens: 512\n  maxBatchSize: huge\n');
    const e = configErrorOf(() => loadConfig({ file }));
    expect(e.origin).toBe(`${file}:5`);
  });

  it('allows null for an optional key (engine default)', () => {
    expect(loadConfig({ file: yamlFile('model:\n  threads: null\n') }).model.threads).toBeUndefined();
  });
});

describe('unknown keys are rejected by name', () => {
  it('in a section, with a suggestion', () => {
    const e = configErrorOf(() => loadConfig({ file: yamlFile('scheduler:\n  maxBatchSise: 4\n') }));
    expect(e.path).toBe('scheduler.maxBatchSise');
    expect(e.reason).toMatch(/^unknown key \(did you mean 'maxBatchSize'\?\) \(known: maxBatchSize, maxBatchTokens/);
  });

  it('an unknown section', () => {
    const e = configErrorOf(() => loadConfig({ file: yamlFile('schedular:\n  maxBatchSize: 4\n') }));
    expect(e.path).toBe('schedular');
    expect(e.reason).toContain("unknown section (did you mean 'scheduler'?)");
  });

  it('an unknown env var under a known section prefix', () => {
    const e = configErrorOf(() => loadConfig({ env: { TUNELOOP_SERVER_PROT: '1' } }));
    expect(e.reason).toContain('unknown env var TUNELOOP_SERVER_PROT');
    expect(e.reason).toContain("did you mean 'TUNELOOP_SERVER_PORT'");
  });

  it('an unknown CLI override', () => {
    const e = configErrorOf(() => loadConfig({ overrides: { 'server.prot': '1' } }));
    expect(e.path).toBe('server.prot');
    expect(e.reason).toContain('unknown key');
    const e2 = configErrorOf(() => loadConfig({ overrides: { 'nope.port': '1' } }));
    expect(e2.reason).toContain("unknown section 'nope'");
  });
});

describe('file errors', () => {
  it('names the file and line of a YAML syntax error', () => {
    const file = yamlFile('server:\n  port: 8080\nscheduler:\n  maxBatchSize: [1, 2\n  maxQueueDelayMs: 3\n');
    const e = configErrorOf(() => loadConfig({ file }));
    expect(e.path).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:[4-6]:\\d+$`));
    expect(e.reason).toMatch(/^invalid YAML: /);
  });

  it('names the file and line of a duplicate key', () => {
    const file = yamlFile('server:\n  port: 1\n  port: 2\n');
    const e = configErrorOf(() => loadConfig({ file }));
    expect(e.path).toBe(`${file}:3:3`);
  });

  it('a missing file', () => {
    const e = configErrorOf(() => loadConfig({ file: join(dir, 'missing.yaml') }));
    expect(e.path).toBe(join(dir, 'missing.yaml'));
    expect(e.reason).toContain('ENOENT');
  });
});

describe('engineOptionsFromConfig', () => {
  it('maps the defaults, leaving engine-chosen keys out', () => {
    const opts = engineOptionsFromConfig(loadConfig({}));
    expect(opts).toEqual({
      model: defaultModelPath(),
      weights: 'native', // the engine's default since every GGUF type runs natively (was 'f32')
      kvDtype: 'f32',
      tpDegree: 1,
      kvBlockSizeTokens: 16,
      kvCacheMaxBytes: 256 * 1024 * 1024,
      scheduler: { maxBatchSize: 16, maxBatchTokens: 512, maxQueueDelayMs: 2, queueGrowThreshold: 32, maxQueueLength: 256 },
    });
    expect('threads' in opts).toBe(false);
    expect(() => validateEngineOptions(opts)).not.toThrow();
  });

  it('passes set keys through, and the engine validator accepts them', () => {
    const cfg: TuneloopConfig = loadConfig({
      overrides: {
        'model.threads': '2',
        'model.threadsPerRank': '1',
        'model.tpDegree': '2',
        'model.contextLength': '128',
        'model.weights': 'int8',
        'model.kvDtype': 'f16',
        'scheduler.maxQueueDelayMs': '0',
      },
    });
    const opts = engineOptionsFromConfig(cfg);
    expect(opts).toMatchObject({ threads: 2, threadsPerRank: 1, tpDegree: 2, contextLength: 128, weights: 'int8', kvDtype: 'f16' });
    expect(opts.scheduler?.maxQueueDelayMs).toBe(0);
    expect(() => validateEngineOptions(opts)).not.toThrow();
  });

  it('passes the MoE layout only when set, as {layer, expert}, and refuses malformed or repeated experts', () => {
    const dense = engineOptionsFromConfig(loadConfig({}));
    expect('epDegree' in dense || 'redundantExperts' in dense).toBe(false);
    const opts = engineOptionsFromConfig(loadConfig({ overrides: { 'model.epDegree': '2', 'model.redundantExperts': '3:17, 0:5' } }));
    expect(opts).toMatchObject({
      epDegree: 2,
      redundantExperts: [
        { layer: 3, expert: 17 },
        { layer: 0, expert: 5 },
      ],
    });
    expect(() => validateEngineOptions(opts)).not.toThrow();
    const bad = configErrorOf(() => loadConfig({ overrides: { 'model.redundantExperts': '3:17,3-18' } }));
    expect([bad.path, bad.reason]).toEqual(['model.redundantExperts[1]', 'expected LAYER:EXPERT, two whole numbers such as 3:17, got "3-18"']);
    const twice = configErrorOf(() => loadConfig({ overrides: { 'model.redundantExperts': '3:17,3:17' } }));
    expect([twice.path, twice.reason]).toEqual(['model.redundantExperts[1]', '"3:17" is listed twice']);
    expect(configErrorOf(() => loadConfig({ overrides: { 'model.epDegree': '0' } })).path).toBe('model.epDegree');
  });
});

describe('documentation', () => {
  it('docs/configuration.md lists every key and its env var', () => {
    const doc = readFileSync(join(REPO_ROOT, 'docs', 'configuration.md'), 'utf8');
    for (const row of configKeyDocs()) {
      expect(doc, row.path).toContain(`\`${row.path}\``);
      expect(doc, row.env).toContain(`\`${row.env}\``);
    }
  });

  it('the example config loads and mentions every key', () => {
    const file = join(REPO_ROOT, 'config', 'tuneloop.example.yaml');
    const cfg = loadConfig({ file });
    expect(cfg.scheduler).toEqual(DEFAULT_CONFIG.scheduler);
    const text = readFileSync(file, 'utf8');
    for (const row of configKeyDocs()) expect(text, row.path).toContain(`${row.path.split('.')[1]}:`);
  });
});

describe('tuner, verify and auth sections', () => {
  const sha = (c: string): string => c.repeat(64);

  it('defaults', () => {
    const cfg = loadConfig({});
    expect(cfg.tuner).toMatchObject({
      enabled: true,
      storePath: '.tuneloop/tuner.db',
      timezone: 'UTC',
      monitorCron: '* * * * *',
      analyzeCron: '*/15 * * * *',
      reportCron: '0 9 * * 1',
      metricsSource: 'registry',
      prometheusUrl: '',
      analysisWindowMinutes: 15,
      maxCandidates: 3,
      autoApply: ['maxBatchSize', 'maxBatchTokens', 'maxQueueDelayMs', 'queueGrowThreshold', 'maxQueueLength'],
      requireApproval: ['weights', 'kvDtype', 'tpDegree', 'threadsPerRank', 'epDegree', 'redundantExperts'],
      forbid: [],
      rollupRetentionDays: 42,
      watchChecks: 5,
      watchFailureThreshold: 2,
      watchMaxGoodputDrop: 0.1,
    });
    expect(cfg.verify).toEqual({
      shadowShare: 0.05,
      similarityBar: 0.98,
      greedyAgreementBar: 0.9,
      perplexityDeltaBar: 0.05,
      minSamples: 20,
      confidence: 0.95,
      effectSizeBar: 0.2,
      shadowThreads: 1,
      timeoutSeconds: 600,
      seed: 0,
    });
    expect(cfg.auth).toEqual({ tokens: [], requireDistinctApprover: false });
  });

  it('reads booleans from YAML, and true/false, 1/0, yes/no from env and overrides', () => {
    expect(loadConfig({ file: yamlFile('tuner:\n  enabled: false\n  alertTriggersAnalysis: false\n') }).tuner).toMatchObject({
      enabled: false,
      alertTriggersAnalysis: false,
    });
    const cases: [string, boolean][] = [
      ['true', true],
      ['FALSE', false],
      ['1', true],
      ['0', false],
      ['yes', true],
      [' No ', false],
    ];
    for (const [raw, want] of cases) {
      expect(loadConfig({ env: { TUNELOOP_TUNER_ENABLED: raw } }).tuner.enabled, raw).toBe(want);
      expect(loadConfig({ overrides: { 'tuner.alertTriggersAnalysis': raw } }).tuner.alertTriggersAnalysis, raw).toBe(want);
    }
  });

  it('refuses a string boolean in the file and an unknown word in env', () => {
    const f = configErrorOf(() => loadConfig({ file: yamlFile('tuner:\n  enabled: "yes"\n') }));
    expect([f.path, f.reason]).toEqual(['tuner.enabled', 'expected true or false, got "yes"']);
    const e = configErrorOf(() => loadConfig({ env: { TUNELOOP_TUNER_ENABLED: 'maybe' } }));
    expect(e.message).toBe('tuner.enabled: expected true or false (or 1/0, yes/no), got "maybe" (env TUNELOOP_TUNER_ENABLED)');
  });

  it('reads a token list from YAML and from name:role:sha256 in env', () => {
    const file = yamlFile(
      ['auth:', '  tokens:', `    - { name: alice, role: approver, sha256: ${sha('a')} }`, '    - name: ci-bot', '      role: viewer', `      sha256: ${sha('b')}`].join(
        '\n',
      ),
    );
    expect(loadConfig({ file }).auth.tokens).toEqual([
      { name: 'alice', role: 'approver', sha256: sha('a') },
      { name: 'ci-bot', role: 'viewer', sha256: sha('b') },
    ]);
    const env = { TUNELOOP_AUTH_TOKENS: ` ops:admin:${sha('c')} , bob@example.com:viewer:${sha('d')},` };
    expect(loadConfig({ file, env }).auth.tokens).toEqual([
      { name: 'ops', role: 'admin', sha256: sha('c') },
      { name: 'bob@example.com', role: 'viewer', sha256: sha('d') },
    ]);
    expect(loadConfig({ file, overrides: { 'auth.tokens': '' } }).auth.tokens).toEqual([]);
  });

  const tokenErrors: [string, string, string, string][] = [
    ['not a list', 'auth:\n  tokens: abc\n', 'auth.tokens', 'expected a list of {name, role, sha256}, got "abc"'],
    ['item not a mapping', 'auth:\n  tokens: [abc]\n', 'auth.tokens[0]', 'expected a mapping {name, role, sha256}, got "abc"'],
    [
      'unknown key',
      `auth:\n  tokens:\n    - { name: a, role: admin, sha256: ${sha('a')}, token: x }\n`,
      'auth.tokens[0].token',
      'unknown key (known: name, role, sha256)',
    ],
    ['bad role', `auth:\n  tokens:\n    - { name: a, role: root, sha256: ${sha('a')} }\n`, 'auth.tokens[0].role', 'expected one of viewer, approver, admin, got "root"'],
    [
      'bad name',
      `auth:\n  tokens:\n    - { name: "a b", role: admin, sha256: ${sha('a')} }\n`,
      'auth.tokens[0].name',
      "expected 1 to 64 letters, digits, '_', '.', '@' or '-', got \"a b\"",
    ],
    [
      'uppercase hash',
      `auth:\n  tokens:\n    - { name: a, role: admin, sha256: ${sha('A')} }\n`,
      'auth.tokens[0].sha256',
      'expected 64 lowercase hex digits, the SHA-256 of the token (tuneloop hash-token), got a string of 64 characters',
    ],
    [
      'duplicate name',
      `auth:\n  tokens:\n    - { name: a, role: admin, sha256: ${sha('a')} }\n    - { name: a, role: viewer, sha256: ${sha('b')} }\n`,
      'auth.tokens[1].name',
      'duplicate name "a" (also auth.tokens[0])',
    ],
    [
      'duplicate hash',
      `auth:\n  tokens:\n    - { name: a, role: admin, sha256: ${sha('a')} }\n    - { name: b, role: viewer, sha256: ${sha('a')} }\n`,
      'auth.tokens[1].sha256',
      'the same token as auth.tokens[0]: one token, one name and role',
    ],
  ];
  for (const [what, text, path, reason] of tokenErrors) {
    it(`token list error, ${what}: ${path}`, () => {
      const e = configErrorOf(() => loadConfig({ file: yamlFile(text) }));
      expect([e.path, e.reason]).toEqual([path, reason]);
    });
  }

  it('never echoes what was given as a hash, or a malformed env entry (either may be a raw token)', () => {
    const secret = 'my-raw-secret-token';
    const f = configErrorOf(() => loadConfig({ file: yamlFile(`auth:\n  tokens:\n    - { name: a, role: admin, sha256: ${secret} }\n`) }));
    expect(f.message).not.toContain(secret);
    expect(f.reason).toContain(`a string of ${secret.length} characters`);
    const e = configErrorOf(() => loadConfig({ env: { TUNELOOP_AUTH_TOKENS: `ok:viewer:${sha('a')},${secret}` } }));
    expect([e.path, e.reason]).toEqual(['auth.tokens[1]', "expected name:role:sha256, got 1 ':'-separated part(s)"]);
    expect(e.message).not.toContain(secret);
    const r = configErrorOf(() => loadConfig({ env: { TUNELOOP_AUTH_TOKENS: `a:viewer:${secret}` } }));
    expect(r.path).toBe('auth.tokens[0].sha256');
    expect(r.message).not.toContain(secret);
  });

  it('knob lists take knob names only, each once; env values are comma-separated', () => {
    expect(loadConfig({ env: { TUNELOOP_TUNER_FORBID: 'tpDegree, kvDtype' } }).tuner.forbid).toEqual(['tpDegree', 'kvDtype']);
    const e = configErrorOf(() => loadConfig({ file: yamlFile('tuner:\n  forbid: [maxBatchSise]\n') }));
    expect(e.path).toBe('tuner.forbid[0]');
    expect(e.reason).toMatch(
      /^unknown name "maxBatchSise" \(did you mean 'maxBatchSize'\?\) \(known: maxBatchSize, maxBatchTokens, .*threadsPerRank, epDegree, redundantExperts\)$/,
    );
    const o = configErrorOf(() => loadConfig({ overrides: { 'tuner.autoApply': 'maxBatchSize,bogus' } }));
    expect([o.path, o.origin]).toEqual(['tuner.autoApply[1]', 'override tuner.autoApply']);
    expect(o.reason).toContain('"bogus"');
    const d = configErrorOf(() => loadConfig({ overrides: { 'tuner.forbid': 'weights,weights' } }));
    expect([d.path, d.reason]).toEqual(['tuner.forbid[1]', '"weights" is listed twice']);
  });

  it('refuses a knob in both autoApply and requireApproval, naming it', () => {
    const file = yamlFile('tuner:\n  autoApply: [maxBatchSize, kvDtype]\n');
    const e = configErrorOf(() => loadConfig({ file }));
    expect(e.path).toBe('tuner.requireApproval');
    expect(e.reason).toBe("knob 'kvDtype' is also in tuner.autoApply; a knob is either applied automatically or waits for approval, not both");
    expect(e.origin).toBe(`${file}:2`);
    // A later layer may resolve it.
    expect(loadConfig({ file, env: { TUNELOOP_TUNER_REQUIRE_APPROVAL: 'weights' } }).tuner.autoApply).toEqual(['maxBatchSize', 'kvDtype']);
  });

  it('requires prometheusUrl with metricsSource prometheus (after all layers)', () => {
    const file = yamlFile('tuner:\n  metricsSource: prometheus\n');
    const e = configErrorOf(() => loadConfig({ file }));
    expect(e.path).toBe('tuner.prometheusUrl');
    expect(e.reason).toMatch(/^required when tuner\.metricsSource is prometheus/);
    expect(e.origin).toBe(`${file}:2`);
    const env = { TUNELOOP_TUNER_PROMETHEUS_URL: 'http://prometheus:9090', TUNELOOP_TUNER_PROMETHEUS_SELECTOR: 'job="tuneloop"' };
    expect(loadConfig({ file, env }).tuner).toMatchObject({ metricsSource: 'prometheus', prometheusUrl: 'http://prometheus:9090', prometheusSelector: 'job="tuneloop"' });
    const u = configErrorOf(() => loadConfig({ env: { TUNELOOP_TUNER_PROMETHEUS_URL: 'ftp://x' } }));
    expect([u.path, u.reason]).toEqual(['tuner.prometheusUrl', 'expected an http(s) URL, got "ftp://x"']);
  });

  it('refuses a watchFailureThreshold above watchChecks', () => {
    const e = configErrorOf(() => loadConfig({ overrides: { 'tuner.watchChecks': '2', 'tuner.watchFailureThreshold': '3' } }));
    expect(e.path).toBe('tuner.watchFailureThreshold');
    expect(e.reason).toMatch(/^expected at most tuner\.watchChecks \(2\), got 3/);
    expect(e.origin).toBe('override tuner.watchChecks; override tuner.watchFailureThreshold');
  });

  it('validates cron expressions and the time zone', () => {
    expect(loadConfig({ overrides: { 'tuner.monitorCron': '*/30 * * * * *', 'tuner.timezone': 'Europe/Berlin' } }).tuner).toMatchObject({
      monitorCron: '*/30 * * * * *',
      timezone: 'Europe/Berlin',
    });
    const c = configErrorOf(() => loadConfig({ file: yamlFile('tuner:\n  analyzeCron: "61 * * * *"\n') }));
    expect(c.path).toBe('tuner.analyzeCron');
    expect(c.reason).toMatch(/^expected a cron expression .*minute.*, got "61 \* \* \* \*"$/);
    const n = configErrorOf(() => loadConfig({ env: { TUNELOOP_TUNER_REPORT_CRON: 'weekly' } }));
    expect(n.reason).toContain('expected 5 or 6 fields');
    const z = configErrorOf(() => loadConfig({ overrides: { 'tuner.timezone': 'Mars/Olympus' } }));
    expect([z.path, z.reason]).toEqual(['tuner.timezone', 'expected an IANA time zone name such as UTC or Europe/Berlin, got "Mars/Olympus"']);
  });

  it('resolves storePath like model.path: the file relative to itself, env to the working directory', () => {
    expect(loadConfig({ file: yamlFile('tuner:\n  storePath: state/t.db\n') }).tuner.storePath).toBe(join(dir, 'state', 't.db'));
    expect(loadConfig({ env: { TUNELOOP_TUNER_STORE_PATH: 'x/t.db' } }).tuner.storePath).toBe(join(process.cwd(), 'x', 't.db'));
  });

  const ranges: [string, string, string][] = [
    ['tuner.rollupRetentionDays', '34', 'expected an integer between 35 and 3650, got 34'],
    ['tuner.maxCandidates', '11', 'expected an integer between 1 and 10, got 11'],
    ['tuner.analysisWindowMinutes', '0', 'expected an integer between 1 and 1440, got 0'],
    ['tuner.watchMaxGoodputDrop', '1.5', 'expected a number between 0 and 1, got 1.5'],
    ['verify.shadowShare', '0', 'expected a number greater than 0 and at most 1, got 0'],
    ['tuner.metricsSource', 'datadog', 'expected one of registry, prometheus, got "datadog"'],
  ];
  for (const [path, raw, reason] of ranges) {
    it(`range: ${path}=${raw}`, () => {
      const e = configErrorOf(() => loadConfig({ overrides: { [path]: raw } }));
      expect([e.path, e.reason]).toEqual([path, reason]);
    });
  }
});
