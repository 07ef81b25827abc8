// A deliberately corrupted copy of the shipped model, for tests that need a candidate which fails verification.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseGguf } from '../../tools/lib/gguf-reader.js';
import { GGML_TYPE, f16ToF32, f32ToF16 } from '../../tools/lib/gguf-writer.js';
import { MODEL } from '../controlplane/harness.js';

/** A copy of the model with Gaussian noise (`noise` × each tensor's RMS, default 0.6) on every FFN down-projection and attention
 *  output: same tokenizer and shape, visibly different next-token distributions. */
export function writeCorruptedModel(path: string, noise = 0.6): void {
  const buf = readFileSync(MODEL);
  const file = parseGguf(buf);
  let seed = 12345;
  const uniform = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) + 0.5) / 4294967296;
  const gauss = (): number => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  for (const [name, t] of file.tensors) {
    if (t.type !== GGML_TYPE.F16 || !/ffn_down|attn_output/.test(name)) continue;
    const view = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
    const n = t.bytes.byteLength / 2;
    let sq = 0;
    for (let i = 0; i < n; i++) sq += f16ToF32(view.getUint16(2 * i, true)) ** 2;
    const scale = noise * Math.sqrt(sq / n);
    for (let i = 0; i < n; i++) view.setUint16(2 * i, f32ToF16(f16ToF32(view.getUint16(2 * i, true)) + scale * gauss()), true);
  }
  writeFileSync(path, buf);
}
