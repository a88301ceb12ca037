// Per-class scores and confusion matrices of a labelling level (the fine and the coarse level of a hierarchical
// task, docs/methods/hmil.md#milkit-implementation): precision, recall (sensitivity) and F1 of each class
// one-vs-rest from the argmax predictions (0/0 counts as 0, as scikit-learn's zero_division=0).
import type { MetricValue } from '../../registry/contracts/metric.js';
import { argmaxRows, classCounts, confusionMatrix } from './classification.js';

export interface LevelPredictions {
  readonly labels: readonly number[];
  readonly probs: ReadonlyArray<readonly number[]>;
  readonly classNames: readonly string[];
}

export interface LevelReport {
  readonly classNames: readonly string[];
  /** Rows = true class, columns = predicted class. */
  readonly confusion: number[][];
  readonly perClass: ReadonlyArray<{ readonly name: string; readonly support: number; readonly precision: number; readonly recall: number; readonly f1: number }>;
}

/** A class name as a metric-key segment (MLflow keys: letters, digits, `_ - . /` and spaces; we keep `_ - .`). */
export function metricSegment(name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]+/g, '_');
}

export function levelReport(level: LevelPredictions): LevelReport {
  const numClasses = level.classNames.length;
  const predictions = argmaxRows(level.probs);
  const confusion = confusionMatrix(level.labels, predictions, numClasses);
  const ratio = (a: number, b: number): number => (b === 0 ? 0 : a / b);
  const perClass = level.classNames.map((name, c) => {
    const { tp, fp, fn } = classCounts(confusion, c);
    const precision = ratio(tp, tp + fp);
    const recall = ratio(tp, tp + fn);
    return { name, support: tp + fn, precision, recall, f1: ratio(2 * tp, 2 * tp + fp + fn) };
  });
  return { classNames: [...level.classNames], confusion, perClass };
}

/** `<prefix>precision_<class>`, `<prefix>recall_<class>`, `<prefix>f1_<class>` for every class of the level. */
export function perClassMetrics(report: LevelReport, prefix: string): Record<string, MetricValue> {
  const out: Record<string, MetricValue> = {};
  for (const { name, precision, recall, f1 } of report.perClass) {
    const segment = metricSegment(name);
    out[`${prefix}precision_${segment}`] = { value: precision };
    out[`${prefix}recall_${segment}`] = { value: recall };
    out[`${prefix}f1_${segment}`] = { value: f1 };
  }
  return out;
}
