// "Nothing silently ignored" (issue 18): every request field of the official openai SDK's request types for
// /v1/chat/completions, /v1/completions and /v1/embeddings is in exactly one of field-policy.ts's lists (implemented,
// accepted-and-ignored, refused), docs/api.md's tables say the same, and a real server behaves as the lists say:
// each refused field is a 400 naming it, each accepted-and-ignored one a 200. The SDK's fields are read from its .d.ts
// files with the TypeScript parser (tests/helpers/sdk-request-fields.ts), so an SDK upgrade that adds a field fails
// here until the field is classified.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI, { BadRequestError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIELD_POLICY, type PolicyRoute } from '../../src/controlplane/openai/field-policy.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { SDK_REQUEST_TYPES, openaiSdkVersion, sdkRequestFields, typeFields, openaiPackageDir } from '../helpers/sdk-request-fields.js';
import { MODEL_NAME, startHarness, type Harness } from './harness.js';

const ROUTES = Object.keys(FIELD_POLICY) as PolicyRoute[];
const PATHS: Record<PolicyRoute, string> = {
  chat_completions: '/v1/chat/completions',
  completions: '/v1/completions',
  embeddings: '/v1/embeddings',
};

type Status = 'implemented' | 'extension' | 'ignored' | 'refused';

function lists(route: PolicyRoute): Record<Status, readonly string[]> {
  const p = FIELD_POLICY[route];
  return { implemented: p.implemented, extension: p.extensions, ignored: Object.keys(p.ignored), refused: Object.keys(p.refused) };
}

/** docs/api.md's per-route tables: "| `field` | status | ... |" rows under "### `POST /v1/...`" inside the section. */
function documented(): Record<string, Map<string, string>> {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'api.md'), 'utf8');
  const section = doc.split(/^## OpenAI-compatible routes: request fields$/m)[1]?.split(/^## /m)[0];
  if (section === undefined) throw new Error('docs/api.md has no "## OpenAI-compatible routes: request fields" section');
  const out: Record<string, Map<string, string>> = {};
  for (const part of section.split(/^### /m).slice(1)) {
    const path = /^`POST (\/v1\/[a-z/]+)`/.exec(part)?.[1];
    if (path === undefined) continue;
    const rows = new Map<string, string>();
    for (const m of part.matchAll(/^\| `([a-z_]+)` \| (implemented|extension|ignored|refused) \|/gm)) {
      if (rows.has(m[1]!)) throw new Error(`docs/api.md lists ${path} ${m[1]} twice`);
      rows.set(m[1]!, m[2]!);
    }
    out[path] = rows;
  }
  return out;
}

describe(`the openai SDK's request fields (openai ${openaiSdkVersion()})`, () => {
  const sdk = sdkRequestFields();

  it('reads the SDK types through extends and the Streaming / NonStreaming union', () => {
    // The union's members add `stream`; the Base interface holds the rest.
    const base = typeFields(join(openaiPackageDir(), SDK_REQUEST_TYPES.chat_completions.file), 'ChatCompletionCreateParamsBase');
    expect(sdk.chat_completions).toEqual(expect.arrayContaining([...base, 'stream', 'messages', 'tools', 'response_format']));
    expect(sdk.completions).toEqual(expect.arrayContaining(['prompt', 'echo', 'best_of', 'suffix', 'stream']));
    expect(sdk.embeddings).toEqual(['dimensions', 'encoding_format', 'input', 'model', 'user']);
  });

  it.each(ROUTES)('%s: every SDK field is in exactly one list; the lists name no field the SDK lacks, extensions excepted', (route) => {
    const l = lists(route);
    const problems: string[] = [];
    for (const f of sdk[route]) {
      const where = (Object.keys(l) as Status[]).filter((s) => l[s].includes(f));
      if (where.length !== 1) problems.push(`${f}: in ${where.length === 0 ? 'no list' : where.join(' and ')}`);
    }
    for (const s of ['implemented', 'ignored', 'refused'] as const)
      for (const f of l[s]) if (!sdk[route].includes(f)) problems.push(`${f}: listed as ${s} but not an SDK field (an extension?)`);
    for (const f of l.extension) if (sdk[route].includes(f)) problems.push(`${f}: an SDK field listed as an extension`);
    expect(problems).toEqual([]);
  });

  it.each(ROUTES)("%s: docs/api.md's table is field-policy.ts's", (route) => {
    const rows = documented()[PATHS[route]];
    expect(rows, `docs/api.md has no table for ${PATHS[route]}`).toBeDefined();
    const l = lists(route);
    const expected = new Map<string, string>();
    for (const s of Object.keys(l) as Status[]) for (const f of l[s]) expected.set(f, s);
    expect(Object.fromEntries([...rows!].sort())).toEqual(Object.fromEntries([...expected].sort()));
  });
});

/** A value of each refused or ignored field as a client would send it (a harmful one for the refused). */
const SAMPLES: Record<string, unknown> = {
  audio: { voice: 'alloy', format: 'mp3' },
  modalities: ['text', 'audio'],
  prediction: { type: 'content', content: 'ROMEO:' },
  web_search_options: {},
  functions: [{ name: 'f', parameters: { type: 'object' } }],
  function_call: 'auto',
  reasoning_effort: 'low',
  verbosity: 'low',
  best_of: 2,
  suffix: ' the end',
  user: 'user-1234',
  safety_identifier: 'hashed-id',
  store: true,
  metadata: { team: 'evals' },
  service_tier: 'auto',
  prompt_cache_key: 'k1',
  prompt_cache_retention: '24h',
};
/** Values of refused fields that ask for nothing beyond the default: accepted. */
const HARMLESS: [PolicyRoute, string, unknown][] = [
  ['chat_completions', 'modalities', ['text']],
  ['completions', 'best_of', 1],
];

describe('a real server follows the lists (openai SDK client)', () => {
  let h: Harness;
  let client: OpenAI;
  beforeAll(async () => {
    h = await startHarness();
    client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await h?.stop();
  });

  const call = (route: PolicyRoute, extra: Record<string, unknown>): Promise<unknown> => {
    // The SDK sends what it is given (its types are bypassed on purpose: some samples are not what a type allows).
    if (route === 'chat_completions')
      return client.chat.completions.create({ model: MODEL_NAME, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, temperature: 0, ...extra } as never);
    if (route === 'completions') return client.completions.create({ model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 2, temperature: 0, ...extra } as never);
    return client.embeddings.create({ model: MODEL_NAME, input: 'ROMEO:', ...extra });
  };

  const cases = (kind: 'refused' | 'ignored'): [PolicyRoute, string][] =>
    ROUTES.flatMap((r) => Object.keys(FIELD_POLICY[r][kind]).map((f): [PolicyRoute, string] => [r, f]));

  it.each(cases('refused'))('%s: refused field %s is a 400 naming it', async (route, field) => {
    expect(SAMPLES, `add a sample value of ${field}`).toHaveProperty(field);
    const err = await call(route, { [field]: SAMPLES[field] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BadRequestError);
    const e = err as BadRequestError;
    expect(e.param).toBe(field);
    expect(e.message).toContain(field);
  });

  it.each(cases('ignored'))('%s: accepted-and-ignored field %s is a 200', async (route, field) => {
    expect(SAMPLES, `add a sample value of ${field}`).toHaveProperty(field);
    await expect(call(route, { [field]: SAMPLES[field] })).resolves.toBeDefined();
  });

  it.each(HARMLESS)('%s: refused field %s with a value that asks for nothing is a 200', async (route, field, value) => {
    await expect(call(route, { [field]: value })).resolves.toBeDefined();
  });

  it.each(ROUTES)('%s: a field in no list is a 400 naming it (as OpenAI answers)', async (route) => {
    const err = (await call(route, { not_a_field: 1 }).catch((e: unknown) => e)) as BadRequestError;
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err.param).toBe('not_a_field');
    expect(err.message).toContain('Unrecognized request argument supplied: not_a_field');
  });

  // "Implemented" must mean read: a parser that never looks at a field would accept any value of it. Each implemented
  // field and extension with a value no field takes must be a 400 naming it.
  const implemented = ROUTES.flatMap((r) => [...FIELD_POLICY[r].implemented, ...FIELD_POLICY[r].extensions].map((f): [PolicyRoute, string] => [r, f]));
  it.each(implemented)('%s: implemented field %s is read (a value of no valid shape is a 400 naming it)', async (route, field) => {
    const err = (await call(route, { [field]: { not: ['a valid value'] } }).catch((e: unknown) => e)) as BadRequestError;
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err.param).toBe(field);
  });

  it('an ignored field of the wrong type is a 400 naming it (cheap checks)', async () => {
    const err = (await call('chat_completions', { metadata: 'x' }).catch((e: unknown) => e)) as BadRequestError;
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err.param).toBe('metadata');
  });
});
