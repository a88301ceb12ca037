/**
 * MHIM-MIL masking arithmetic (host side, no tensors): which instances a teacher's scores mask, for the strategy in
 * ./mhim.ts. Kept apart so the counts can be tested against hand-computed sets (docs/methods/mhim-mil.md#masking).
 */

/** A uniform random permutation of 0..k-1 (the original's torch.randperm; ours is seeded per step). */
export type Permutation = (k: number) => readonly number[];

/** Instance scores: one row per head (v1 TransMIL: one per attention head), N columns. */
export type ScoreRows = ReadonlyArray<ArrayLike<number>>;

/**
 * Indices 0..n-1 ordered by score, descending (`largest`) or ascending; ties go to the lower index, so the order is
 * deterministic (torch.topk leaves the order among equal values unspecified).
 */
export function rankedIndices(scores: ArrayLike<number>, largest: boolean): number[] {
  const order = Array.from({ length: scores.length }, (_, i) => i);
  order.sort((a, b) => {
    const diff = (scores[b] as number) - (scores[a] as number);
    const signed = largest ? diff : -diff;
    return signed !== 0 ? signed : a - b;
  });
  return order;
}

/**
 * Vote fusion of per-head scores: each head's top-k (same k, `largest` or smallest), counted per instance; the k
 * instances with the most votes, ties to the lower index (our documented rule, docs/methods/mhim-mil.md#masking).
 */
export function voteCandidates(rows: ScoreRows, k: number, largest: boolean): number[] {
  const n = rows[0]?.length ?? 0;
  const votes = new Array<number>(n).fill(0);
  for (const row of rows) for (const index of rankedIndices(row, largest).slice(0, k)) votes[index] = (votes[index] as number) + 1;
  return rankedIndices(votes, true).slice(0, k);
}

/** "mean" fusion (an ablation of the original): k split evenly over the heads, each head's share, then the union. */
export function meanCandidates(rows: ScoreRows, k: number, largest: boolean): number[] {
  const share = Math.ceil(k / Math.max(rows.length, 1));
  const picked = new Set<number>();
  for (const row of rows) for (const index of rankedIndices(row, largest).slice(0, share)) picked.add(index);
  return [...picked];
}

export type HeadFusion = 'vote' | 'mean';

/**
 * The original's shared masking routine for a ratio r and sub-ratio q: r' = r / q (if r' > 1 then q := r, r' := 1);
 * candidates = the k = ⌈N r'⌉ top (or bottom) scored instances in rank order; with q < 1 a uniform random
 * ⌈k q⌉ of them (positions given by a permutation of k). Counts are from the full N, in float64 as the original.
 */
export function maskByScore(rows: ScoreRows, ratio: number, subRatio: number, largest: boolean, permutation: Permutation, fusion: HeadFusion = 'vote'): number[] {
  const n = rows[0]?.length ?? 0;
  if (ratio <= 0 || n === 0) return [];
  let q = subRatio;
  let r = ratio / q;
  if (r > 1) {
    q = ratio;
    r = 1;
  }
  const k = Math.min(n, Math.ceil(n * r));
  const candidates = rows.length === 1 ? rankedIndices(rows[0] as ArrayLike<number>, largest).slice(0, k) : fusion === 'vote' ? voteCandidates(rows, k, largest) : meanCandidates(rows, k, largest);
  if (q >= 1) return candidates;
  const take = Math.ceil(candidates.length * q);
  return permutation(candidates.length).slice(0, take).map((position) => candidates[position] as number);
}

export interface MaskRatios {
  /** β_r: random masking (a uniform random ⌈N β_r⌉). */
  readonly random: number;
  /** β_l: low-score masking (the ⌈N β_l⌉ lowest). */
  readonly low: number;
  /** β_h at this step (after any decay): high-score masking (HAM). */
  readonly high: number;
  /** β_hr: the random fraction of HAM's candidates kept (1 = plain HAM). */
  readonly highRandom: number;
}

export interface MaskResult {
  /** Masked instance indices, ascending and unique (the union of the strategies). */
  readonly masked: number[];
  /** Kept instance indices in ascending original order (a documented deviation from the original's set order). */
  readonly kept: number[];
  /** Per-strategy counts before the union (each counts from the full N and may repeat another's picks). */
  readonly counts: { readonly random: number; readonly low: number; readonly high: number };
}

/** Random, then low, then high masking; the mask is their union; the kept rows stay in ascending order. */
export function mhimMask(rows: ScoreRows, ratios: MaskRatios, permutations: { readonly random: Permutation; readonly high: Permutation }, fusion: HeadFusion = 'vote'): MaskResult {
  const n = rows[0]?.length ?? 0;
  // Random masking is the routine with q = 0.001 on the ascending scores: all N candidates, then a random ⌈N β_r⌉.
  const random = maskByScore(rows, ratios.random, 0.001, false, permutations.random, fusion);
  const low = maskByScore(rows, ratios.low, 1, false, permutations.random, fusion);
  const high = maskByScore(rows, ratios.high, ratios.highRandom, true, permutations.high, fusion);
  const isMasked = new Uint8Array(n);
  for (const index of [...random, ...low, ...high]) isMasked[index] = 1;
  const masked: number[] = [];
  const kept: number[] = [];
  for (let i = 0; i < n; i += 1) (isMasked[i] ? masked : kept).push(i);
  return { masked, kept, counts: { random: random.length, low: low.length, high: high.length } };
}

/** β_h(i) = ½ β_h (1 + cos(π i / T)): the high-score ratio decayed over the stage's global iterations. */
export function decayedRatio(ratio: number, iteration: number, totalIterations: number): number {
  if (totalIterations <= 0) return ratio;
  return 0.5 * ratio * (1 + Math.cos((Math.PI * iteration) / totalIterations));
}

/** m(i) = 1 + ½ (m − 1)(1 + cos(π i / T)): the teacher rate scheduled towards 1 (no warm-up). */
export function cosineMomentum(momentum: number, iteration: number, totalIterations: number): number {
  if (totalIterations <= 0) return momentum;
  return 1 + 0.5 * (momentum - 1) * (1 + Math.cos((Math.PI * iteration) / totalIterations));
}
