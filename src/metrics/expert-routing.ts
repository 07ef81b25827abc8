// Routing counts of a Mixture-of-Experts model, made fit for Prometheus: label sets of bounded size, and the expert
// load imbalance of each layer over a recent window rather than since load.
//
// Bounded labels. A series per (layer, expert) is 58 × 256 = 14 848 series for DeepSeek-V3: too many for one engine's
// scrape. At most MAX_LAYER_LABELS MoE layers and MAX_EXPERT_LABELS experts per layer get their own label values; the
// rest are summed into `other` (experts with index ≥ MAX_EXPERT_LABELS − 1 when a layer has more than MAX_EXPERT_LABELS,
// MoE layers after the first MAX_LAYER_LABELS). Membership is by index, never by rank of the counts, so a series never
// changes what it sums and every counter stays monotonic. Sums over `expert` of a layer remain exact.
//
// Imbalance window. max/mean of the tokens routed to each expert of a layer, over the tokens routed since the
// previous scrape that reported the layer, all experts counted (not the capped labels). Cumulative counts since load
// would remember a skew long gone (or hide a new one under hours of history), and the alert asks "is it skewed now".
// A window with fewer than MIN_MEAN_TOKENS_PER_EXPERT tokens per expert on average is too noisy to call (a uniform
// router's max over 64 experts at 2 tokens each is ~3× the mean by chance): the layer reports nothing that scrape and
// its window keeps growing until it holds enough. With several scrapers each sees windows between its own and the
// others' scrapes, as for tuneloop_engine_utilization_ratio.

/** Most MoE layers with their own `layer` label value; later ones are `other`. */
export const MAX_LAYER_LABELS = 64;
/** Most `expert` label values per layer, `other` included. */
export const MAX_EXPERT_LABELS = 64;
/** Mean tokens per expert a window must hold before its imbalance is reported. */
export const MIN_MEAN_TOKENS_PER_EXPERT = 8;

export const OTHER = 'other';

/** max / mean of the counts; NaN when nothing was routed. 1 is perfect balance, the expert count the worst. */
export function routingImbalance(counts: readonly number[]): number {
  if (counts.length === 0) return NaN;
  let sum = 0,
    max = 0;
  for (const c of counts) {
    sum += c;
    if (c > max) max = c;
  }
  return sum > 0 ? max / (sum / counts.length) : NaN;
}

/** The `expert` label of expert `e` in a layer of `n` experts. */
export function expertLabel(e: number, n: number): string {
  return n <= MAX_EXPERT_LABELS || e < MAX_EXPERT_LABELS - 1 ? String(e) : OTHER;
}

/** The `layer` label of the i-th MoE layer (block index `layer`). */
export function layerLabel(i: number, layer: number): string {
  return i < MAX_LAYER_LABELS ? String(layer) : OTHER;
}

/** Tokens per (layer, expert) label pair, the capped sets summed into `other`. */
export function routedTokenSeries(moeLayers: readonly number[], tokensPerExpert: readonly (readonly number[])[]): [{ layer: string; expert: string }, number][] {
  const sums = new Map<string, [{ layer: string; expert: string }, number]>();
  tokensPerExpert.forEach((row, i) => {
    const layer = layerLabel(i, moeLayers[i] ?? i);
    row.forEach((c, e) => {
      const labels = { layer, expert: expertLabel(e, row.length) };
      const key = `${labels.layer}/${labels.expert}`;
      const cur = sums.get(key);
      if (cur) cur[1] += c;
      else sums.set(key, [labels, c]);
    });
  });
  return [...sums.values()];
}

/**
 * Per-layer imbalance over a window that closes when it holds enough tokens (see the note at the top). One instance per
 * engine binding; a counter that went down or a change of shape (another model, a new engine) starts from zero.
 */
export class RoutingWindow {
  private base: number[][] | undefined;

  constructor(private readonly minMeanTokens = MIN_MEAN_TOKENS_PER_EXPERT) {}

  /** The imbalance of each MoE layer (in moeLayers order) whose window closed now; undefined for the others. */
  advance(tokensPerExpert: readonly (readonly number[])[]): (number | undefined)[] {
    if (!this.base || !sameShape(this.base, tokensPerExpert) || tokensPerExpert.some((row, i) => row.some((c, e) => c < this.base![i]![e]!))) {
      this.base = tokensPerExpert.map((row) => row.map(() => 0));
    }
    const base = this.base;
    return tokensPerExpert.map((row, i) => {
      const delta = row.map((c, e) => c - base[i]![e]!);
      const total = delta.reduce((a, b) => a + b, 0);
      if (row.length === 0 || total / row.length < this.minMeanTokens) return undefined;
      base[i] = [...row];
      return routingImbalance(delta);
    });
  }
}

function sameShape(a: readonly (readonly number[])[], b: readonly (readonly number[])[]): boolean {
  return a.length === b.length && a.every((row, i) => row.length === b[i]!.length);
}

/** One imbalance per `layer` label: the capped layers' windows reported as `other` with the worst of them (the alert
 *  asks whether any layer is skewed). */
export function imbalanceSeries(moeLayers: readonly number[], ratios: readonly (number | undefined)[]): [{ layer: string }, number][] {
  const out: [{ layer: string }, number][] = [];
  let other: number | undefined;
  ratios.forEach((r, i) => {
    if (r === undefined || !Number.isFinite(r)) return;
    const layer = layerLabel(i, moeLayers[i] ?? i);
    if (layer === OTHER) other = Math.max(other ?? 0, r);
    else out.push([{ layer }, r]);
  });
  if (other !== undefined) out.push([{ layer: OTHER }, other]);
  return out;
}
