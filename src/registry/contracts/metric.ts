// Metric plugins: slide-level predictions → one number (or "undefined" with the reason, never a silent default).

export interface MetricInput {
  /** True labels in [0, C). */
  readonly labels: readonly number[];
  /** Per-slide class probabilities, rows sum to 1. */
  readonly probs: readonly (readonly number[])[];
  readonly numClasses: number;
}

/** `value: null` means undefined for this input (e.g. AUC of a single-class fold), `reason` says why. */
export type MetricValue = { readonly value: number } | { readonly value: null; readonly reason: string };

export interface Metric {
  compute(input: MetricInput): MetricValue;
}

export interface MetricCapabilities {
  /** Larger is better (model selection direction). */
  readonly higherIsBetter: boolean;
}

export const DEFAULT_METRIC_CAPABILITIES: MetricCapabilities = { higherIsBetter: true };
