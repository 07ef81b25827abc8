// Converts an F32/F16/BF16 GGUF into llama.cpp's quantization presets with llama.cpp's own quantizer
// (tools/llama-quantize/: built at first use against node-llama-cpp's prebuilt libllama), and prints the per-tensor
// type mix llama.cpp chose for each.
//
//   node --import tsx tools/make-quantized-model.ts --in model-f32.gguf --out-dir .tmp/q [--presets Q4_K_M,Q8_0] [--threads 2]
//   node --import tsx tools/make-quantized-model.ts --list              presets and their llama_ftype values (from llama.h)
//   node --import tsx tools/make-quantized-model.ts --inspect FILE      tensor types of any GGUF
//
// Output files are named <input stem>-<PRESET>.gguf in --out-dir (default: beside the input).
import { basename, dirname, join, resolve } from 'node:path';
import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { LLAMA_CPP_PRESETS, formatTypeMix, inspectGguf, llamaFtypes, llamaQuantize } from './llama-quantize/llama-quantize.js';

const USAGE = `usage: make-quantized-model --in FILE.gguf [--out-dir DIR] [--presets ${LLAMA_CPP_PRESETS.join(',')}] [--threads N] [--pure] [--quiet]
       make-quantized-model --list
       make-quantized-model --inspect FILE.gguf`;

function fail(msg: string): never {
  process.stderr.write(`${msg}\n${USAGE}\n`);
  process.exit(2);
}

function main(): void {
  const { values } = parseArgs({
    options: {
      in: { type: 'string' },
      'out-dir': { type: 'string' },
      presets: { type: 'string', default: LLAMA_CPP_PRESETS.join(',') },
      threads: { type: 'string' },
      pure: { type: 'boolean' },
      quiet: { type: 'boolean' },
      list: { type: 'boolean' },
      inspect: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values.list) {
    for (const [name, value] of llamaFtypes()) process.stdout.write(`${name.padEnd(8)} ${value}\n`);
    return;
  }
  if (values.inspect !== undefined) {
    const { fileType, tensors } = inspectGguf(values.inspect);
    process.stdout.write(`general.file_type ${fileType ?? '(none)'}\n`);
    for (const t of tensors) process.stdout.write(`${t.name.padEnd(28)} ${t.type.padEnd(7)} ${t.ne.join('x').padEnd(12)} ${t.bytes}\n`);
    return;
  }
  if (values.in === undefined) fail('--in is required');
  const input = resolve(values.in);
  const known = llamaFtypes();
  const presets = values.presets.split(',').filter((p) => p !== '');
  for (const p of presets) if (!known.has(p)) fail(`unknown preset '${p}' (this llama.cpp knows ${[...known.keys()].join(', ')})`);
  let threads: number | undefined;
  if (values.threads !== undefined) {
    threads = Number(values.threads);
    if (!Number.isInteger(threads) || threads <= 0) fail(`--threads must be a positive integer, got '${values.threads}'`);
  }
  const outDir = resolve(values['out-dir'] ?? dirname(input));
  const stem = basename(input)
    .replace(/\.gguf$/i, '')
    .replace(/-(f32|f16|bf16)$/i, '');
  for (const preset of presets) {
    const out = join(outDir, `${stem}-${preset}.gguf`);
    const t0 = performance.now();
    llamaQuantize(input, out, preset, { ...(threads !== undefined ? { threads } : {}), ...(values.pure ? { pure: true } : {}) });
    const seconds = (performance.now() - t0) / 1000;
    const { fileType, tensors } = inspectGguf(out);
    const mb = statSync(out).size / 1e6;
    process.stdout.write(`wrote ${out}\n  ${preset} (llama_ftype ${known.get(preset)}, file_type ${fileType}), ${mb.toFixed(2)} MB in ${seconds.toFixed(2)} s\n`);
    if (!values.quiet) process.stdout.write(`${formatTypeMix(tensors).replace(/^/gm, '    ')}\n`);
  }
}

main();
