// Hostile input over HTTP (issue 9): fast-check properties against a real server with every route mounted (the
// tuned harness: the OpenAI routes, health and metrics, the tuner REST API, the weekly reports, the alerts webhook).
// Whatever the method, path, query, headers or body, the server must answer, within a deadline, with a status below
// 500, and every error must be a well-formed OpenAI error whose status, type and code are one entry of the catalogue
// (src/controlplane/errors.ts). Valid-but-odd requests may succeed: their 2xx bodies must then be well-formed too.
// Generation stays short: every max_tokens generated is ≤ 8 or beyond the context (refused).
//
// A failing property prints a curl reproducer ($TL is the server) and fast-check's seed and path to replay it.
//   TL_PROPERTY_RUNS=2000 npx vitest run tests/controlplane/hostile-http.test.ts   # every property that many runs
//   TL_PROPERTY_SEED=7 ...                                                          # another sequence
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CP_ERRORS } from '../../src/controlplane/errors.js';
import { MODEL_NAME } from './harness.js';
import { TOKENS, startTunedServer, type TunedServer } from '../tuner/harness.js';

const SEED = Number(process.env.TL_PROPERTY_SEED ?? 20251122);
const runs = (n: number): number => Number(process.env.TL_PROPERTY_RUNS) || n;
const API_KEY = 'sk-hostile-0123456789';
const ALERTS_TOKEN = 'alerts-token-0123456789';
const BODY_LIMIT = 64 * 1024;
/** Longer than any answer needs (8 tokens, or a chat that runs to the 256-token context): past it, it is a hang. */
const ANSWER_MS = 15_000;

// ---- sending and judging ------------------------------------------------------------------------------------------

interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
}

const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The request as a curl command line, for the failure message (bodies over 2 KB are cut; binary ones as base64). */
function curl(r: Sent): string {
  const h = Object.entries(r.headers)
    .map(([k, v]) => ` -H ${shq(`${k}: ${v.length > 200 ? `${v.slice(0, 200)}…(${v.length} chars)` : v}`)}`)
    .join('');
  let b = '';
  if (typeof r.body === 'string') b = ` --data-binary ${shq(r.body.length > 2000 ? `${r.body.slice(0, 2000)}…(${r.body.length} chars)` : r.body)}`;
  else if (r.body) b = ` --data-binary @<(echo ${Buffer.from(r.body).toString('base64').slice(0, 2800)} | base64 -d)`;
  return `curl -i -X ${r.method} "$TL"${shq(r.path)}${h}${b}`;
}

const CATALOGUE = Object.values(CP_ERRORS);

function parseJson(text: string, where: string): any {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`the body is not JSON: ${where}`);
  }
}

/** The one check every answer gets. */
function judge(r: Sent, status: number, type: string, text: string, requestId: string | null): void {
  const where = `${curl(r)}\n  -> ${status} ${type} ${text.slice(0, 400)}`;
  if (status >= 500) throw new Error(`5xx answer: ${where}`);
  if (!requestId) throw new Error(`answer without x-request-id (docs/api.md: every response carries one): ${where}`);
  if (r.method === 'HEAD' || status === 204 || status === 304) return; // no body by definition
  if (status >= 400) {
    if (!/^application\/json\b/.test(type)) throw new Error(`error answer is not JSON: ${where}`);
    const e = parseJson(text, where)?.error;
    const shaped =
      typeof e === 'object' &&
      e !== null &&
      typeof e.message === 'string' &&
      e.message.length > 0 &&
      typeof e.type === 'string' &&
      typeof e.code === 'string' &&
      (e.param === null || typeof e.param === 'string');
    if (!shaped) throw new Error(`error answer without {error:{message,type,param,code}}: ${where}`);
    if (!CATALOGUE.some((c) => c.status === status && c.type === e.type && c.code === e.code)) {
      throw new Error(`error (${status}, ${e.type}, ${e.code}) is not in the catalogue: ${where}`);
    }
  } else if (/^application\/json\b/.test(type)) {
    parseJson(text, where);
  } else if (/^text\/event-stream\b/.test(type)) {
    // A stream ends with [DONE], or with an in-band error event when it fails after the status line went out.
    const events = text.split('\n\n').filter((b) => b.trim() !== '');
    for (const ev of events) {
      if (!ev.startsWith('data: ')) throw new Error(`SSE block without 'data: ': ${where}`);
      if (ev !== 'data: [DONE]') parseJson(ev.slice(6), where);
    }
    const last = events.at(-1) ?? '';
    if (last !== 'data: [DONE]' && !last.startsWith('data: {"error"')) throw new Error(`SSE stream not ended by [DONE]: ${where}`);
  }
}

let server: TunedServer;
let dir: string;

async function send(r: Sent): Promise<void> {
  const init: RequestInit = { method: r.method, headers: r.headers, signal: AbortSignal.timeout(ANSWER_MS) };
  if (r.body !== undefined) init.body = typeof r.body === 'string' ? r.body : new Uint8Array(r.body);
  let status: number, type: string, text: string, requestId: string | null;
  try {
    const res = await fetch(`${server.url}${r.path}`, init);
    status = res.status;
    type = res.headers.get('content-type') ?? '';
    requestId = res.headers.get('x-request-id');
    text = await res.text();
  } catch (e) {
    throw new Error(`no answer (${(e as Error).name}: ${(e as Error).message}): ${curl(r)}`, { cause: e });
  }
  judge(r, status, type, text, requestId);
}

/** Writes `bytes` on a fresh connection, half-closes it, and collects everything until the server closes it. */
function rawExchange(bytes: Buffer): Promise<{ answer: string; closed: boolean }> {
  const { hostname, port } = new URL(server.url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ answer, closed: false });
    }, ANSWER_MS);
    socket.on('data', (d) => (answer += d.toString('latin1')));
    socket.on('error', () => undefined); // a reset after the answer is fine: 'close' follows
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ answer, closed: true });
    });
    socket.end(bytes);
  });
}

const STATUS_LINE = /(?:^|\r\n)HTTP\/1\.[01] (\d{3}) /g;

async function check(prop: fc.IAsyncProperty<[Sent]>, numRuns: number): Promise<void> {
  await fc.assert(prop, { seed: SEED, numRuns: runs(numRuns) });
}

// ---- arbitraries ----------------------------------------------------------------------------------------------------

/** Every route, as mounted (docs/api.md); ':x' are path parameters. */
const ROUTES: readonly (readonly [string, string])[] = [
  ['POST', '/v1/completions'],
  ['POST', '/v1/chat/completions'],
  ['POST', '/v1/embeddings'],
  ['POST', '/tokenize'],
  ['POST', '/detokenize'],
  ['GET', '/v1/models'],
  ['GET', '/healthz'],
  ['GET', '/readyz'],
  ['GET', '/metrics'],
  ['POST', '/api/alerts'],
  ['GET', '/api/alerts'],
  ['GET', '/api/tuner/status'],
  ['POST', '/api/tuner/run'],
  ['GET', '/api/proposals'],
  ['GET', '/api/proposals/:id'],
  ['POST', '/api/proposals/:id/approve'],
  ['POST', '/api/proposals/:id/reject'],
  ['GET', '/api/config'],
  ['GET', '/api/config/history'],
  ['POST', '/api/config/rollback/:version'],
  ['GET', '/api/audit'],
  ['GET', '/api/reports'],
  ['GET', '/api/reports/:week'],
];

// Methods Node's HTTP parser knows (others are refused by Node itself: see the raw-socket property).
const METHOD = fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'PROPFIND', 'PURGE', 'SEARCH', 'LOCK', 'NOTIFY', 'M-SEARCH');
const bodyless = (m: string): boolean => m === 'GET' || m === 'HEAD';

/** Path segments whose percent-encoding is well-formed (malformed ones have a property of their own). */
const SEGMENT = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      '1',
      '2',
      '0',
      '-1',
      '+1',
      '1.5',
      '1e3',
      '0x10',
      '007',
      ' 1',
      '9007199254740993',
      '99999999999999999999',
      '2026-W10',
      '2026-W53',
      '2026-w1',
      '1999-W01',
      'latest',
      '',
      '.',
      '..',
      '%2e%2e',
      '%2F',
      '%00',
      '%20',
      'null',
      '__proto__',
      'constructor',
      'approve',
      'tuner',
      '%F0%9F%98%80',
    ),
  },
  { weight: 2, arbitrary: fc.nat().map(String) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }).map(encodeURIComponent) },
  { weight: 1, arbitrary: fc.integer({ min: 256, max: 4096 }).map((n) => '9'.repeat(n)) },
);
const MALFORMED_PERCENT = fc.constantFrom('%', '%%', '%zz', '%1', '%E0%A4%A', '%C0%AF', '%FF', '%ED%A0%80', '%uD800', 'a%', '1%2', '%%31');

const QUERY_KEY = fc.oneof(
  fc.constantFrom(
    'state',
    'limit',
    'sinceId',
    'action',
    'status',
    'format',
    'week',
    'model',
    'stream',
    '__proto__',
    'constructor',
    'hasOwnProperty',
    'limit[]',
    'state[0]',
    'a[b][c]',
    '',
    '&',
    '=',
    '%zz',
    'x'.repeat(300),
  ),
  fc.string({ unit: 'grapheme', maxLength: 12 }).map(encodeURIComponent),
);
const QUERY_VALUE = fc.oneof(
  fc.constantFrom(
    '',
    'proposed',
    'verified',
    'firing',
    'resolved',
    'json',
    'md',
    'html',
    'pdf',
    '1',
    '0',
    '-1',
    '1000',
    '1001',
    '1e3',
    '1.0',
    '99999999999999999999',
    '%zz',
    '%',
    '%00',
    'a.b:c-d_e',
    'x'.repeat(101),
    '%2F..%2F..%2Fetc%2Fpasswd',
    'true',
  ),
  fc.string({ unit: 'grapheme', maxLength: 30 }).map(encodeURIComponent),
  fc.nat().map(String),
);
const QUERY = fc
  .array(fc.tuple(QUERY_KEY, QUERY_VALUE, fc.boolean()), { maxLength: 5 })
  .map((pairs) => (pairs.length === 0 ? '' : `?${pairs.map(([k, v, bare]) => (bare ? k : `${k}=${v}`)).join('&')}`));

function pathArb(segment: fc.Arbitrary<string>): fc.Arbitrary<{ method: string; path: string }> {
  return fc
    .record({
      route: fc.constantFrom(...ROUTES),
      param: segment,
      extra: fc.option(segment, { freq: 4 }),
      variant: fc.constantFrom('as-is', 'as-is', 'as-is', 'trailing-slash', 'double-slash', 'upper-case', 'dot-segment'),
      method: fc.option(METHOD, { freq: 2 }), // none: the route's own method
      query: QUERY,
    })
    .map(({ route, param, extra, variant, method, query }) => {
      let p = route[1].replace(/:[a-z]+/, param);
      if (extra !== null) p += `/${extra}`;
      if (variant === 'trailing-slash') p += '/';
      else if (variant === 'double-slash') p = p.replace('/', '//');
      else if (variant === 'upper-case') p = p.toUpperCase();
      else if (variant === 'dot-segment') p = p.replace(/\/([^/]+)$/, '/./$1');
      return { method: method ?? route[0], path: p + query };
    });
}

// Header values: what fetch can send (Latin-1, no CR/LF/NUL).
const LATIN1 = fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff })).map((c) => String.fromCharCode(c));
const HEADER_VALUE = fc.string({ unit: LATIN1, maxLength: 80 }).map((s) => s.trim());

const AUTHORIZATION = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(`Bearer ${API_KEY}`, `Bearer ${TOKENS.viewer}`, `Bearer ${TOKENS.approver}`, `Bearer ${TOKENS.admin}`, `Bearer ${ALERTS_TOKEN}`),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'Bearer',
      'Bearer x',
      `bearer ${TOKENS.admin}`,
      `BEARER   ${API_KEY}`,
      `Bearer ${API_KEY}x`,
      `Bearer ${TOKENS.admin} extra`,
      'Basic dXNlcjpwYXNz',
      'Token abc',
      `Bearer ${'\u00ff'.repeat(40)}`,
      'Bearer \u00e9\u00e8',
    ),
  },
  { weight: 1, arbitrary: HEADER_VALUE },
  // Huge but under Node's 16 KiB header limit (past it, Node answers itself: the raw-socket properties).
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 12_000 }).map((n) => `Bearer ${'A'.repeat(n)}`) },
);

const CONTENT_TYPE = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'application/json; charset=UTF-16',
      'application/json; charset=latin1',
      'application/json; charset=koi8-r',
      'application/json; charset=nope',
      'application/json;;;',
      'application/json; charset="utf-8"',
      'APPLICATION/JSON',
      'application/vnd.api+json',
      'application/*',
      '*/*',
      'text/plain',
      'text/json',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      '',
      ';',
      'application/json, text/plain',
    ),
  },
  { weight: 1, arbitrary: HEADER_VALUE },
);

const HEADER_NAME = fc.oneof(
  fc.constantFrom(
    'accept',
    'accept-encoding',
    'accept-charset',
    'x-request-id',
    'x-forwarded-for',
    'x-forwarded-proto',
    'forwarded',
    'cookie',
    'origin',
    'referer',
    'user-agent',
    'content-language',
    'range',
    'if-none-match',
    'cache-control',
    'x-http-method-override',
  ),
  fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/).filter((n) => !FETCH_CONTROLLED.has(n)),
);
/** Headers fetch sets or refuses itself (the raw-socket properties send those). */
const FETCH_CONTROLLED = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'expect',
  'host',
  'te',
  'trailer',
  'content-type',
  'authorization',
  'content-encoding',
]);
const REQUEST_ID = fc.oneof(fc.stringMatching(/^[\w.:-]{1,128}$/), fc.constantFrom('', ' ', 'a b', 'x'.repeat(129), '<script>', '../..'), HEADER_VALUE);

const HEADERS = fc
  .record({
    authorization: fc.option(AUTHORIZATION, { freq: 6 }),
    contentType: fc.option(CONTENT_TYPE, { freq: 8 }),
    requestId: fc.option(REQUEST_ID, { freq: 3 }),
    others: fc.array(fc.tuple(HEADER_NAME, HEADER_VALUE), { maxLength: 4 }),
  })
  .map(({ authorization, contentType, requestId, others }) => {
    const h: Record<string, string> = {};
    for (const [k, v] of others) h[k] = v;
    if (authorization !== null) h['authorization'] = authorization;
    if (contentType !== null) h['content-type'] = contentType;
    if (requestId !== null) h['x-request-id'] = requestId;
    return h;
  });

const deepArray = (d: number): string => '['.repeat(d) + ']'.repeat(d);
const deepObject = (d: number): string => '{"a":'.repeat(d) + '1' + '}'.repeat(d);
const safeStringify = (v: unknown): string => {
  try {
    return JSON.stringify(v) ?? 'null';
  } catch {
    return '{}';
  }
};

/** Any body: JSON of any shape, truncated JSON, binary junk, deep nesting, big strings (within and just over the limit). */
const BODY: fc.Arbitrary<string | Uint8Array | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(
    '',
    '{}',
    '[]',
    'null',
    '0',
    '"x"',
    'true',
    '{',
    '}',
    '{"model":',
    '\u0000',
    '\ufeff{}',
    '{"a":1}{"b":2}',
    '{"__proto__":{"x":1}}',
    '{"constructor":{"prototype":{"x":1}}}',
    '{"model":"tuneloop-shakespeare","prompt":"hi","max_tokens":1,"max_tokens":2}',
    'NaN',
    '1e999',
    '-0',
  ),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.anything().map(safeStringify),
  fc.jsonValue().chain((v) => {
    const s = JSON.stringify(v);
    return fc.nat(Math.max(0, s.length - 1)).map((n) => s.slice(0, n));
  }),
  fc.uint8Array({ maxLength: 2048 }),
  fc.integer({ min: 1, max: 20_000 }).map(deepArray),
  fc.integer({ min: 1, max: 8_000 }).map(deepObject),
  fc.integer({ min: 1_000, max: BODY_LIMIT - 100 }).map((n) => JSON.stringify({ model: MODEL_NAME, prompt: 'to be '.repeat(n / 6), max_tokens: 1 })),
  fc.integer({ min: BODY_LIMIT + 1, max: BODY_LIMIT + 4096 }).map((n) => JSON.stringify({ comment: 'x'.repeat(n) })),
);

// ---- wrong values for OpenAI and API fields -------------------------------------------------------------------------

const DELETE = '<delete the field>'; // a sentinel the mutators recognise

/** A value of any type for any field: what a confused or hostile client sends. */
const WRONG: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(DELETE),
  fc.constantFrom(
    null,
    true,
    false,
    0,
    -1,
    1,
    0.5,
    -0.0,
    1e308,
    -1e308,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    Number.MAX_SAFE_INTEGER,
    '',
    ' ',
    '0',
    '1',
    'NaN',
    'Infinity',
    'true',
    [],
    {},
    [null],
    [''],
    [[]],
    { '': '' },
    { __proto__: null },
    ['a', 1, null],
  ),
  fc.jsonValue({ maxDepth: 3 }),
  fc.string({ unit: 'binary', maxLength: 200 }), // any code point, lone surrogates included
  fc.integer({ min: 200, max: 20_000 }).map((n) => '\u00e9x '.repeat(n)),
  fc.integer({ min: 1, max: 2_000 }).map((d) => JSON.parse(deepArray(d)) as unknown),
);

/** max_tokens and friends: small, or beyond the 256-token context (refused), or wrong. Never a long generation. */
const MAX_TOKENS: fc.Arbitrary<unknown> = fc
  .oneof(fc.integer({ min: -3, max: 8 }), fc.integer({ min: 300, max: 2 ** 31 }), WRONG)
  .map((v) => (typeof v === 'number' && Number.isInteger(v) && v > 8 && v < 300 ? v % 9 : v));

const TEXT = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('<|endoftext|>', '<|endoftext|><|endoftext|>', '\u0000', '\ufffd', '\ud800', '\u2581 \u2581', 'ROMEO:', '\n\n\n', ' '.repeat(100)),
);
const TOKEN_IDS = fc.array(fc.oneof(fc.nat(2047), fc.constantFrom(2047, 2048, 65535, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53, 1e300, Number.MAX_SAFE_INTEGER)), {
  minLength: 1,
  maxLength: 12,
});
const ROLE = fc.oneof(fc.constantFrom('system', 'user', 'assistant', 'developer', 'tool', 'function', 'USER', '', 'ai'), fc.string({ maxLength: 8 }));
const CONTENT = fc.oneof(
  TEXT,
  fc.array(
    fc.oneof(
      fc.record({ type: fc.constant('text'), text: TEXT }),
      fc.record({ type: fc.constantFrom('image_url', 'input_audio', 'TEXT'), text: TEXT }),
      fc.record({ type: fc.constant('text'), text: WRONG }),
      WRONG,
    ),
    { maxLength: 4 },
  ),
  WRONG,
);
// Tools (issue 18): definitions near the valid shape, tool_choice values, tool-call turns.
const TOOL_NAME = fc.oneof(fc.constantFrom('get_weather', 'f', '', 'a b', 'x'.repeat(65), 'ünï'), WRONG);
const SCHEMA = fc.oneof(
  fc.constantFrom({ type: 'object' }, { type: 'object', properties: { a: { type: 'string' } }, required: ['a'] }, { not: {} }, { $ref: '#' }, { type: 'string' }, {}),
  WRONG,
);
const TOOL = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.constant('function'),
      function: fc.record({ name: TOOL_NAME, parameters: SCHEMA, strict: fc.oneof(fc.boolean(), WRONG) }, { requiredKeys: ['name'] }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constantFrom('function', 'code_interpreter'), function: WRONG }) },
  { weight: 1, arbitrary: WRONG },
);
const TOOL_CALL = fc.oneof(
  fc.record({
    id: fc.oneof(fc.constantFrom('call_1', 'abcdefghi'), WRONG),
    type: fc.constantFrom('function', 'x'),
    function: fc.record({ name: TOOL_NAME, arguments: fc.oneof(fc.constantFrom('{}', '{"a": 1}', 'not json', '[1]'), WRONG) }),
  }),
  WRONG,
);
const MESSAGE = fc.oneof(
  { weight: 4, arbitrary: fc.record({ role: ROLE, content: CONTENT }) },
  { weight: 1, arbitrary: fc.record({ role: fc.constant('tool'), content: CONTENT, tool_call_id: fc.oneof(fc.constant('call_1'), WRONG) }, { requiredKeys: ['role'] }) },
  {
    weight: 1,
    arbitrary: fc.record(
      {
        role: fc.constant('assistant'),
        content: fc.oneof(fc.constant(null), CONTENT),
        tool_calls: fc.array(TOOL_CALL, { maxLength: 3 }),
        reasoning_content: fc.oneof(TEXT, WRONG),
      },
      { requiredKeys: ['role'] },
    ),
  },
  { weight: 1, arbitrary: fc.record({ role: ROLE, content: CONTENT, name: WRONG, tool_calls: WRONG }, { requiredKeys: ['role'] }) },
  { weight: 1, arbitrary: WRONG },
);

/** Values aimed at one field: near its valid range (to get past earlier checks), at its edges, or of another type. */
const FIELD_VALUES: Record<string, fc.Arbitrary<unknown>> = {
  model: fc.oneof(fc.constantFrom(MODEL_NAME, MODEL_NAME.toUpperCase(), `${MODEL_NAME} `, '', 'gpt-4'), WRONG),
  prompt: fc.oneof(TEXT, TOKEN_IDS, fc.array(TEXT, { maxLength: 3 }), fc.constantFrom([], [[1, 2]], [-1], [1.5], ['a', 1])),
  messages: fc.oneof(fc.array(MESSAGE, { minLength: 1, maxLength: 5 }), fc.constantFrom([], {})),
  max_tokens: MAX_TOKENS,
  max_completion_tokens: MAX_TOKENS,
  temperature: fc.oneof(fc.double({ min: -1, max: 3 }), fc.constantFrom(0, 2, 2.0000001, -0, Number.MIN_VALUE)),
  top_p: fc.oneof(fc.double({ min: -0.5, max: 1.5 }), fc.constantFrom(0, 1, Number.MIN_VALUE, 1 + Number.EPSILON)),
  top_k: fc.oneof(fc.integer({ min: -2, max: 3000 }), fc.constantFrom(1 << 20, (1 << 20) + 1)),
  seed: fc.oneof(fc.integer(), fc.constantFrom(0, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, 2 ** 64)),
  stop: fc.oneof(TEXT, fc.array(TEXT, { maxLength: 6 }), fc.constantFrom([''], ['\n'], ['<|endoftext|>'], 'the')),
  stream: fc.boolean(),
  stream_options: fc.oneof(fc.record({ include_usage: fc.oneof(fc.boolean(), WRONG) }), WRONG),
  logprobs: fc.oneof(fc.integer({ min: -1, max: 7 }), fc.boolean()),
  top_logprobs: fc.integer({ min: -1, max: 22 }),
  n: fc.integer({ min: -1, max: 3 }),
  ignore_eos: fc.boolean(),
  // Issue 18's fields: they may be refused until their owners land; the property is the same (never 5xx or a hang).
  response_format: fc.oneof(
    fc.constantFrom({ type: 'text' }, { type: 'json_object' }, { type: 'json_schema' }, { type: 'xml' }, { type: 'json_schema', json_schema: {} }),
    fc.record({
      type: fc.constant('json_schema'),
      json_schema: fc.record(
        {
          name: fc.oneof(fc.constantFrom('answer', '', 'a b'), WRONG),
          strict: fc.oneof(fc.boolean(), WRONG),
          schema: fc.oneof(
            fc.constantFrom(
              { type: 'object', properties: { a: { type: 'string' } }, required: ['a'], additionalProperties: false },
              { type: 'array', items: { type: 'integer' }, minItems: 1, maxItems: 2 },
              { enum: ['x', 'y', 1, null] },
              { $ref: '#/$defs/n', $defs: { n: { anyOf: [{ type: 'null' }, { $ref: '#/$defs/n' }] } } },
              { type: 'string', pattern: '^(a+)+$' },
              { type: 'integer', minimum: 5, maximum: 1 },
              { not: {} },
              { type: 'object', properties: { a: { const: 1 } }, required: ['a', 'b'] },
            ),
            fc.jsonValue({ maxDepth: 4 }),
            WRONG,
          ),
        },
        { requiredKeys: [] },
      ),
    }),
    WRONG,
  ),
  tools: fc.oneof(fc.array(TOOL, { maxLength: 3 }), WRONG),
  tool_choice: fc.oneof(
    fc.constantFrom(
      'none',
      'auto',
      'required',
      'any',
      { type: 'function', function: { name: 'get_weather' } },
      { type: 'function', function: { name: 'nope' } },
      { type: 'function' },
    ),
    WRONG,
  ),
  parallel_tool_calls: fc.oneof(fc.boolean(), WRONG),
  logit_bias: fc.oneof(
    fc.dictionary(
      fc.oneof(fc.nat(2100).map(String), fc.constantFrom('-1', '1.5', 'abc', '', '99999999999999999999', '__proto__')),
      fc.oneof(fc.double({ min: -150, max: 150 }), fc.constantFrom(-100, 100, 100.0001, 'x', null)),
      { maxKeys: 4 },
    ),
    WRONG,
  ),
  presence_penalty: fc.oneof(fc.double({ min: -3, max: 3 }), fc.constantFrom(-2, 2, 2.0000001)),
  frequency_penalty: fc.oneof(fc.double({ min: -3, max: 3 }), fc.constantFrom(-2, 2, -2.0000001)),
  repetition_penalty: fc.oneof(fc.double({ min: -1, max: 5 }), fc.constantFrom(0, 1, Number.MIN_VALUE)),
  min_p: fc.oneof(fc.double({ min: -0.5, max: 1.5 }), fc.constantFrom(0, 1)),
  echo: fc.oneof(fc.boolean(), WRONG),
  grammar: fc.oneof(fc.constantFrom('root ::= "a"', 'root ::= root', 'root ::= [', 'x ::= "a"', 'root ::= "a"*', ''), fc.string({ maxLength: 60 }), WRONG),
  // Accepted-and-ignored and refused fields (docs/api.md's table): right and wrong types.
  user: fc.oneof(TEXT, WRONG),
  metadata: fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }), WRONG),
  store: fc.oneof(fc.boolean(), WRONG),
  modalities: fc.oneof(fc.constantFrom(['text'], ['text', 'audio'], []), WRONG),
  best_of: fc.oneof(fc.integer({ min: -1, max: 4 }), WRONG),
  functions: fc.oneof(fc.array(WRONG, { maxLength: 2 }), WRONG),
};

/** A valid request, then 1-3 fields replaced (or deleted) by field-aimed or wrong values. */
function mutatedRequest(kind: 'completion' | 'chat'): fc.Arbitrary<Record<string, unknown>> {
  const base =
    kind === 'completion'
      ? fc.record({
          model: fc.constant(MODEL_NAME),
          prompt: fc
            .oneof(
              TEXT,
              TOKEN_IDS.map((ids) => ids.map((i) => i % 2048)),
            )
            .filter((p) => p !== ''),
          max_tokens: fc.integer({ min: 1, max: 8 }),
          stream: fc.boolean(),
        })
      : fc.record({
          model: fc.constant(MODEL_NAME),
          messages: fc.array(fc.record({ role: fc.constantFrom('system', 'user', 'assistant'), content: fc.string({ maxLength: 30 }) }), { minLength: 1, maxLength: 3 }),
          max_tokens: fc.integer({ min: 1, max: 8 }),
          stream: fc.boolean(),
        });
  const fields =
    kind === 'completion'
      ? [
          'model',
          'prompt',
          'max_tokens',
          'temperature',
          'top_p',
          'top_k',
          'seed',
          'stop',
          'stream',
          'stream_options',
          'logprobs',
          'n',
          'ignore_eos',
          'echo',
          'suffix',
          'logit_bias',
          'presence_penalty',
          'frequency_penalty',
          'repetition_penalty',
          'min_p',
          'user',
          'response_format',
          'grammar',
          'best_of',
        ]
      : [
          'model',
          'messages',
          'max_tokens',
          'max_completion_tokens',
          'temperature',
          'top_p',
          'top_k',
          'seed',
          'stop',
          'stream',
          'stream_options',
          'logprobs',
          'top_logprobs',
          'n',
          'ignore_eos',
          'tools',
          'tool_choice',
          'parallel_tool_calls',
          'functions',
          'response_format',
          'logit_bias',
          'presence_penalty',
          'frequency_penalty',
          'repetition_penalty',
          'min_p',
          'user',
          'grammar',
          'metadata',
          'store',
          'modalities',
          'audio',
          'chat_template_name',
        ];
  // max_tokens and max_completion_tokens only ever get MAX_TOKENS values (wrong ones included), so no run is long.
  const mutation = fc
    .constantFrom(...fields)
    .chain((field) => fc.tuple(fc.constant(field), field.startsWith('max_') ? MAX_TOKENS : fc.oneof(FIELD_VALUES[field] ?? WRONG, WRONG)));
  return fc.tuple(base, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([b, muts]) => {
    const out: Record<string, unknown> = { ...b };
    for (const [field, value] of muts) {
      if (value !== DELETE) out[field] = value;
      // Deleting max_tokens from a chat lets it run to the context (OpenAI's default): slow, and nothing new.
      else if (!(kind === 'chat' && field === 'max_tokens')) delete out[field];
    }
    return out;
  });
}

const jsonRequest = (method: string, path: string, auth: string, body: unknown): Sent => ({
  method,
  path,
  headers: { authorization: auth, 'content-type': 'application/json' },
  body: safeStringify(body),
});

// ---- the properties ---------------------------------------------------------------------------------------------

describe('hostile HTTP input: always a well-formed 4xx (or a 2xx), never a 5xx or a hang', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tuneloop-hostile-'));
    server = await startTunedServer({
      dir,
      config: {
        // No rate limit: past its burst it would answer most of these thousands of requests with 429 (well-formed,
        // but then nothing behind it would be exercised). limits.test.ts covers the limiter.
        server: { apiKeys: [API_KEY], requestBodyLimitBytes: BODY_LIMIT, rateLimitPerMinute: 0 },
        alerts: { webhookToken: ALERTS_TOKEN },
        tuner: { reportsDir: join(dir, 'reports') },
      },
    });
    // One report on disk, so /api/reports/:week also answers from a file.
    await server.tuned.writeReport('2026-W10');
  });
  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('any route, method, path and query, with any headers and body', async () => {
    const req = fc
      .record({ at: pathArb(SEGMENT), headers: HEADERS, body: BODY })
      .map(({ at, headers, body }): Sent => ({ ...at, headers, ...(body !== undefined && !bodyless(at.method) ? { body } : {}) }));
    await check(fc.asyncProperty(req, send), 800);
  });

  it('malformed percent-encoding in a path parameter', async () => {
    const req = fc
      .record({ at: pathArb(MALFORMED_PERCENT), auth: AUTHORIZATION })
      .map(({ at, auth }): Sent => ({ method: at.method, path: at.path, headers: { authorization: auth } }));
    await check(fc.asyncProperty(req, send), 100);
  });

  it('any Content-Encoding, with a body that is or is not in it', async () => {
    const valid = JSON.stringify({ model: MODEL_NAME, prompt: 'Good morrow', max_tokens: 2 });
    const req = fc
      .record({
        route: fc.constantFrom('/v1/completions', '/v1/chat/completions', '/api/alerts', '/api/tuner/run', '/api/proposals/1/approve', '/api/config/rollback/1'),
        encoding: fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'GZIP', 'gzip, gzip', 'x-junk', 'compress', ''),
        payload: fc.oneof(
          fc.constant(gzipSync(valid)),
          fc.constant(deflateSync(valid)),
          fc.constant(valid),
          fc.uint8Array({ minLength: 1, maxLength: 512 }),
          fc.constant(gzipSync(valid).subarray(0, 20)),
        ),
        auth: fc.constantFrom(`Bearer ${API_KEY}`, `Bearer ${TOKENS.admin}`, `Bearer ${ALERTS_TOKEN}`),
      })
      .map(({ route, encoding, payload, auth }): Sent => ({
        method: 'POST',
        path: route,
        headers: { authorization: auth, 'content-type': 'application/json', 'content-encoding': encoding },
        body: payload,
      }));
    await check(fc.asyncProperty(req, send), 100);
  });

  it('OpenAI requests with fields of the wrong type, range or shape', async () => {
    const req = fc.oneof(
      mutatedRequest('completion').map((b) => jsonRequest('POST', '/v1/completions', `Bearer ${API_KEY}`, b)),
      mutatedRequest('chat').map((b) => jsonRequest('POST', '/v1/chat/completions', `Bearer ${API_KEY}`, b)),
    );
    await check(fc.asyncProperty(req, send), 500);
  });

  it('embeddings requests with inputs and fields of the wrong type, range or shape', async () => {
    // Small inputs: each is its own forward pass; long ones are refused by the context check before any runs.
    const input = fc.oneof(
      TEXT,
      fc.array(TEXT, { maxLength: 4 }),
      TOKEN_IDS,
      fc.array(TOKEN_IDS, { maxLength: 3 }),
      fc.constantFrom([], [[]], ['a', [1]], [1, 'a'], [[1], 'a'], [-1], [1.5], '', [''], [[1, 2], [2048]]),
      fc.integer({ min: 257, max: 400 }).map((n) => Array.from({ length: n }, (_v, i) => i % 2048)),
      WRONG,
    );
    const body = fc
      .record(
        {
          model: fc.oneof({ weight: 6, arbitrary: fc.constant(MODEL_NAME) }, { weight: 1, arbitrary: FIELD_VALUES.model! }),
          input,
          encoding_format: fc.oneof(fc.constantFrom('float', 'base64', 'FLOAT', 'int8', ''), WRONG),
          dimensions: fc.oneof(fc.constantFrom(256, 255, 1, 0, -1, 4096, 256.5), WRONG),
          user: fc.oneof(TEXT, WRONG),
          extraKey: fc.oneof(fc.constantFrom('pooling', 'input_type', 'truncate', 'normalize', '__proto__', 'constructor'), fc.string({ maxLength: 12 })),
          extraValue: WRONG,
        },
        { requiredKeys: ['model', 'input'] },
      )
      .map(({ extraKey, extraValue, ...b }) => (extraKey === undefined || extraValue === DELETE ? b : { ...b, [extraKey]: extraValue }));
    const req = body.map((b) => jsonRequest('POST', '/v1/embeddings', `Bearer ${API_KEY}`, b));
    await check(fc.asyncProperty(req, send), 200);
  });

  it('tokenize and detokenize bodies in either shape, with wrong fields', async () => {
    const tokenize = fc.record(
      {
        content: fc.oneof(TEXT, WRONG),
        prompt: fc.oneof(TEXT, WRONG),
        messages: FIELD_VALUES.messages!,
        model: FIELD_VALUES.model!,
        add_special: fc.oneof(fc.boolean(), WRONG),
        add_special_tokens: fc.oneof(fc.boolean(), WRONG),
        parse_special: fc.oneof(fc.boolean(), WRONG),
        with_pieces: fc.oneof(fc.boolean(), WRONG),
        return_token_strs: fc.oneof(fc.boolean(), WRONG),
        add_generation_prompt: fc.oneof(fc.boolean(), WRONG),
        tools: FIELD_VALUES.tools!,
        chat_template_name: fc.oneof(TEXT, WRONG),
        chat_template: fc.oneof(TEXT, WRONG),
      },
      { requiredKeys: [] },
    );
    const detokenize = fc.record(
      { tokens: fc.oneof(TOKEN_IDS, fc.array(WRONG, { maxLength: 3 }), fc.constant([]), WRONG), model: FIELD_VALUES.model!, content: WRONG },
      { requiredKeys: [] },
    );
    const req = fc.oneof(
      tokenize.map((b) => jsonRequest('POST', '/tokenize', `Bearer ${API_KEY}`, b)),
      detokenize.map((b) => jsonRequest('POST', '/detokenize', `Bearer ${API_KEY}`, b)),
      fc
        .oneof(BODY, WRONG.map(safeStringify))
        .chain((b) =>
          fc
            .constantFrom('/tokenize', '/detokenize')
            .map((path): Sent => ({ method: 'POST', path, headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, body: b ?? '' })),
        ),
    );
    await check(fc.asyncProperty(req, send), 300);
  });

  it('tuner decisions, rollbacks and runs with any ids and bodies', async () => {
    const comment = fc.oneof(
      TEXT,
      fc.integer({ min: 1990, max: 2100 }).map((n) => 'x'.repeat(n)),
      WRONG,
    );
    const body = fc.oneof(
      fc.constant(undefined),
      fc.record({ comment }),
      fc.record({ comment, comments: WRONG }, { requiredKeys: [] }),
      fc.dictionary(fc.string({ maxLength: 10 }), WRONG, { maxKeys: 3 }),
      WRONG,
    );
    const req = fc
      .record({
        route: fc.constantFrom('/api/proposals/:id/approve', '/api/proposals/:id/reject', '/api/config/rollback/:id', '/api/tuner/run'),
        id: fc.oneof(fc.integer({ min: 1, max: 4 }).map(String), SEGMENT),
        role: fc.constantFrom<keyof typeof TOKENS>('viewer', 'approver', 'admin', 'admin'),
        body,
      })
      .map(({ route, id, role, body: b }): Sent => {
        const r = jsonRequest('POST', route.replace(':id', id), `Bearer ${TOKENS[role]}`, b);
        if (b === undefined) delete r.body;
        return r;
      });
    await check(fc.asyncProperty(req, send), 300);
  });

  it('Alertmanager webhooks with fields of the wrong type or shape', async () => {
    const alert = fc.record(
      {
        status: fc.oneof(fc.constantFrom('firing', 'resolved'), WRONG),
        labels: fc.oneof(
          fc.record({ alertname: fc.oneof(fc.constantFrom('TuneloopHighTTFT', ''), WRONG), severity: fc.oneof(fc.constantFrom('page', 'ticket', 'zzz'), WRONG) }),
          fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(TEXT, WRONG), { maxKeys: 4 }),
          WRONG,
        ),
        annotations: fc.oneof(fc.dictionary(fc.string({ maxLength: 12 }), TEXT, { maxKeys: 3 }), WRONG),
        startsAt: fc.oneof(fc.constantFrom('2026-03-01T10:00:00Z', 'not a date', '0001-01-01T00:00:00Z'), WRONG),
        endsAt: fc.oneof(fc.constantFrom('0001-01-01T00:00:00Z', ''), WRONG),
        fingerprint: fc.oneof(fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), maxLength: 16 }), WRONG),
        generatorURL: fc.oneof(fc.webUrl(), WRONG),
      },
      { requiredKeys: ['status', 'labels', 'startsAt'] },
    );
    // Many alerts in one delivery: valid ones (wrong values would make most such bodies too large, 413).
    const validAlert = fc.record({
      status: fc.constantFrom('firing', 'resolved'),
      labels: fc.record({ alertname: fc.constantFrom('A', 'TuneloopHighTTFT') }),
      startsAt: fc.constant('2026-03-01T10:00:00Z'),
    });
    const webhook = fc.record(
      {
        version: fc.oneof(fc.constant('4'), WRONG),
        receiver: fc.oneof(fc.constant('tuneloop'), WRONG),
        status: fc.oneof(fc.constantFrom('firing', 'resolved'), WRONG),
        alerts: fc.oneof(
          fc.array(fc.oneof({ weight: 5, arbitrary: alert }, { weight: 1, arbitrary: WRONG }), { maxLength: 6 }),
          fc.integer({ min: 20, max: 100 }).chain((n) => fc.array(validAlert, { minLength: n, maxLength: n })),
          WRONG,
        ),
        groupLabels: fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), TEXT, { maxKeys: 3 }), WRONG),
        commonLabels: fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), TEXT, { maxKeys: 3 }), WRONG),
        commonAnnotations: fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), TEXT, { maxKeys: 3 }), WRONG),
        externalURL: WRONG,
        groupKey: WRONG,
        truncatedAlerts: WRONG,
      },
      { requiredKeys: ['receiver', 'status', 'alerts'] },
    );
    const req = fc
      .tuple(webhook, fc.oneof({ weight: 9, arbitrary: fc.constant(`Bearer ${ALERTS_TOKEN}`) }, { weight: 1, arbitrary: fc.constant(`Bearer ${TOKENS.admin}`) }))
      .map(([b, auth]) => jsonRequest('POST', '/api/alerts', auth, b));
    await check(fc.asyncProperty(req, send), 300);
  });

  // Below fetch: bytes on a socket, so request lines, header names and values, framing headers (Content-Length,
  // Transfer-Encoding) and sizes that fetch refuses to send. Node's HTTP parser answers the malformed ones itself.
  // Mostly requests Node's parser accepts (they reach the app), some it refuses.
  const RAW_METHOD = fc.oneof(
    { weight: 8, arbitrary: METHOD },
    { weight: 1, arbitrary: fc.constantFrom('FOO', 'get', 'G E T', '', 'CONNECT', 'TRACE', 'PRI', 'GET\u0000') },
    { weight: 1, arbitrary: fc.stringMatching(/^[A-Z]{1,10}$/) },
  );
  const RAW_TARGET = fc.oneof(
    { weight: 4, arbitrary: pathArb(SEGMENT).map((p) => p.path) },
    { weight: 1, arbitrary: fc.constantFrom('*', 'http://evil.example/healthz', 'healthz', '//healthz', '/healthz#frag', '/\u00ff', '/a b', '', '/\u0000') },
  );
  const RAW_HEADER = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(HEADER_NAME, HEADER_VALUE).map(([k, v]) => `${k}: ${v}`) },
    {
      weight: 6,
      arbitrary: fc.constantFrom(
        'Content-Length: 5',
        'Content-Length: 0',
        'Transfer-Encoding: chunked',
        'Expect: 100-continue',
        'Connection: upgrade\r\nUpgrade: websocket',
        'Connection: close',
        'X-A:\ta',
        'Content-Type: application/json',
        'Content-Type: application/json; charset=\u00ff',
        `Authorization: Bearer ${API_KEY}`,
        `Authorization: Bearer ${TOKENS.admin}`,
        `Authorization: Bearer ${API_KEY}\r\nAuthorization: Bearer x`,
        `Authorization: Bearer ${ALERTS_TOKEN}`,
        'Content-Type: text/plain\r\nContent-Type: application/json',
      ),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'Content-Length: -1',
        'Content-Length: 1, 2',
        'Content-Length: 99999999999999999999',
        'Content-Length: 2\r\nContent-Length: 3',
        'Transfer-Encoding: gzip, chunked',
        'Transfer-Encoding: xchunked',
        'Content-Length: 3\r\nTransfer-Encoding: chunked',
        'Host:',
        'NoColon',
        ' leading-space: x',
        'X-A: a\u0001b',
        'Content-Encoding: gzip',
      ),
    },
    { weight: 1, arbitrary: fc.integer({ min: 16_000, max: 40_000 }).map((n) => `X-Big: ${'a'.repeat(n)}`) },
    {
      weight: 1,
      arbitrary: fc.string({
        unit: fc
          .integer({ min: 1, max: 255 })
          .filter((c) => c !== 10 && c !== 13)
          .map((c) => String.fromCharCode(c)),
        maxLength: 60,
      }),
    },
  );
  const RAW_BODY = fc.oneof(
    BODY.map((b) => (b === undefined ? '' : typeof b === 'string' ? b : Buffer.from(b).toString('latin1'))),
    fc.constantFrom('5\r\nhello\r\n0\r\n\r\n', 'zz\r\n{}\r\n0\r\n\r\n', '2\r\n{}\r\n', `GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`),
  );
  const RAW_REQUEST = fc
    .record({
      method: RAW_METHOD,
      target: RAW_TARGET,
      version: fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom('HTTP/1.1', 'HTTP/1.0') },
        { weight: 1, arbitrary: fc.constantFrom('HTTP/2.0', 'HTTP/1.x', 'http/1.1', '', 'HTTP/9.9') },
      ),
      host: fc.constantFrom(true, true, true, false),
      headers: fc.array(RAW_HEADER, { maxLength: 5 }),
      body: RAW_BODY,
    })
    .map(({ method, target, version, host, headers, body }) =>
      Buffer.from(`${method} ${target} ${version}\r\n${host ? 'Host: 127.0.0.1\r\n' : ''}${headers.map((h) => `${h}\r\n`).join('')}\r\n${body}`, 'latin1'),
    );

  it('raw bytes on the socket: an answer below 500 (or a closed connection), never a hang', async () => {
    await fc.assert(
      fc.asyncProperty(RAW_REQUEST, async (bytes) => {
        const { answer, closed } = await rawExchange(bytes);
        const shown = JSON.stringify(bytes.toString('latin1').slice(0, 600));
        if (!closed) throw new Error(`connection still open ${ANSWER_MS} ms after the request was sent: printf %s ${shown} | nc $HOST $PORT`);
        for (const m of answer.matchAll(STATUS_LINE)) {
          if (Number(m[1]) >= 500) throw new Error(`5xx answer to ${shown}: ${JSON.stringify(answer.slice(0, 400))}`);
        }
        if (answer !== '' && !/^HTTP\/1\.[01] \d{3} /.test(answer)) throw new Error(`not an HTTP answer to ${shown}: ${JSON.stringify(answer.slice(0, 200))}`);
      }),
      { seed: SEED, numRuns: runs(1000) },
    );
  });

  // Node answers some requests itself, before the app sees them: those its parser refuses (clientError: a bad method,
  // header or framing, headers over 16 KiB) with a bare status line, and an HTTP/1.1 request without Host
  // (requireHostHeader). No body: not the JSON error every other 4xx carries. These fail until server.ts answers
  // them in the catalogue's shape (a clientError handler; requireHostHeader off, or its own 400).
  it.each([
    ['an unknown method', 'FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a header over 16 KiB', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`],
    ['a control character in a header', 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\u0001b\r\n\r\n'],
    ['no Host header', 'GET /healthz HTTP/1.1\r\n\r\n'],
  ])('a request Node would refuse itself (%s) gets an app answer or the JSON error shape', async (_name, request) => {
    const { answer } = await rawExchange(Buffer.from(request, 'latin1'));
    const status = Number(/^HTTP\/1\.[01] (\d{3}) /.exec(answer)?.[1]);
    expect(status, answer).toBeLessThan(500);
    const [head = '', body = ''] = answer.split('\r\n\r\n', 2);
    if (status < 400) {
      expect(head, answer).toMatch(/\r\nx-request-id: /i); // the app took it (e.g. a request without Host let through)
      return;
    }
    expect(head, answer).toMatch(/\r\ncontent-type: application\/json/i);
    // The body as sent, or its one chunk when chunked.
    const json = /\r\ntransfer-encoding: chunked/i.test(head) ? body.replace(/^[0-9a-f]+\r\n/i, '').replace(/\r\n0\r\n\r\n$/, '') : body;
    expect(JSON.parse(json)).toMatchObject({ error: { message: expect.any(String), type: expect.any(String), code: expect.any(String) } });
  });
});
