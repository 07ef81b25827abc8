// GET /api/reports and GET /api/reports/:week through the real app and HTTP server, over reports written from a
// constructed store: who may read (no token, bad token, each role, no tokens configured), the list, the three
// formats with their content types, 400 for a malformed week or format, 404 for a week without a report, the
// routes' absence without a reports folder, and their documentation in docs/api.md.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/engine/engine.js';
import { DEFAULT_SERVER_OPTIONS } from '../../src/controlplane/app.js';
import { hashToken } from '../../src/controlplane/auth.js';
import type { ApiToken } from '../../src/config/schema.js';
import { startServer, type RunningServer, type StartServerArgs } from '../../src/controlplane/http-server.js';
import { writeWeeklyReport } from '../../src/tuner/report/writer.js';
import { TunerStore } from '../../src/tuner/store.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { SLO, W10, W11, fillStore } from './report-fixtures.js';

const TOKENS = { viewer: 'tok-viewer-aaaa', approver: 'tok-approver-bbbb', admin: 'tok-admin-cccc' } as const;
const AUTH_TOKENS: ApiToken[] = (['viewer', 'approver', 'admin'] as const).map((role) => ({ name: `${role}-bot`, role, sha256: hashToken(TOKENS[role]) }));
const stubEngine = { isClosed: false } as unknown as Engine;

async function serve(args: Partial<StartServerArgs>): Promise<RunningServer> {
  return startServer({
    engine: stubEngine,
    options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: 'm' },
    logger: pino({ level: 'silent' }),
    ...args,
  });
}

async function get(url: string, token?: string): Promise<{ status: number; text: string; body: any; headers: Headers }> {
  const r = await fetch(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  const text = await r.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: r.status, text, body, headers: r.headers };
}

describe('reports API', () => {
  let dir: string;
  let out: string;
  let store: TunerStore;
  let server: RunningServer;
  let open: RunningServer;
  let none: RunningServer;
  const clock = { ms: 0 };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tuneloop-report-api-'));
    out = join(dir, 'reports');
    store = TunerStore.open(join(dir, 'tuner.db'), { now: () => clock.ms });
    fillStore(store, clock);
    const opts = { dir: out, timezone: 'UTC', service: 'shop-llm', model: 'm', slo: SLO, pricePerCoreHour: 0.05 };
    await writeWeeklyReport(store, { ...opts, week: '2026-W10' }, Date.UTC(2026, 2, 9, 9));
    await writeWeeklyReport(store, { ...opts, week: '2026-W11' }, Date.UTC(2026, 2, 16, 9));
    // Not reports: a writer's leftover, a week that does not exist, something else.
    writeFileSync(join(out, '2026-W12.md.4242.tmp'), 'partial');
    writeFileSync(join(out, '2025-W53.json'), '{}');
    writeFileSync(join(out, 'README.md'), '# reports');
    const reports = { dir: out, timezone: 'UTC', index: () => store.reports() };
    server = await serve({ authTokens: AUTH_TOKENS, reports });
    open = await serve({ reports });
    none = await serve({});
  });
  afterAll(async () => {
    await server?.close();
    await open?.close();
    await none?.close();
    store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('needs a valid token of at least the viewer role', async () => {
    for (const path of ['/api/reports', '/api/reports/2026-W10']) {
      const anon = await get(`${server.url}${path}`);
      expect(anon.status, path).toBe(401);
      expect(anon.headers.get('www-authenticate')).toBe('Bearer realm="tuneloop"');
      expect(anon.body.error.code).toBe('invalid_api_key');
      const bad = await get(`${server.url}${path}`, 'not-a-token');
      expect(bad.status).toBe(401);
      expect(bad.headers.get('www-authenticate')).toContain('error="invalid_token"');
      for (const role of ['viewer', 'approver', 'admin'] as const) expect((await get(`${server.url}${path}`, TOKENS[role])).status, role).toBe(200);
    }
  });

  it('lists the weeks with a report, newest first, with when each was written', async () => {
    const r = await get(`${server.url}/api/reports`, TOKENS.viewer);
    expect(r.body.reports.map((x: { week: string }) => x.week)).toEqual(['2026-W11', '2026-W10']);
    expect(r.body.reports[1]).toEqual({
      week: '2026-W10',
      formats: ['json', 'md', 'html'],
      periodStartMs: W10,
      periodEndMs: W11,
      generatedMs: Date.UTC(2026, 2, 9, 9),
      summary: { requests: 2400, sloAttainment: 0.65, enoughData: true, topBottlenecks: ['queueing', 'kv_pressure', 'tail_latency'], proposals: 3, alerts: 2 },
    });
  });

  it('answers the JSON twin, the Markdown and the HTML', async () => {
    const json = await get(`${server.url}/api/reports/2026-W10`, TOKENS.viewer);
    expect(json.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(json.text).toBe(readFileSync(join(out, '2026-W10.json'), 'utf8'));
    expect(json.body).toMatchObject({ schema: 'tuneloop.report/v1', week: '2026-W10', service: 'shop-llm' });
    expect((await get(`${server.url}/api/reports/2026-W10?format=json`, TOKENS.viewer)).text).toBe(json.text);

    const md = await get(`${server.url}/api/reports/2026-W10?format=md`, TOKENS.viewer);
    expect(md.headers.get('content-type')).toBe('text/markdown; charset=utf-8');
    expect(md.text).toBe(readFileSync(join(out, '2026-W10.md'), 'utf8'));

    const html = await get(`${server.url}/api/reports/2026-W10?format=html`, TOKENS.viewer);
    expect(html.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(html.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(html.headers.get('x-content-type-options')).toBe('nosniff');
    expect(html.text).toBe(readFileSync(join(out, '2026-W10.html'), 'utf8'));
    expect(html.text).toContain('<svg');
  });

  it('refuses a malformed week or format with 400 naming the parameter', async () => {
    for (const week of ['2026-w10', '2026-W1', '2025-W53', 'last-week', '..%2F..%2Fetc%2Fpasswd', '2026-W10.json']) {
      const r = await get(`${server.url}/api/reports/${week}`, TOKENS.viewer);
      expect(r.status, week).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'invalid_request', param: 'week' });
    }
    const f = await get(`${server.url}/api/reports/2026-W10?format=pdf`, TOKENS.viewer);
    expect(f.status).toBe(400);
    expect(f.body.error).toMatchObject({ code: 'invalid_request', param: 'format' });
    expect(f.body.error.message).toContain('json, md, html');
  });

  it('answers 404 for a week without a report', async () => {
    const r = await get(`${server.url}/api/reports/2026-W30`, TOKENS.viewer);
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('resource_not_found');
    expect(r.body.error.message).toContain('tuneloop report --week 2026-W30');
  });

  it('is open to anonymous reads when no tokens are configured', async () => {
    expect((await get(`${open.url}/api/reports`)).status).toBe(200);
    expect((await get(`${open.url}/api/reports/2026-W11?format=md`)).status).toBe(200);
  });

  it('is absent without a reports folder, and lets other /api paths through', async () => {
    expect((await get(`${none.url}/api/reports`)).status).toBe(404);
    const other = await get(`${server.url}/api/reportz`, TOKENS.viewer);
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe('not_found');
  });

  it('lists nothing when no report was written yet', async () => {
    const empty = await serve({ reports: { dir: join(dir, 'never-written'), timezone: 'UTC' } });
    try {
      expect((await get(`${empty.url}/api/reports`)).body).toEqual({ reports: [] });
    } finally {
      await empty.close();
    }
  });

  it('is documented in docs/api.md', () => {
    const doc = readFileSync(join(REPO_ROOT, 'docs', 'api.md'), 'utf8');
    expect(doc).toContain('GET /api/reports');
    expect(doc).toContain('GET /api/reports/:week');
  });
});
