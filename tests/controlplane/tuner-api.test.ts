// The tuner's REST routes (tuner-api.ts) through the real app and HTTP server: every route × every caller (no token,
// bad token, viewer, approver, admin, and no tokens configured), input validation (400 naming the parameter),
// TunerError → 404/409/400/503, response shapes, the mount order beside /api/alerts, and docs/api.md coverage.
// A small in-test TunerControl stands in for the tuner: these tests are about routing, auth and validation; the
// end-to-end tests with the real tuner live with the tuner. The onGeneration hook is tested on the shipped model.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/engine/engine.js';
import { Engine as RealEngine } from '../../src/engine/index.js';
import { DEFAULT_SERVER_OPTIONS, type GenerationEvent, type ServerOptions } from '../../src/controlplane/app.js';
import { hashToken } from '../../src/controlplane/auth.js';
import { DEFAULT_CHAT_TEMPLATE } from '../../src/controlplane/openai/chat-template.js';
import type { ApiToken } from '../../src/config/schema.js';
import { CP_ERRORS } from '../../src/controlplane/errors.js';
import { startServer, type RunningServer, type StartServerArgs } from '../../src/controlplane/http-server.js';
import { MAX_COMMENT_CHARS } from '../../src/controlplane/tuner-api.js';
import { TunerError, type ProposalDetail, type RunOutcome, type TunerControl, type TunerStatus } from '../../src/tuner/facade.js';
import type { AuditEntry, SettingsVersion } from '../../src/tuner/store.js';
import type { Actor, LiveSettings, Proposal, ProposalState } from '../../src/tuner/types.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { MODEL, MODEL_NAME, postJson, sseData, waitFor } from './harness.js';

// ---- the fake tuner --------------------------------------------------------------------------------------------

const LIVE: LiveSettings = {
  scheduler: { maxBatchSize: 16, maxBatchTokens: 512, maxQueueDelayMs: 2, queueGrowThreshold: 32, maxQueueLength: 256 },
  layout: { weights: 'f32', kvDtype: 'f32', tpDegree: 1, threadsPerRank: 1 },
};

function proposal(id: number, state: ProposalState): Proposal {
  return {
    id,
    createdMs: 1000 * id,
    updatedMs: 1000 * id,
    state,
    candidate: {
      change: { scheduler: { maxBatchSize: 32 } },
      temperature: 'hot',
      addresses: 'queueing',
      rationale: 'batches are full',
      predicted: { goodputTokensPerS: 200, baselineGoodputTokensPerS: 100, interTokenS: 0.05, meetsSlo: true },
    },
    baseVersion: 3,
    target: { ...LIVE, scheduler: { ...LIVE.scheduler, maxBatchSize: 32 } },
    needsApproval: state === 'verified',
    findingId: null,
    evidence: null,
    appliedVersion: null,
    expiresMs: 1e13,
  };
}

function version(v: number, source: SettingsVersion['source'] = 'config'): SettingsVersion {
  return { version: v, settings: LIVE, source, actor: 'system', proposalId: null, note: '', createdMs: v * 1000 };
}

type Call = { method: string; args: unknown[] };

/** Answers from fixed data; refuses like the real tuner (NOT_FOUND, CONFLICT, BUSY, INVALID, PAUSED) on cue. */
class FakeTuner implements TunerControl {
  calls: Call[] = [];
  busy = false;
  paused = false;
  broken = false;
  readonly proposals = [proposal(1, 'confirmed'), proposal(2, 'verified'), proposal(3, 'proposed')];

  status(): TunerStatus {
    return {
      enabled: true,
      state: 'idle',
      pausedReason: '',
      metricsSource: 'registry',
      liveVersion: 3,
      schedule: { monitor: '* * * * *', analyze: '*/15 * * * *', report: '0 9 * * 1', timezone: 'UTC' },
      lastRuns: [],
      findings: [],
      open: this.proposals.filter((p) => p.state !== 'confirmed'),
      verifying: null,
    };
  }
  async runNow(trigger: 'api' | 'alert', actor: Actor): Promise<RunOutcome> {
    this.calls.push({ method: 'runNow', args: [trigger, actor] });
    if (this.busy) throw new TunerError('BUSY', 'a tuning run is already in progress (run 6)');
    if (this.paused) throw new TunerError('PAUSED', 'paused: Prometheus is unreachable');
    return { runId: 7, outcome: 'ok', findings: [], proposals: [this.proposals[2]!] };
  }
  listProposals(state?: ProposalState): Proposal[] {
    this.calls.push({ method: 'listProposals', args: [state] });
    return this.proposals.filter((p) => state === undefined || p.state === state);
  }
  getProposal(id: number): ProposalDetail | undefined {
    const p = this.proposals.find((x) => x.id === id);
    return p && { ...p, transitions: [{ proposalId: id, from: null, to: 'proposed', atMs: 1, actor: 'system', comment: '' }], approvals: [] };
  }
  private decide(method: 'approve' | 'reject', id: number, actor: Actor, comment: string): Proposal {
    this.calls.push({ method, args: [id, actor, comment] });
    const p = this.proposals.find((x) => x.id === id);
    if (!p) throw new TunerError('NOT_FOUND', `proposal ${id} does not exist`);
    if (p.state !== 'verified') throw new TunerError('CONFLICT', `proposal ${id} is ${p.state}; only a verified proposal can be decided`);
    return { ...p, state: method === 'approve' ? 'approved' : 'rejected' };
  }
  async approve(id: number, actor: Actor, comment: string): Promise<Proposal> {
    return this.decide('approve', id, actor, comment);
  }
  async reject(id: number, actor: Actor, comment: string): Promise<Proposal> {
    return this.decide('reject', id, actor, comment);
  }
  liveConfig(): SettingsVersion {
    return version(3);
  }
  configHistory(limit?: number): SettingsVersion[] {
    this.calls.push({ method: 'configHistory', args: [limit] });
    return [version(3), version(2), version(1)].slice(0, limit ?? 3);
  }
  async rollbackTo(v: number, actor: Actor, comment: string): Promise<SettingsVersion> {
    this.calls.push({ method: 'rollbackTo', args: [v, actor, comment] });
    if (v > 3) throw new TunerError('NOT_FOUND', `settings version ${v} does not exist`);
    if (v === 3) throw new TunerError('INVALID', 'version 3 is already live');
    return { ...version(4, 'rollback'), actor: actor.name, note: comment };
  }
  auditLog(filter?: { sinceId?: number; limit?: number; action?: string }): AuditEntry[] {
    this.calls.push({ method: 'auditLog', args: [filter] });
    if (this.broken) throw new Error('database is locked');
    return [{ id: 1, atMs: 1, actor: 'alice', role: 'approver', action: 'proposal.approve', target: 'proposal:2', detail: {} }];
  }
  lastCall(method: string): Call | undefined {
    return this.calls.filter((c) => c.method === method).at(-1);
  }
}

// ---- servers ---------------------------------------------------------------------------------------------------

const TOKENS = { viewer: 'tok-viewer-aaaa', approver: 'tok-approver-bbbb', admin: 'tok-admin-cccc' } as const;
const ALERTS_TOKEN = 'am-token-dddd';
const AUTH_TOKENS: ApiToken[] = (['viewer', 'approver', 'admin'] as const).map((role) => ({ name: `${role}-bot`, role, sha256: hashToken(TOKENS[role]) }));
const stubEngine = { isClosed: false } as unknown as Engine;

/** A pino logger at trace level whose whole output the test can read. */
function capturingLogger() {
  let text = '';
  const stream = new Writable({
    write(c, _e, cb) {
      text += String(c);
      cb();
    },
  });
  return { logger: pino({ level: 'trace' }, stream), text: () => text };
}

async function serve(args: Partial<StartServerArgs>, options: Partial<ServerOptions> = {}): Promise<RunningServer> {
  return startServer({
    engine: stubEngine,
    options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: MODEL_NAME, ...options },
    logger: pino({ level: 'silent' }),
    ...args,
  });
}

interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

async function api(url: string, method: string, path: string, o: { token?: string; body?: unknown; raw?: string; type?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (o.token !== undefined) headers['authorization'] = `Bearer ${o.token}`;
  let body: string | undefined;
  if (o.raw !== undefined || o.body !== undefined) {
    headers['content-type'] = o.type ?? 'application/json';
    body = o.raw ?? JSON.stringify(o.body);
  }
  const r = await fetch(`${url}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined, headers: r.headers };
}

// Every route: [method, path, least role, status on success].
const ROUTES: [string, string, 'viewer' | 'approver' | 'admin', number][] = [
  ['GET', '/api/tuner/status', 'viewer', 200],
  ['POST', '/api/tuner/run', 'approver', 202],
  ['GET', '/api/proposals', 'viewer', 200],
  ['GET', '/api/proposals/2', 'viewer', 200],
  ['POST', '/api/proposals/2/approve', 'approver', 200],
  ['POST', '/api/proposals/2/reject', 'approver', 200],
  ['GET', '/api/config', 'viewer', 200],
  ['GET', '/api/config/history', 'viewer', 200],
  ['POST', '/api/config/rollback/2', 'admin', 200],
  ['GET', '/api/audit', 'viewer', 200],
];
const RANK = { viewer: 0, approver: 1, admin: 2 } as const;

describe('tuner API with tokens configured', () => {
  const tuner = new FakeTuner();
  const log = capturingLogger();
  let url: string;
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({
      engine: stubEngine,
      options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: MODEL_NAME, alertsWebhookToken: ALERTS_TOKEN },
      logger: log.logger,
      tuner,
      authTokens: AUTH_TOKENS,
    });
    url = server.url;
  });
  afterAll(async () => {
    await server?.close();
  });

  const callers: [string, string | undefined, number | undefined][] = [
    ['no token', undefined, undefined],
    ['bad token', 'tok-nobody-eeee', undefined],
    ['viewer', TOKENS.viewer, 0],
    ['approver', TOKENS.approver, 1],
    ['admin', TOKENS.admin, 2],
  ];
  for (const [method, path, min, ok] of ROUTES) {
    it(`${method} ${path}: 401 without a valid token, 403 below ${min}, ${ok} from ${min} up`, async () => {
      const got: Record<string, number> = {};
      const want: Record<string, number> = {};
      for (const [who, token, rank] of callers) {
        got[who] = (await api(url, method, path, { ...(token !== undefined ? { token } : {}) })).status;
        want[who] = rank === undefined ? 401 : rank >= RANK[min] ? ok : 403;
      }
      expect(got).toEqual(want);
    });
  }

  it('answers in the documented shapes', async () => {
    const t = { token: TOKENS.admin };
    const status = await api(url, 'GET', '/api/tuner/status', t);
    expect(status.body).toMatchObject({ enabled: true, state: 'idle', liveVersion: 3, schedule: { timezone: 'UTC' } });
    const run = await api(url, 'POST', '/api/tuner/run', t);
    expect(run.status).toBe(202);
    expect(run.body).toEqual({ run: { runId: 7, outcome: 'ok', findings: [], proposals: [proposal(3, 'proposed')] } });
    expect((await api(url, 'GET', '/api/proposals', t)).body.proposals.map((p: Proposal) => p.id)).toEqual([1, 2, 3]);
    const detail = await api(url, 'GET', '/api/proposals/2', t);
    expect(detail.body).toMatchObject({ id: 2, state: 'verified', transitions: [{ to: 'proposed' }], approvals: [] });
    const approved = await api(url, 'POST', '/api/proposals/2/approve', { ...t, body: { comment: 'go' } });
    expect(approved.body).toEqual({ proposal: { ...proposal(2, 'verified'), state: 'approved' } });
    expect((await api(url, 'POST', '/api/proposals/2/reject', t)).body.proposal.state).toBe('rejected');
    expect((await api(url, 'GET', '/api/config', t)).body).toEqual(version(3));
    expect((await api(url, 'GET', '/api/config/history', t)).body).toEqual({ versions: [version(3), version(2), version(1)] });
    const rb = await api(url, 'POST', '/api/config/rollback/2', { ...t, body: { comment: 'back to 2' } });
    expect(rb.body).toEqual({ version: { ...version(4, 'rollback'), actor: 'admin-bot', note: 'back to 2' } });
    const audit = await api(url, 'GET', '/api/audit', t);
    expect(audit.body).toEqual({ entries: [expect.objectContaining({ id: 1, action: 'proposal.approve' })] });
    expect(audit.headers.get('content-type')).toMatch(/^application\/json/);
  });

  it('hands the tuner the caller as actor, the trigger and the comment', async () => {
    await api(url, 'POST', '/api/tuner/run', { token: TOKENS.approver });
    expect(tuner.lastCall('runNow')?.args).toEqual(['api', { name: 'approver-bot', role: 'approver' }]);
    await api(url, 'POST', '/api/proposals/2/reject', { token: TOKENS.approver, body: { comment: 'not now' } });
    expect(tuner.lastCall('reject')?.args).toEqual([2, { name: 'approver-bot', role: 'approver' }, 'not now']);
    await api(url, 'POST', '/api/proposals/2/approve', { token: TOKENS.admin });
    expect(tuner.lastCall('approve')?.args).toEqual([2, { name: 'admin-bot', role: 'admin' }, '']);
    await api(url, 'POST', '/api/config/rollback/1', { token: TOKENS.admin, body: {} });
    expect(tuner.lastCall('rollbackTo')?.args).toEqual([1, { name: 'admin-bot', role: 'admin' }, '']);
  });

  it('passes filters through: state, limit, sinceId, action', async () => {
    const t = { token: TOKENS.viewer };
    expect((await api(url, 'GET', '/api/proposals?state=verified', t)).body.proposals.map((p: Proposal) => p.id)).toEqual([2]);
    expect(tuner.lastCall('listProposals')?.args).toEqual(['verified']);
    expect((await api(url, 'GET', '/api/config/history?limit=2', t)).body.versions).toHaveLength(2);
    expect(tuner.lastCall('configHistory')?.args).toEqual([2]);
    await api(url, 'GET', '/api/audit?sinceId=0&limit=50&action=proposal.approve', t);
    expect(tuner.lastCall('auditLog')?.args).toEqual([{ sinceId: 0, limit: 50, action: 'proposal.approve' }]);
    await api(url, 'GET', '/api/audit', t);
    expect(tuner.lastCall('auditLog')?.args).toEqual([{}]);
  });

  const bad400: [string, string, string, { body?: unknown; raw?: string }?][] = [
    ['GET', '/api/proposals?state=bogus', 'state'],
    ['GET', '/api/proposals?state=verified&state=proposed', 'state'],
    ['GET', '/api/proposals/0', 'id'],
    ['GET', '/api/proposals/-1', 'id'],
    ['GET', '/api/proposals/abc', 'id'],
    ['GET', '/api/proposals/1.5', 'id'],
    ['GET', '/api/proposals/1e3', 'id'],
    ['GET', '/api/proposals/99999999999999999', 'id'],
    ['POST', '/api/proposals/x/approve', 'id'],
    ['POST', '/api/proposals/2/approve', 'comment', { body: { comment: 5 } }],
    ['POST', '/api/proposals/2/approve', 'comment', { body: { comment: 'x'.repeat(MAX_COMMENT_CHARS + 1) } }],
    ['POST', '/api/proposals/2/reject', 'comments', { body: { comments: 'typo' } }],
    ['POST', '/api/proposals/2/reject', 'body', { body: ['a'] }],
    ['POST', '/api/tuner/run', 'comment', { body: { comment: 'runs take no fields' } }],
    ['POST', '/api/config/rollback/0', 'version'],
    ['POST', '/api/config/rollback/2', 'comment', { body: { comment: null } }],
    ['GET', '/api/config/history?limit=0', 'limit'],
    ['GET', '/api/config/history?limit=1001', 'limit'],
    ['GET', '/api/config/history?limit=ten', 'limit'],
    ['GET', '/api/audit?sinceId=-1', 'sinceId'],
    ['GET', '/api/audit?limit=', 'limit'],
    ['GET', '/api/audit?action=a%20b', 'action'],
  ];
  for (const [method, path, param, o] of bad400) {
    it(`400 naming '${param}': ${method} ${path.length > 60 ? path.slice(0, 60) + '…' : path}${o ? ` ${JSON.stringify(o).slice(0, 40)}` : ''}`, async () => {
      const r = await api(url, method, path, { token: TOKENS.admin, ...o });
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'invalid_request', type: 'invalid_request_error', param });
    });
  }

  it('accepts a comment of exactly the limit, and no body at all', async () => {
    const t = { token: TOKENS.approver };
    expect((await api(url, 'POST', '/api/proposals/2/approve', { ...t, body: { comment: 'x'.repeat(MAX_COMMENT_CHARS) } })).status).toBe(200);
    expect((await api(url, 'POST', '/api/proposals/2/approve', t)).status).toBe(200);
  });

  it('maps malformed JSON to 400 malformed_json and a non-JSON body to 415', async () => {
    const bad = await api(url, 'POST', '/api/proposals/2/approve', { token: TOKENS.approver, raw: '{"comment": ' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('malformed_json');
    const text = await api(url, 'POST', '/api/proposals/2/approve', { token: TOKENS.approver, raw: 'comment=hi', type: 'text/plain' });
    expect(text.status).toBe(415);
    expect(text.body.error.code).toBe('unsupported_media_type');
  });

  it('checks the token before reading the body', async () => {
    const r = await api(url, 'POST', '/api/proposals/2/approve', { token: TOKENS.viewer, raw: '{not json' });
    expect(r.status).toBe(403);
  });

  it('maps tuner refusals: NOT_FOUND 404, CONFLICT 409, BUSY 409, INVALID 400, PAUSED 503', async () => {
    const t = { token: TOKENS.admin };
    const missing = await api(url, 'GET', '/api/proposals/999', t);
    expect([missing.status, missing.body.error.code, missing.body.error.param]).toEqual([404, 'resource_not_found', 'id']);
    const gone = await api(url, 'POST', '/api/proposals/999/approve', t);
    expect([gone.status, gone.body.error.code]).toEqual([404, 'resource_not_found']);
    expect(gone.body.error.message).toBe('proposal 999 does not exist');
    const conflict = await api(url, 'POST', '/api/proposals/1/approve', t);
    expect([conflict.status, conflict.body.error.code]).toEqual([409, 'conflict']);
    expect(conflict.body.error.message).toContain('confirmed');
    expect((await api(url, 'POST', '/api/proposals/1/reject', t)).status).toBe(409);
    expect((await api(url, 'POST', '/api/config/rollback/9', t)).status).toBe(404);
    const invalid = await api(url, 'POST', '/api/config/rollback/3', t);
    expect([invalid.status, invalid.body.error.code]).toEqual([400, 'invalid_request']);
    tuner.busy = true;
    try {
      const busy = await api(url, 'POST', '/api/tuner/run', t);
      expect([busy.status, busy.body.error.code]).toEqual([409, 'tuner_busy']);
    } finally {
      tuner.busy = false;
    }
    tuner.paused = true;
    try {
      const paused = await api(url, 'POST', '/api/tuner/run', t);
      expect([paused.status, paused.body.error.code, paused.body.error.type]).toEqual([503, 'tuner_paused', 'server_error']);
    } finally {
      tuner.paused = false;
    }
  });

  it('answers an unexpected tuner failure with 500 internal_error', async () => {
    tuner.broken = true;
    try {
      const r = await api(url, 'GET', '/api/audit', { token: TOKENS.viewer });
      expect([r.status, r.body.error.code]).toEqual([500, 'internal_error']);
      expect(r.body.error.message).not.toContain('database is locked');
    } finally {
      tuner.broken = false;
    }
  });

  it('leaves other /api paths alone: /api/alerts keeps its own token, unknown paths are 404', async () => {
    const alerts = await api(url, 'GET', '/api/alerts', { token: ALERTS_TOKEN });
    expect(alerts.status).toBe(200);
    expect(alerts.body.object).toBe('list');
    expect((await api(url, 'GET', '/api/alerts', { token: TOKENS.admin })).status).toBe(401);
    for (const [method, path] of [
      ['GET', '/api/nope'],
      ['GET', '/api/tuner/run'],
      ['DELETE', '/api/proposals/2'],
      ['GET', '/api/proposals/2/approve'],
      ['GET', '/api'],
    ]) {
      const r = await api(url, method!, path!, { token: TOKENS.admin });
      expect([r.status, r.body.error.code], `${method} ${path}`).toEqual([404, 'not_found']);
    }
    // Unknown paths need no token to be told they do not exist, as elsewhere in the app.
    expect((await api(url, 'GET', '/api/nope')).status).toBe(404);
  });

  it('never writes a token to the log', async () => {
    await api(url, 'GET', '/api/tuner/status', { token: 'tok-nobody-eeee' });
    await api(url, 'POST', '/api/config/rollback/2', { token: TOKENS.approver });
    const text = log.text();
    expect(text).toContain('request'); // the logger did capture the traffic
    for (const secret of [...Object.values(TOKENS), 'tok-nobody-eeee']) expect(text).not.toContain(secret);
  });
});

describe('tuner API without tokens', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await serve({ tuner: new FakeTuner() });
  });
  afterAll(async () => {
    await server?.close();
  });

  for (const [method, path, , ok] of ROUTES) {
    const read = method === 'GET';
    it(`${method} ${path}: ${read ? `${ok}, open read-only` : '403 (configure auth.tokens)'}`, async () => {
      for (const token of [undefined, TOKENS.admin]) {
        const r = await api(server.url, method, path, token === undefined ? {} : { token });
        expect(r.status).toBe(read ? ok : 403);
        if (!read) {
          expect(r.body.error.code).toBe('forbidden');
          expect(r.body.error.message).toContain('auth.tokens');
        }
      }
    });
  }
});

describe('tuner routes are absent without a tuner', () => {
  it('answers 404 for every route', async () => {
    const server = await serve({ authTokens: AUTH_TOKENS });
    try {
      for (const [method, path] of ROUTES) {
        expect((await api(server.url, method, path, { token: TOKENS.admin })).status, `${method} ${path}`).toBe(404);
      }
    } finally {
      await server.close();
    }
  });
});

describe('docs/api.md', () => {
  const doc = (): string => readFileSync(join(REPO_ROOT, 'docs', 'api.md'), 'utf8');

  it('documents every route', () => {
    for (const [method, path] of [...ROUTES, ['POST', '/api/alerts'], ['GET', '/api/alerts']] as [string, string][]) {
      const template = path.replace(/\/\d+(?=\/|$)/, (m) => (path.includes('rollback') ? '/:version' : m === '/2' ? '/:id' : m));
      expect(doc(), `${method} ${template}`).toContain(`${method} ${template}`);
    }
  });

  it('documents every error code of the catalogue', () => {
    for (const [name, spec] of Object.entries(CP_ERRORS)) {
      expect(doc(), name).toContain(`\`${name}\``);
      expect(doc(), spec.code).toContain(`\`${spec.code}\``);
    }
  });
});

// ---- the onGeneration hook, on the shipped model ---------------------------------------------------------------

describe('onGeneration hook', () => {
  let engine: RealEngine;
  let server: RunningServer;
  const events: GenerationEvent[] = [];
  let hook: (e: GenerationEvent) => void = (e) => events.push(e);
  const log = capturingLogger();
  beforeAll(async () => {
    engine = await RealEngine.load({ threads: 1, model: MODEL });
    server = await startServer({
      engine,
      options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: MODEL_NAME },
      logger: log.logger,
      onGeneration: (e) => hook(e),
    });
  });
  afterAll(async () => {
    await server?.close();
    await engine?.close();
  });

  /** The events since `from`, once `n` have arrived (the hook fires when the response has ended, after fetch sees it). */
  async function eventsAfter(from: number, n = 1): Promise<GenerationEvent[]> {
    expect(await waitFor(() => events.length >= from + n)).toBe(true);
    return events.slice(from);
  }

  it('fires once for a completion, with the prompt tokens and the result', async () => {
    const from = events.length;
    const r = await postJson(`${server.url}/v1/completions`, { model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 5, temperature: 0 });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { choices: { text: string }[]; usage: { completion_tokens: number; prompt_tokens: number } };
    const [e, more] = await eventsAfter(from);
    expect(more).toBeUndefined();
    expect(e!.ok).toBe(true);
    expect(e!.promptTokens).toEqual(engine.tokenize('ROMEO:'));
    expect(e!.request.tokens).toBe(e!.promptTokens);
    expect(e!.request).toMatchObject({ maxTokens: 5, temperature: 0 });
    expect(e!.result?.text).toBe(body.choices[0]!.text);
    expect(e!.result?.tokens).toHaveLength(body.usage.completion_tokens);
    expect(e!.result?.usage.promptTokens).toBe(body.usage.prompt_tokens);
    expect(e!.durationS).toBeGreaterThan(0);
    expect(e!.durationS).toBeLessThan(60);
  });

  it('fires once for a streaming chat request, with the rendered prompt tokens', async () => {
    const from = events.length;
    const messages = [{ role: 'user', content: 'Speak of love.' }];
    const r = await postJson(`${server.url}/v1/chat/completions`, { model: MODEL_NAME, messages, max_tokens: 6, temperature: 0, stream: true });
    const chunks = sseData(await r.text());
    const streamed = chunks
      .filter((c): c is { choices: { delta: { content?: string } }[] } => typeof c === 'object')
      .map((c) => c.choices[0]?.delta.content ?? '')
      .join('');
    const [e, more] = await eventsAfter(from);
    expect(more).toBeUndefined();
    expect(e!.ok).toBe(true);
    expect(e!.promptTokens).toEqual(engine.tokenize(DEFAULT_CHAT_TEMPLATE.render(messages as never)));
    expect(e!.request.stop).toEqual(expect.arrayContaining([...DEFAULT_CHAT_TEMPLATE.stop]));
    expect(e!.result?.text).toBe(streamed);
  });

  it('does not fire for requests refused before the engine', async () => {
    const from = events.length;
    expect((await postJson(`${server.url}/v1/completions`, { model: 'other', prompt: 'x' })).status).toBe(404);
    expect((await postJson(`${server.url}/v1/completions`, { model: MODEL_NAME, prompt: 'x', temperature: -1 })).status).toBe(400);
    expect((await postJson(`${server.url}/v1/completions`, { model: MODEL_NAME, prompt: 'x', max_tokens: 1_000_000 })).status).toBe(400);
    await postJson(`${server.url}/v1/completions`, { model: MODEL_NAME, prompt: 'x', max_tokens: 1 });
    const after = await eventsAfter(from);
    expect(after).toHaveLength(1); // only the last one reached the engine
    expect(after[0]!.request.maxTokens).toBe(1);
  });

  it('a throwing hook does not break the response; the error is logged', async () => {
    let calls = 0;
    hook = () => {
      calls++;
      throw new Error('hook exploded');
    };
    try {
      const plain = await postJson(`${server.url}/v1/completions`, { model: MODEL_NAME, prompt: 'JULIET:', max_tokens: 3, temperature: 0 });
      expect(plain.status).toBe(200);
      expect(((await plain.json()) as { choices: unknown[] }).choices).toHaveLength(1);
      const stream = await postJson(`${server.url}/v1/completions`, { model: MODEL_NAME, prompt: 'JULIET:', max_tokens: 3, stream: true });
      expect(sseData(await stream.text()).at(-1)).toBe('[DONE]');
      expect(await waitFor(() => calls === 2)).toBe(true);
      expect(await waitFor(() => log.text().includes('onGeneration hook failed'))).toBe(true);
      expect(log.text()).toContain('hook exploded');
      // The server still serves.
      expect((await postJson(`${server.url}/v1/completions`, { model: MODEL_NAME, prompt: 'x', max_tokens: 1 })).status).toBe(200);
    } finally {
      hook = (e) => events.push(e);
    }
  });

  it('reports a client that went away as ok, with the cancelled result', async () => {
    const from = events.length;
    const ac = new AbortController();
    const r = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 200, ignore_eos: true, stream: true }),
      signal: ac.signal,
    });
    const reader = r.body!.getReader();
    await reader.read();
    ac.abort();
    const [e] = await eventsAfter(from);
    expect(e!.ok).toBe(true);
    expect(e!.result?.finishReason).toBe('cancelled');
  });

  it('reports a generation that failed in the engine as not ok, without a result', async () => {
    const timeoutServer = await startServer({
      engine,
      options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: MODEL_NAME, requestTimeoutMs: 1 },
      logger: pino({ level: 'silent' }),
      onGeneration: (e) => events.push(e),
    });
    try {
      const from = events.length;
      const r = await postJson(`${timeoutServer.url}/v1/completions`, { model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 200, ignore_eos: true });
      expect(r.status).toBe(504);
      const [e] = await eventsAfter(from);
      expect(e!.ok).toBe(false);
      expect(e!.result).toBeUndefined();
      expect(e!.promptTokens).toEqual(engine.tokenize('ROMEO:'));
    } finally {
      await timeoutServer.close();
    }
  });
});
