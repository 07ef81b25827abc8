// `tuneloop inspect FILE.gguf`: what a GGUF file holds, from its header alone (Engine.inspect), in the spirit of
// llama.cpp's `llama-gguf` and `node-llama-cpp inspect gguf`: the architecture and shapes, the tokenizer, the mix of
// tensor types with their bytes and bits per weight, and (--tensors) every tensor. The tokenizer part adds what the
// vocabulary says when loaded on its own (VocabTokenizer): the pre-tokenizer, the end-of-generation tokens, where the
// chat template comes from (embedded default, named templates, or none: the server's simple default) and load-time
// warnings. `--json` prints the ModelInspection object plus `vocabulary` (that summary). Bad input (no such file, not a GGUF, a truncated header) is one line on stderr and
// exit code 2, like every EngineError the CLI reports.
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { Engine, EngineError, VocabTokenizer, type ModelInspection } from './engine/index.js';

export const INSPECT_USAGE = `usage:
  tuneloop inspect FILE.gguf [--json] [--tensors]
      what the file holds (header only): architecture, parameters, shapes, tokenizer (pre-tokenizer, end-of-
      generation tokens, chat template source), tensor types with their bytes and bits per weight; --tensors lists
      every tensor; --json prints the whole inspection as JSON
`;

export interface InspectFormatOptions {
  /** List every tensor after the summary. */
  tensors?: boolean;
  /** Shown as the file's name; default: none. */
  file?: string;
  /** The vocabulary's own summary (vocabularySummary); omitted: not shown. */
  vocabulary?: VocabularySummary;
}

/** What the file's vocabulary says beyond the header fields, or why it could not be loaded. */
export type VocabularySummary =
  | {
      pre: string;
      eogIds: number[];
      eogTokens: string[];
      /** 'embedded': tokenizer.chat_template (the model's default); 'named': only tokenizer.chat_template.NAME
       *  entries; 'none': the server formats chats with its simple default. */
      chatTemplate: { source: 'embedded' | 'named' | 'none'; chars: number; named: { name: string; chars: number }[] };
      warnings: string[];
    }
  | { error: string };

/** Loads only the tokenizer metadata of `file`; a file without a usable vocabulary gives { error }. */
export function vocabularySummary(file: string): VocabularySummary {
  let info: VocabTokenizer['info'];
  try {
    info = VocabTokenizer.load(file).info;
  } catch (e) {
    if (e instanceof EngineError) return { error: `${e.code}: ${e.message.replace(/\s*\n\s*/g, ' ')}` };
    throw e;
  }
  const named = Object.entries(info.chatTemplates).map(([name, t]) => ({ name, chars: t.length }));
  const source = info.chatTemplate !== null ? 'embedded' : named.length > 0 ? 'named' : 'none';
  return {
    pre: info.pre,
    eogIds: info.eogIds,
    eogTokens: info.eogTokens,
    chatTemplate: { source, chars: info.chatTemplate?.length ?? 0, named },
    warnings: info.warnings,
  };
}

function vocabularyFields(v: VocabularySummary): [string, string][] {
  if ('error' in v) return [['vocabulary load', `failed: ${v.error}`]];
  const eog = v.eogIds.map((id, i) => `${id} ${v.eogTokens[i] ?? '?'}`).join(', ');
  const named = v.chatTemplate.named.map((n) => `${n.name} (${int(n.chars)} chars)`).join(', ');
  const template =
    v.chatTemplate.source === 'embedded'
      ? `embedded default (tokenizer.chat_template, ${int(v.chatTemplate.chars)} chars)${named ? `; named: ${named}` : ''}`
      : v.chatTemplate.source === 'named'
        ? `named only: ${named}`
        : "none (chats use the server's simple default)";
  const out: [string, string][] = [
    ['end of generation', eog || 'none'],
    ['chat template', template],
  ];
  if (v.warnings.length > 0) out.push(['tokenizer warnings', v.warnings.join('; ')]);
  return out;
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');

/** 4,803,840 → "4.80 M"; 1.1e9 → "1.10 B". */
function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(2)} K`;
  return String(n);
}

/** 9,676,960 → "9.23 MiB". */
function size(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${bytes} B` : `${v.toFixed(2)} ${units[u]}`;
}

/** A number the file does not state is 0: shown as "-". */
const stated = (n: number): string => (n > 0 ? int(n) : '-');

function table(rows: string[][], rightAligned: readonly boolean[]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) =>
    r
      .map((cell, c) => (rightAligned[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd(),
  );
}

/** "18 KiB at f16 (MLA latent), 10.0% of multi-head attention's 180 KiB". */
function kvCacheLine(kv: ModelInspection['kvCache']): string {
  if ('error' in kv) return `- (${kv.error.replace(/\s*\n\s*/g, ' ')})`;
  const share = kv.bytesPerTokenMha > 0 ? `, ${((100 * kv.bytesPerToken) / kv.bytesPerTokenMha).toFixed(1)}% of` : ', vs';
  return `${size(kv.bytesPerToken)} at ${kv.dtype}${kv.latent ? ' (MLA latent)' : ''}${share} multi-head attention's ${size(kv.bytesPerTokenMha)}`;
}

/** The human-readable report of an inspection (ends with a newline). */
export function formatInspection(ins: ModelInspection, options: InspectFormatOptions = {}): string {
  const out: string[] = [];
  const tensorBytes = ins.tensorTypes.reduce((a, t) => a + t.bytes, 0);
  const tk = ins.tokenizer;
  const special = [tk.bos !== null ? `bos ${tk.bos}` : 'no bos', tk.eos !== null ? `eos ${tk.eos}` : 'no eos'].join(', ');
  const heads = ins.headCount > 0 ? `${int(ins.headCount)} (KV heads ${stated(ins.headCountKv)})` : '-';
  const fields: [string, string][] = [
    ['architecture', ins.architecture || '-'],
    ['name', ins.name || '-'],
    ['parameters', `${count(ins.parameters)} (${int(ins.parameters)})`],
    ['context length', stated(ins.contextLength)],
    ['embedding length', stated(ins.embeddingLength)],
    ['layers', stated(ins.blockCount)],
    ['attention heads', heads],
    ['vocabulary', `${stated(ins.vocabSize)} tokens`],
    ['tokenizer', `${tk.model || '-'}, pre ${tk.pre || '-'}, ${special}${tk.tokens !== ins.vocabSize ? `, ${int(tk.tokens)} tokens` : ''}`],
    ...(options.vocabulary ? vocabularyFields(options.vocabulary) : []),
    ['KV cache per token', kvCacheLine(ins.kvCache)],
    ['weights', `${size(tensorBytes)} in ${int(ins.tensors.length)} tensors, ${ins.bitsPerWeight.toFixed(2)} bits per weight`],
    ['file size', `${size(ins.fileBytes)} (${int(ins.fileBytes)} bytes)`],
  ];
  if (options.file) out.push(options.file);
  const w = Math.max(...fields.map(([k]) => k.length));
  for (const [k, v] of fields) out.push(`  ${k.padEnd(w)}  ${v}`);

  out.push('', 'tensor types:');
  const rows = [['type', 'tensors', 'elements', 'bytes', 'share', 'bits/weight']];
  for (const t of ins.tensorTypes) {
    rows.push([
      t.type,
      int(t.tensors),
      int(t.elements),
      int(t.bytes),
      `${tensorBytes > 0 ? ((100 * t.bytes) / tensorBytes).toFixed(1) : '0.0'}%`,
      t.elements > 0 && t.bytes > 0 ? ((8 * t.bytes) / t.elements).toFixed(2) : '-',
    ]);
  }
  for (const line of table(rows, [false, true, true, true, true, true])) out.push(`  ${line}`);

  if (options.tensors) {
    out.push('', 'tensors:');
    const trows = [['name', 'type', 'shape', 'bytes']];
    for (const t of ins.tensors) trows.push([t.name, t.type, `[${t.shape.join(', ')}]`, int(t.bytes)]);
    for (const line of table(trows, [false, false, false, true])) out.push(`  ${line}`);
  }
  return out.join('\n') + '\n';
}

/** `tuneloop inspect`: 0 on success; EngineError (exit 2 in main) for a missing, unreadable or malformed file. */
export function inspectCommand(argv: string[], write: (s: string) => void = (s) => process.stdout.write(s)): number {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean', default: false }, tensors: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 1) {
    throw new EngineError('INVALID_ARGUMENT', positionals.length === 0 ? 'inspect needs a FILE.gguf' : `inspect takes one FILE.gguf, got ${positionals.length}`);
  }
  const file = positionals[0]!;
  const ins = Engine.inspect(file);
  const vocabulary = vocabularySummary(file);
  if (values.json) write(JSON.stringify({ ...ins, vocabulary }, null, 2) + '\n');
  else write(formatInspection(ins, { tensors: values.tensors, file: basename(file), vocabulary }));
  return 0;
}
