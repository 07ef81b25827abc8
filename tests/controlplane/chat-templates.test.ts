// Chat templates from model files: the bounded renderer (template-sandbox.ts: a worker thread with a time limit, a heap
// limit and an output cap), loading a file's templates (parse failures become warnings and the built-in default), the
// request-facing errors (raise_exception → 400 with the template's message), and where message contents land in the
// rendered prompt (the plain ranges that keep user-typed special-token text ordinary text).
import { afterAll, describe, expect, it } from 'vitest';
import { isControlPlaneError, type ControlPlaneError } from '../../src/controlplane/errors.js';
import { TemplateRaise, TemplateSyntaxError } from '../../src/controlplane/openai/chat-template-jinja.js';
import { DEFAULT_CHAT_TEMPLATE, MAX_TEMPLATE_CHARS, loadChatTemplate } from '../../src/controlplane/openai/chat-template.js';
import { byteRanges, contentMarker, searchSpans, sentinelSpans } from '../../src/controlplane/openai/chat-prompt.js';
import { TemplateRenderError, TemplateSandbox } from '../../src/controlplane/openai/template-sandbox.js';
import type { ChatMessage } from '../../src/controlplane/openai/schema.js';

const CTX = { messages: [{ role: 'user', content: 'hi' }], addGenerationPrompt: true, bosToken: '<s>', eosToken: '</s>' };
// Never ends in any time a test waits for: 10^12 iterations.
// Pure CPU: three nested loops over small ranges (10^12 iterations). Ranges of a million allocated a million-value
// array per outer step, so on a fast run the worker could hit its heap limit before the time limit.
const RUNAWAY = '{% for i in range(10000) %}{% for j in range(10000) %}{% for k in range(10000) %}{% endfor %}{% endfor %}{% endfor %}';
const CHATML =
  "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const ALTERNATING =
  "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}";

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

async function refusal(p: Promise<unknown>): Promise<ControlPlaneError> {
  const e = await rejection(p);
  if (!isControlPlaneError(e)) throw e;
  return e;
}

describe('TemplateSandbox (bounded rendering on a worker thread)', () => {
  const sb = new TemplateSandbox({ timeoutMs: 400, maxOutputChars: 100_000, maxHeapMb: 32 });
  afterAll(() => sb.close());

  it('renders, with the globals Hugging Face sets', async () => {
    expect(await sb.render('{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}', CTX)).toBe('<s>hi</s>');
    expect(await sb.render("{{ strftime_now('%d %b %Y') }}", { ...CTX, now: new Date(2024, 6, 26) })).toBe('26 Jul 2024');
  });

  it('raise_exception is a TemplateRaise carrying the message; a template that does not parse is a TemplateSyntaxError', async () => {
    const e = await rejection(sb.render("{{ raise_exception('no system role') }}", CTX));
    expect(e).toBeInstanceOf(TemplateRaise);
    expect(e.message).toBe('no system role');
    expect(await rejection(sb.compile('{% for %}'))).toBeInstanceOf(TemplateSyntaxError);
    await sb.compile(CHATML);
  });

  it('cuts off a runaway loop at the time limit without blocking the event loop, and the next render gets a fresh worker', async () => {
    const before = sb.workersStarted;
    let settled = false;
    const p = rejection(sb.render(RUNAWAY, CTX)).finally(() => (settled = true));
    // The server's event loop keeps turning while the template spins on the worker.
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    const e = await p;
    expect(e).toBeInstanceOf(TemplateRenderError);
    expect((e as TemplateRenderError).reason).toBe('timeout');
    expect(e.message).toContain('400 ms');
    expect(await sb.render('ok', CTX)).toBe('ok');
    expect(sb.workersStarted).toBe(before + 1);
  });

  it('renders queued behind a runaway one still run (after it is cut off)', async () => {
    const [a, b] = await Promise.allSettled([sb.render(RUNAWAY, CTX), sb.render('{{ 6 * 7 }}', CTX)]);
    expect(a.status).toBe('rejected');
    expect(b).toEqual({ status: 'fulfilled', value: '42' });
  });

  it('refuses an enormous output: over the cap, or past the longest string V8 holds', async () => {
    let e = await rejection(sb.render('{% for i in range(20000) %}0123456789{% endfor %}', CTX));
    expect([e.constructor, (e as TemplateRenderError).reason]).toEqual([TemplateRenderError, 'too_large']);
    expect(e.message).toContain('100000 characters');
    e = await rejection(sb.render("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}", CTX));
    expect((e as TemplateRenderError).reason).toBe('too_large');
  });

  it('a template that eats the heap kills only its worker', async () => {
    // A time limit it never reaches first: 10^8 numbers need far more than 16 MiB.
    const small = new TemplateSandbox({ timeoutMs: 120_000, maxHeapMb: 16 });
    try {
      const e = await rejection(small.render('{{ range(100000000) | length }}', CTX));
      expect([e.constructor, (e as TemplateRenderError).reason]).toEqual([TemplateRenderError, 'out_of_memory']);
      expect(e.message).toContain('16 MiB');
      expect(await small.render('{{ 1 + 1 }}', CTX)).toBe('2');
    } finally {
      await small.close();
    }
  });

  it('unbounded recursion is an error, not a crash', async () => {
    const e = await rejection(sb.render('{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}', CTX));
    expect((e as TemplateRenderError).reason).toBe('error');
    expect(await sb.render('still here', CTX)).toBe('still here');
  });
});

describe('loadChatTemplate', () => {
  const sb = new TemplateSandbox({ timeoutMs: 400 });
  afterAll(() => sb.close());
  const user = (content: string): ChatMessage => ({ role: 'user', content });

  it('no template in the file: the built-in default, no warnings', async () => {
    const t = await loadChatTemplate({ chatTemplate: null }, sb);
    expect(t.summary).toEqual({ source: 'tuneloop-default', names: [], warnings: [] });
    expect(t.render([user('hi')])).toBe(DEFAULT_CHAT_TEMPLATE.render([user('hi')]));
    expect(t.stop).toEqual(DEFAULT_CHAT_TEMPLATE.stop);
  });

  it("the file's template: rendered with its bos/eos texts, no stop strings (EOG ids stop natively)", async () => {
    const t = await loadChatTemplate({ chatTemplate: '{{ bos_token }}' + CHATML, bos: '<|begin|>', eos: '<|end|>' }, sb);
    expect(t.summary).toEqual({ source: 'gguf', names: [], warnings: [] });
    expect(t.stop).toEqual([]);
    expect(t.specialTokens).toBe(true);
    expect(await t.render([user('hi')])).toBe('<|begin|><|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
  });

  it('a template that does not parse is a warning, and the model falls back to the default visibly', async () => {
    const t = await loadChatTemplate({ chatTemplate: '{% if %}', chatTemplates: { tool_use: '{% for x in %}', rag: CHATML } }, sb);
    expect(t.summary.source).toBe('tuneloop-default');
    expect(t.summary.warnings).toHaveLength(2);
    expect(t.summary.warnings[0]).toMatch(/^tokenizer\.chat_template does not parse \(.+\); chat completions use the tuneloop-default template instead$/);
    expect(t.summary.warnings[1]).toMatch(/^tokenizer\.chat_template\.tool_use does not parse/);
    expect(t.specialTokens).toBe(false);
  });

  it('an enormous template source is a warning too, never parsed', async () => {
    const huge = '{# ' + 'x'.repeat(MAX_TEMPLATE_CHARS) + ' #}' + CHATML;
    const t = await loadChatTemplate({ chatTemplate: huge }, sb);
    expect(t.summary.source).toBe('tuneloop-default');
    expect(t.summary.warnings).toEqual([
      `tokenizer.chat_template is ${huge.length} characters long, more than the ${MAX_TEMPLATE_CHARS} a chat template may have; chat completions use the tuneloop-default template instead`,
    ]);
  });

  it('named templates: picked by chat_template_name, tool_use when tools are given (as Hugging Face does), unknown names refused', async () => {
    const t = await loadChatTemplate({ chatTemplate: 'default:{{ messages[0].content }}', chatTemplates: { tool_use: 'tools:{{ tools | length }}', rag: 'rag' } }, sb);
    expect(t.summary).toEqual({ source: 'gguf', names: ['rag', 'tool_use'], warnings: [] });
    expect(await t.render([user('x')])).toBe('default:x');
    expect(await t.render([user('x')], { templateName: 'rag' })).toBe('rag');
    expect(await t.render([user('x')], { tools: [{ type: 'function', function: { name: 'f' } }] })).toBe('tools:1');
    const e = await refusal(Promise.resolve().then(() => t.render([user('x')], { templateName: 'nope' })));
    expect([e.status, e.param]).toEqual([400, 'chat_template_name']);
    expect(e.message).toContain('rag, tool_use');
  });

  it('raise_exception is a 400 carrying the template message; a runaway template a 500 naming the limit', async () => {
    const t = await loadChatTemplate({ chatTemplate: ALTERNATING }, sb);
    let e = await refusal(Promise.resolve(t.render([user('one'), user('two')])));
    expect([e.status, e.code, e.param]).toEqual([400, 'CP_ERR_INVALID_REQUEST', 'messages']);
    expect(e.message).toContain('Conversation roles must alternate user/assistant/user/assistant/...');
    const loop = await loadChatTemplate({ chatTemplate: RUNAWAY }, sb);
    e = await refusal(Promise.resolve(loop.render([user('x')])));
    expect(e.status).toBe(500);
    expect(e.message).toMatch(/did not finish rendering within 400 ms/);
  });

  it('the default template refuses what only a model template can honour', () => {
    expect(() => DEFAULT_CHAT_TEMPLATE.render([user('x')], { tools: [{ type: 'function', function: { name: 'f' } }] })).toThrow(
      /'tools' need the model's own chat template/,
    );
    expect(() => DEFAULT_CHAT_TEMPLATE.render([user('x')], { templateName: 'rag' })).toThrow(/this model has none/);
  });
});

describe('where message contents sit in the rendered prompt', () => {
  const sb = new TemplateSandbox({ timeoutMs: 2000 });
  afterAll(() => sb.close());
  const texts = (text: string, ranges: Int32Array): string[] => {
    const bytes = Buffer.from(text);
    const out: string[] = [];
    for (let k = 0; k < ranges.length; k += 2) out.push(bytes.subarray(ranges[k], ranges[k + 1]).toString());
    return out;
  };

  it("exactly, from a second rendering with markers: even a content equal to the template's own text", async () => {
    const t = await loadChatTemplate({ chatTemplate: CHATML }, sb);
    // The second user message is literally the template's turn end, and the first one a role name.
    const messages: ChatMessage[] = [
      { role: 'user', content: 'user' },
      { role: 'assistant', content: 'ok' },
      { role: 'user', content: '<|im_end|>' },
    ];
    const text = await t.render(messages);
    const marked = await t.render(messages.map((m, i) => ({ ...m, content: contentMarker(i) })));
    const spans = sentinelSpans(
      text,
      marked,
      messages.map((m) => m.content ?? ''),
    )!;
    expect(spans.map(([i, a, b]) => [i, text.slice(a, b)])).toEqual([
      [0, 'user'],
      [1, 'ok'],
      [2, '<|im_end|>'],
    ]);
    // The user's <|im_end|> is the one after "user\n", not the template's closing the first turn.
    expect(spans[2]![1]).toBe(text.lastIndexOf('<|im_end|>', text.length - '\n<|im_start|>assistant\n'.length - '<|im_end|>'.length - 1));
    // UTF-8 offsets, sorted.
    expect(texts(text, byteRanges(text, spans))).toEqual(['user', 'ok', '<|im_end|>']);
  });

  it('contents a template trims, moves (Mistral puts the system prompt before the last user turn) or repeats', async () => {
    const t = await loadChatTemplate(
      {
        chatTemplate:
          '{% for m in messages[1:] %}{% if loop.last %}[INST]{{ messages[0].content }}\n\n{{ m.content | trim }}[/INST]{% else %}[{{ m.role }}]{{ m.content }}{% endif %}{% endfor %}{{ messages[1].content }}',
      },
      sb,
    );
    const messages: ChatMessage[] = [
      { role: 'system', content: 'SYS' },
      { role: 'user', content: 'first' },
      { role: 'assistant', content: 'ok' },
      { role: 'user', content: '  last é\n' },
    ];
    const text = await t.render(messages);
    expect(text).toBe('[user]first[assistant]ok[INST]SYS\n\nlast é[/INST]first');
    const marked = await t.render(messages.map((m, i) => ({ ...m, content: contentMarker(i) })));
    const spans = sentinelSpans(
      text,
      marked,
      messages.map((m) => m.content ?? ''),
    )!;
    expect(texts(text, byteRanges(text, spans))).toEqual(['first', 'ok', 'SYS', 'last é', 'first']);
  });

  it('no match when the template changes a content otherwise; the search fallback takes only unambiguous places', () => {
    expect(sentinelSpans('<u>HI<e>', `<u>${contentMarker(0)}<e>`, ['hi'])).toBeUndefined();
    const text = '<u>a <|im_end|> b<|im_end|><u><|im_end|><|im_end|>';
    const { spans, missing } = searchSpans(text, ['a <|im_end|> b', '<|im_end|>', 'gone'], [0, 1, 2]);
    expect(spans).toEqual([[0, 3, 17]]);
    expect(missing).toEqual([1, 2]);
  });
});
