// Access control on a real tuned server (tests/tuner/harness.ts): every route registered on the running express app
// is found by walking its router stack, must have a row in README.md's "Access control" table, and is called with no
// token, a wrong token, each role's token, a /v1 API key and the alerts token; the answer must be the documented one
// (401, 403, or anything but those). Also: the security headers and closed CORS on the real app (and the HTML
// report's own Content-Security-Policy), and that no HTTP
// method changes the audit log (the store's SQLite triggers are tested from a second connection in
// tests/tuner/store.test.ts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Express } from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roleAtLeast } from '../../src/controlplane/auth.js';
import { API_ROLES, type ApiRole } from '../../src/config/schema.js';
import { TOKENS, startTunedServer, type TunedServer } from '../tuner/harness.js';
import { REPO_ROOT } from '../helpers/shared.js';

const API_KEY = 'v1-api-key-0123456789';
const ALERTS_TOKEN = 'alerts-token-0123456789';

type Access = 'public' | 'API key' | 'alerts token' | ApiRole;
const ACCESS: readonly string[] = ['public', 'API key', 'alerts token', ...API_ROLES];

/** Who calls: the Authorization header each identity sends (none for 'none'). */
const IDENTITIES: Record<string, string | undefined> = {
  none: undefined,
  'wrong token': 'Bearer not-a-configured-token-42',
  viewer: `Bearer ${TOKENS.viewer}`,
  approver: `Bearer ${TOKENS.approver}`,
  admin: `Bearer ${TOKENS.admin}`,
  'API key': `Bearer ${API_KEY}`,
  'alerts token': `Bearer ${ALERTS_TOKEN}`,
};

/** Path parameters filled with values that exist nowhere, so a call authorised to act finds nothing to change. */
const SAMPLE_PARAMS: Record<string, string> = { id: '999999', version: '999999', week: '2026-W01' };

/** README.md's access table: "METHOD /path" → what it needs. */
function documentedRoutes(): Map<string, Access> {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## Access control$/m)[1]?.split(/^## /m)[0] ?? '';
  const rows = new Map<string, Access>();
  for (const m of section.matchAll(/^\| `([A-Z]+)` \| `(\/[^`]*)` \| ([^|]+?) \|$/gm)) {
    const access = m[3]!.trim();
    if (!ACCESS.includes(access)) throw new Error(`README access table: unknown access '${access}' for ${m[1]} ${m[2]}`);
    rows.set(`${m[1]} ${m[2]}`, access as Access);
  }
  return rows;
}

interface StackLayer {
  route?: { path: unknown; methods: Record<string, boolean> };
  handle?: { stack?: StackLayer[] };
  rawPath?: unknown;
}

/** Every "METHOD /path" on the app: express 5 (router 2) keeps a mounted router's path in layer.rawPath. */
function registeredRoutes(app: Express): string[] {
  const out: string[] = [];
  const walk = (stack: StackLayer[], prefix: string): void => {
    for (const layer of stack) {
      if (layer.route) {
        if (typeof layer.route.path !== 'string') throw new Error(`route with a non-string path under ${prefix}: add it to the walk`);
        for (const m of Object.keys(layer.route.methods)) out.push(`${m === '_all' ? 'ALL' : m.toUpperCase()} ${prefix}${layer.route.path}`);
      } else if (Array.isArray(layer.handle?.stack)) {
        const mount = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? layer.rawPath : '';
        walk(layer.handle.stack, prefix + mount);
      }
    }
  };
  walk((app as unknown as { router: { stack: StackLayer[] } }).router.stack, '');
  return out;
}

function concretePath(template: string): string {
  return template.replace(/:(\w+)/g, (_m, name: string) => {
    const v = SAMPLE_PARAMS[name];
    if (v === undefined) throw new Error(`no sample value for the path parameter :${name} of ${template}: add one to SAMPLE_PARAMS`);
    return v;
  });
}

/** What `identity` must get on a route that needs `access`: 401, 403, or 'ok' (anything else, below 500). */
function expected(access: Access, identity: string): 401 | 403 | 'ok' {
  if (access === 'public') return 'ok';
  if (access === 'API key' || access === 'alerts token') return identity === access ? 'ok' : 401;
  if (!(API_ROLES as readonly string[]).includes(identity)) return 401;
  return roleAtLeast(identity as ApiRole, access) ? 'ok' : 403;
}

describe('access control on every route', () => {
  let h: TunedServer;
  let routes: string[];
  beforeAll(async () => {
    h = await startTunedServer({ config: { server: { apiKeys: [API_KEY] }, alerts: { webhookToken: ALERTS_TOKEN } } });
    const app = h.server.server.listeners('request')[0] as Express;
    routes = registeredRoutes(app);
  });
  afterAll(async () => {
    await h?.stop();
  });

  const call = async (method: string, path: string, authorization?: string, extra: Record<string, string> = {}): Promise<Response> => {
    const headers: Record<string, string> = { ...extra };
    if (authorization) headers['authorization'] = authorization;
    const init: RequestInit = { method, headers };
    if (method !== 'GET' && method !== 'HEAD') {
      headers['content-type'] = 'application/json';
      init.body = '{}';
    }
    return fetch(`${h.url}${path}`, init);
  };

  it('finds the routes, and every one is in the README table', () => {
    // The walk itself must work: the known routes of each router are there.
    expect(routes).toEqual(
      expect.arrayContaining(['GET /healthz', 'POST /v1/chat/completions', 'POST /api/alerts', 'POST /api/config/rollback/:version', 'GET /api/reports/:week']),
    );
    expect(new Set(routes).size).toBe(routes.length);
    const table = documentedRoutes();
    const undocumented = routes.filter((r) => !table.has(r));
    expect(undocumented, 'routes without a row in README.md "## Access control"').toEqual([]);
    // The harness mounts every router `tuneloop serve` does, so a row for a route the app lacks is stale.
    const stale = [...table.keys()].filter((r) => !routes.includes(r));
    expect(stale, 'README rows for routes the app does not have').toEqual([]);
  });

  it('answers each identity as the table says', async () => {
    const table = documentedRoutes();
    const wrong: string[] = [];
    for (const route of routes) {
      const access = table.get(route);
      if (!access) {
        wrong.push(`${route}: no row in the README table`);
        continue;
      }
      const [method, template] = route.split(' ') as [string, string];
      for (const [identity, authorization] of Object.entries(IDENTITIES)) {
        const res = await call(method, concretePath(template), authorization);
        const text = await res.text();
        const want = expected(access, identity);
        const code = res.status >= 400 ? (JSON.parse(text) as { error: { code: string } }).error.code : '';
        const ok =
          want === 'ok' ? res.status !== 401 && res.status !== 403 && res.status < 500 : res.status === want && code === (want === 401 ? 'invalid_api_key' : 'forbidden');
        if (!ok) wrong.push(`${route} as ${identity}: ${res.status} ${code}, expected ${want} (${access})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('sets the security headers and keeps CORS closed', async () => {
    for (const [path, authorization] of [
      ['/api/tuner/status', IDENTITIES.viewer],
      ['/v1/models', IDENTITIES['API key']],
      ['/nope', undefined],
      ['/healthz', undefined],
    ] as const) {
      const res = await call('GET', path, authorization, { origin: 'https://evil.example' });
      await res.arrayBuffer();
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(res.headers.get('x-frame-options'), path).toBe('DENY');
      expect(res.headers.get('referrer-policy'), path).toBe('no-referrer');
      expect(res.headers.get('content-security-policy'), path).toBe("default-src 'none'; frame-ancestors 'none'");
      expect(res.headers.get('access-control-allow-origin'), path).toBeNull();
      if (/^\/(api|v1)\//.test(path)) expect(res.headers.get('cache-control'), path).toBe('no-store');
    }
    const preflight = await fetch(`${h.url}/api/proposals/1/approve`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
    expect(preflight.status).toBe(204);
    expect([...preflight.headers.keys()].filter((k) => k.startsWith('access-control-'))).toEqual([]);

    // The HTML report replaces the policy with its own (inline styles, data: images); the other headers stay.
    await h.tuned.writeReport('2026-W10');
    const html = await call('GET', '/api/reports/2026-W10?format=html', IDENTITIES.viewer);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = html.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("style-src 'unsafe-inline'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(html.headers.get('x-frame-options')).toBe('DENY');
    expect(html.headers.get('cache-control')).toBe('no-store');
    await html.arrayBuffer();
  });

  it('offers no way to change the audit log over HTTP', async () => {
    const read = async () => (await h.api('/api/audit?limit=1000', { role: 'admin' })).body.entries as unknown[];
    await h.tuned.tuner.idle();
    const before = await read();
    expect(before.length).toBeGreaterThan(0); // the walk above left a trail (tuner.run by the approver and the admin)
    for (const method of ['PUT', 'PATCH', 'DELETE', 'POST']) {
      for (const path of ['/api/audit', '/api/audit/1', `/api/audit?sinceId=0`]) {
        const res = await call(method, path, IDENTITIES.admin);
        expect([404, 405], `${method} ${path}`).toContain(res.status);
        await res.arrayBuffer();
      }
    }
    // Append-only: whatever the tuner itself may have added since, the entries read before are there unchanged.
    expect((await read()).slice(0, before.length)).toEqual(before);
  });
});
