// What each request asks for: a prompt and an output length, drawn from a seeded RNG so that two runs with the same
// seed (and an HTTP run and an in-process run) send exactly the same workload.
import { readFileSync } from 'node:fs';

/** Built-in prompts: short Shakespeare-like openings, since the default model is trained on tinyshakespeare and
 *  anything else would be out of distribution (slower to settle, odd token counts). */
export const BUILTIN_PROMPTS: readonly string[] = [
  'ROMEO:\nBut soft, what light through yonder window breaks?',
  'JULIET:\nO gentle night, how slowly dost thou pass!',
  'KING RICHARD III:\nNow is the winter of our discontent',
  'HAMLET:\nWhat say you, my lord, to this strange news?',
  'First Citizen:\nBefore we proceed any further, hear me speak.',
  'MENENIUS:\nI tell you, friends, most charitable care',
  'LADY CAPULET:\nWhat noise is this? Call hither the nurse.',
  'DUKE VINCENTIO:\nCome hither, Isabel; your brother lives.',
  "PETRUCHIO:\nGood morrow, Kate; for that's your name, I hear.",
  'BUCKINGHAM:\nMy lord, the citizens are mum, and speak not.',
  'GLOUCESTER:\nWhy, what a peevish fool was that of Crete,',
  'QUEEN ELIZABETH:\nAh, who shall hinder me to wail and weep?',
  "MERCUTIO:\nNay, I'll conjure too. Romeo! humours! madman!",
  "PROSPERO:\nThou shalt be pinch'd as thick as honeycomb,",
  'CORIOLANUS:\nYou common cry of curs! whose breath I hate',
  'NURSE:\nFaith, I can tell how old she is unto an hour.',
];

/** Prompts from a file, one per line; blank lines are skipped. A literal `\n` in a line stands for a newline, so a
 *  multi-line prompt (speaker heading, then speech) fits on one line. */
export function loadPromptFile(path: string): string[] {
  const prompts = readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .filter((l) => l.trim().length > 0)
    .map((l) => l.replace(/\\n/g, '\n'));
  if (prompts.length === 0) throw new Error(`prompt file ${path} has no prompts (one per line expected)`);
  return prompts;
}

/** Output length distribution: `64` (fixed), `uniform:A-B` (integers, both ends included), `exp:MEAN`
 *  (exponential, rounded, at least 1). */
export type OutputLenDist = { kind: 'fixed'; tokens: number } | { kind: 'uniform'; min: number; max: number } | { kind: 'exp'; mean: number };

export function parseOutputLen(spec: string): OutputLenDist {
  const s = spec.trim();
  const posInt = (x: string): number | undefined => (/^\d+$/.test(x) && Number(x) >= 1 ? Number(x) : undefined);
  const fixed = posInt(s);
  if (fixed !== undefined) return { kind: 'fixed', tokens: fixed };
  const uni = /^uniform:(\d+)-(\d+)$/.exec(s);
  if (uni) {
    const min = posInt(uni[1]!),
      max = posInt(uni[2]!);
    if (min === undefined || max === undefined || min > max) {
      throw new Error(`--output-len uniform:A-B needs 1 <= A <= B, got '${spec}'`);
    }
    return { kind: 'uniform', min, max };
  }
  const exp = /^exp:(\d+(?:\.\d+)?)$/.exec(s);
  if (exp) {
    const mean = Number(exp[1]);
    if (!(mean >= 1)) throw new Error(`--output-len exp:MEAN needs MEAN >= 1, got '${spec}'`);
    return { kind: 'exp', mean };
  }
  throw new Error(`--output-len expects N, uniform:A-B or exp:MEAN, got '${spec}'`);
}

export function formatOutputLen(d: OutputLenDist): string {
  if (d.kind === 'fixed') return String(d.tokens);
  if (d.kind === 'uniform') return `uniform:${d.min}-${d.max}`;
  return `exp:${d.mean}`;
}

/** A uniform [0, 1) generator. */
export type Rng = () => number;

/** mulberry32: tiny, fast and good enough for workload shaping; Math.random cannot be seeded. */
export function createRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function sampleOutputLen(d: OutputLenDist, rng: Rng): number {
  if (d.kind === 'fixed') return d.tokens;
  if (d.kind === 'uniform') return d.min + Math.floor(rng() * (d.max - d.min + 1));
  // 1 - u lies in (0, 1], so the log is finite.
  return Math.max(1, Math.round(-d.mean * Math.log(1 - rng())));
}

export interface RequestSpec {
  /** Position in the run's request sequence, from 0. */
  index: number;
  prompt: string;
  maxTokens: number;
  /** Per-request sampling seed: the same index gets the same tokens over HTTP and in process. */
  seed: number;
}

/** The run's request sequence. Prompts and lengths come from their own RNG, separate from arrival times, so the
 *  i-th request is the same in open- and closed-loop runs with one seed. */
export function createWorkload(prompts: readonly string[], outputLen: OutputLenDist, seed: number): (index: number) => RequestSpec {
  if (prompts.length === 0) throw new Error('the workload needs at least one prompt');
  const rng = createRng(seed ^ 0x5bd1e995);
  const made: RequestSpec[] = [];
  return (index) => {
    // Requests are asked for in order in practice; fill any gap so the sequence never depends on call order.
    while (made.length <= index) {
      const i = made.length;
      made.push({
        index: i,
        prompt: prompts[Math.floor(rng() * prompts.length)]!,
        maxTokens: sampleOutputLen(outputLen, rng),
        seed: (seed + i * 7919) >>> 0,
      });
    }
    return made[index]!;
  };
}
