// The Youden-optimal threshold of binary scores (docs/methods/metrics.md#youden-threshold): over the ROC thresholds
// (the distinct scores, highest first, after +∞), the first that maximises TPR − FPR, i.e. scikit-learn's
// roc_curve followed by argmin(FPR − TPR) as MHIM-MIL and DTFD-MIL compute it. Slides with p ≥ threshold are positive.
import type { MetricInput } from 'milkit';

export interface YoudenPrediction {
  readonly threshold: number;
  /** 0/1 prediction per slide at the threshold. */
  readonly predictions: number[];
}

/** p(class 1) per slide and the predictions at the Youden threshold; undefined unless binary with both classes present. */
export function youdenPredictions(input: MetricInput): YoudenPrediction | undefined {
  if (input.numClasses !== 2) return undefined;
  const scores = input.probs.map((row) => row[1] as number);
  const positives = input.labels.filter((y) => y === 1).length;
  const negatives = input.labels.length - positives;
  if (positives === 0 || negatives === 0) return undefined;
  const thresholds = [...new Set(scores)].sort((a, b) => b - a);
  let best = { threshold: Number.POSITIVE_INFINITY, j: 0 };
  for (const threshold of thresholds) {
    let tp = 0;
    let fp = 0;
    scores.forEach((s, i) => {
      if (s >= threshold) {
        if (input.labels[i] === 1) tp += 1;
        else fp += 1;
      }
    });
    const j = tp / positives - fp / negatives;
    if (j > best.j) best = { threshold, j };
  }
  return { threshold: best.threshold, predictions: scores.map((s) => (s >= best.threshold ? 1 : 0)) };
}
