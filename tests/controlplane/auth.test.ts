// Bearer tokens with roles for the tuner API (auth.ts): hashing, role order, the 401/403/200 matrix on a tiny
// express app, every configured hash compared on every request (no early exit), the open-reads / refused-changes
// mode without tokens, and `tuneloop hash-token`.
import * as crypto from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable, Writable } from 'node:stream';
import express, { type NextFunction, type Request, type Response } from 'express';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ANONYMOUS, createApiAuth, hashToken, hashTokenCommand, roleAtLeast, type ApiAuth, type HashTokenIo } from '../../src/controlplane/auth.js';
import type { ApiRole, ApiToken } from '../../src/config/schema.js';
import { isControlPlaneError } from '../../src/controlplane/errors.js';

// Wrap the real timingSafeEqual so a test can count the comparisons auth.ts makes.
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  return { ...real, timingSafeEqual: vi.fn(real.timingSafeEqual) };
});

const TOKENS = { viewer: 'v-token-1', approver: 'ap-token-2', admin: 'ad-token-3' } as const;
const CONFIGURED: ApiToken[] = (Object.entries(TOKENS) as [ApiRole, string][]).map(([role, t]) => ({ name: `${role}-bot`, role, sha256: hashToken(t) }));

/** GET /read (viewer), POST /approve (approver), POST /admin (admin); each answers with req.actor. */
async function tinyApp(auth: ApiAuth): Promise<{ url: string; server: Server }> {
  const app = express();
  const who = (req: Request, res: Response): void => {
    res.json({ actor: req.actor });
  };
  app.get('/read', auth.requireRole('viewer'), who);
  app.post('/approve', auth.requireRole('approver'), who);
  app.post('/admin', auth.requireRole('admin'), who);
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (!isControlPlaneError(err)) throw err;
    for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
    res.status(err.status).json(err.toResponse());
  });
  const server = createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function call(url: string, method: string, path: string, token?: string): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const r = await fetch(`${url}${path}`, { method, headers });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined, headers: r.headers };
}

describe('hashToken and roles', () => {
  it('is the hex SHA-256 of the UTF-8 token', () => {
    expect(hashToken('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(hashToken('é')).toBe(crypto.createHash('sha256').update(Buffer.from('é', 'utf8')).digest('hex'));
    expect(hashToken('x')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('orders viewer < approver < admin', () => {
    const roles: ApiRole[] = ['viewer', 'approver', 'admin'];
    for (const [i, have] of roles.entries()) {
      for (const [j, need] of roles.entries()) expect(roleAtLeast(have, need), `${have} vs ${need}`).toBe(i >= j);
    }
  });

  it('refuses a malformed configured hash up front', () => {
    expect(() => createApiAuth([{ name: 'x', role: 'admin', sha256: 'ABC' }])).toThrow(/64 lowercase hex/);
    expect(() => createApiAuth([{ name: 'x', role: 'admin', sha256: hashToken('t').toUpperCase() }])).toThrow(TypeError);
  });

  it('authenticate() resolves a bearer header to its actor', () => {
    const auth = createApiAuth(CONFIGURED);
    expect(auth.enabled).toBe(true);
    expect(auth.authenticate(`Bearer ${TOKENS.approver}`)).toEqual({ name: 'approver-bot', role: 'approver' });
    expect(auth.authenticate(`bearer   ${TOKENS.admin}  `)).toEqual({ name: 'admin-bot', role: 'admin' });
    expect(auth.authenticate('Bearer nope')).toBeUndefined();
    expect(auth.authenticate(`Basic ${TOKENS.admin}`)).toBeUndefined();
    expect(auth.authenticate(undefined)).toBeUndefined();
  });
});

describe('requireRole with tokens configured', () => {
  let url: string;
  let server: Server;
  beforeAll(async () => ({ url, server } = await tinyApp(createApiAuth(CONFIGURED))));
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  // [who, GET /read, POST /approve, POST /admin]
  const matrix: [string, string | undefined, number, number, number][] = [
    ['no token', undefined, 401, 401, 401],
    ['bad token', 'not-a-configured-token', 401, 401, 401],
    ['viewer', TOKENS.viewer, 200, 403, 403],
    ['approver', TOKENS.approver, 200, 200, 403],
    ['admin', TOKENS.admin, 200, 200, 200],
  ];
  for (const [who, token, read, approve, admin] of matrix) {
    it(`${who}: GET ${read}, approver route ${approve}, admin route ${admin}`, async () => {
      const got = [
        (await call(url, 'GET', '/read', token)).status,
        (await call(url, 'POST', '/approve', token)).status,
        (await call(url, 'POST', '/admin', token)).status,
      ];
      expect(got).toEqual([read, approve, admin]);
    });
  }

  it('401 says Bearer in WWW-Authenticate and uses the invalid_api_key code', async () => {
    const missing = await call(url, 'GET', '/read');
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="tuneloop"');
    expect(missing.body.error).toMatchObject({ code: 'invalid_api_key', type: 'invalid_request_error' });
    expect(missing.body.error.message).toContain('Authorization: Bearer');
    const bad = await call(url, 'GET', '/read', 'wrong');
    expect(bad.headers.get('www-authenticate')).toMatch(/^Bearer .*error="invalid_token"/);
    expect(bad.body.error.message).not.toContain('wrong');
  });

  it('403 names the role needed and the role held, never the token', async () => {
    const r = await call(url, 'POST', '/admin', TOKENS.approver);
    expect(r.body.error).toMatchObject({ code: 'forbidden', type: 'permission_error' });
    expect(r.body.error.message).toContain('admin role');
    expect(r.body.error.message).toContain("'approver-bot' has the approver role");
    expect(JSON.stringify(r.body)).not.toContain(TOKENS.approver);
  });

  it('sets req.actor to the token holder', async () => {
    expect((await call(url, 'GET', '/read', TOKENS.viewer)).body.actor).toEqual({ name: 'viewer-bot', role: 'viewer' });
    expect((await call(url, 'POST', '/admin', TOKENS.admin)).body.actor).toEqual({ name: 'admin-bot', role: 'admin' });
  });

  it('compares against every configured hash, even after a match (no early exit)', async () => {
    const tse = vi.mocked(crypto.timingSafeEqual);
    for (const token of [TOKENS.viewer, TOKENS.admin, 'unknown']) {
      tse.mockClear();
      await call(url, 'GET', '/read', token);
      expect(tse, token).toHaveBeenCalledTimes(CONFIGURED.length);
      // Equal-length digests: 32 bytes each side.
      for (const [a, b] of tse.mock.calls) expect([(a as Buffer).length, (b as Buffer).length]).toEqual([32, 32]);
    }
  });
});

describe('requireRole without tokens', () => {
  let url: string;
  let server: Server;
  beforeAll(async () => ({ url, server } = await tinyApp(createApiAuth([]))));
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('opens the reads as the anonymous viewer, with or without a header', async () => {
    expect(createApiAuth([]).enabled).toBe(false);
    for (const token of [undefined, 'anything']) {
      const r = await call(url, 'GET', '/read', token);
      expect(r.status).toBe(200);
      expect(r.body.actor).toEqual(ANONYMOUS);
    }
    expect((await fetch(`${url}/read`, { method: 'HEAD' })).status).toBe(200);
  });

  it('refuses every change with 403 saying to configure auth.tokens', async () => {
    for (const path of ['/approve', '/admin']) {
      for (const token of [undefined, 'anything']) {
        const r = await call(url, 'POST', path, token);
        expect(r.status).toBe(403);
        expect(r.body.error.code).toBe('forbidden');
        expect(r.body.error.message).toContain('auth.tokens');
      }
    }
  });
});

describe('tuneloop hash-token', () => {
  function io(stdin: string): HashTokenIo & { out: () => string; err: () => string } {
    let out = '',
      err = '';
    const sink = (append: (s: string) => void) =>
      new Writable({
        write(c, _e, cb) {
          append(String(c));
          cb();
        },
      });
    return {
      stdin: Readable.from([Buffer.from(stdin)]),
      stdout: sink((s) => (out += s)),
      stderr: sink((s) => (err += s)),
      out: () => out,
      err: () => err,
    };
  }

  it('hashes the argument', async () => {
    const x = io('');
    expect(await hashTokenCommand(['abc'], x)).toBe(0);
    expect(x.out()).toBe(`${hashToken('abc')}\n`);
  });

  it('reads stdin without an argument, dropping the final newline and surrounding blanks', async () => {
    const x = io('  s3cret-token\n');
    expect(await hashTokenCommand([], x)).toBe(0);
    expect(x.out()).toBe(`${hashToken('s3cret-token')}\n`);
    expect(x.out()).not.toContain('s3cret');
  });

  it('refuses an empty token and extra arguments; --help prints usage', async () => {
    const empty = io('\n');
    expect(await hashTokenCommand([], empty)).toBe(1);
    expect(empty.err()).toContain('empty');
    const many = io('');
    expect(await hashTokenCommand(['a', 'b'], many)).toBe(1);
    expect(many.err()).toContain('at most one TOKEN');
    const help = io('');
    expect(await hashTokenCommand(['--help'], help)).toBe(0);
    expect(help.out()).toContain('tuneloop hash-token [TOKEN]');
  });
});
