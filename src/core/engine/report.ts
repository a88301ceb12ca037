// Plain-text reports of finished runs: per-fold metrics and the Table-1-style mean ± std summary.
import type { ExperimentResult } from './run.js';

function fmt(value: number | null | undefined, digits = 4): string {
  return value === null || value === undefined || Number.isNaN(value) ? 'n/a' : value.toFixed(digits);
}

export interface ReportOptions {
  /**
   * The configured evaluation metrics (`eval.metrics`): the per-fold table shows only these, so methods that
   * report many more numbers per fold (HDMIL: the all-instances metrics, kept rates, per-stage times) stay
   * readable; the others appear in the summary. Default: every metric in the per-fold table.
   */
  readonly primaryMetrics?: readonly string[];
}

/** Per-fold lines and a `metric: mean ± std (n folds)` block, std being the sample std (ddof=1). */
export function renderRunReport(result: ExperimentResult, options: ReportOptions = {}): string {
  const lines: string[] = [];
  const allNames = [...new Set(result.folds.flatMap((f) => Object.keys(f.metrics)))];
  const primary = options.primaryMetrics;
  const metricNames = primary ? allNames.filter((m) => primary.includes(m)) : allNames;
  const hidden = allNames.length - metricNames.length;
  const header = ['fold', ...metricNames.map((m) => `test/${m}`), 'instance_auc', 'best_epoch', 'ms/slide'];
  lines.push(header.join('\t'));
  for (const fold of result.folds) {
    if (!fold.ok) {
      lines.push(`${fold.fold}\tFAILED: ${fold.error ?? 'unknown error'}`);
      continue;
    }
    lines.push([
      String(fold.fold),
      ...metricNames.map((m) => {
        const v = fold.metrics[m];
        return v === undefined ? 'n/a' : v.value === null ? `undefined (${v.reason})` : fmt(v.value);
      }),
      fold.instanceAuc ? (fold.instanceAuc.value === null ? 'n/a' : fmt(fold.instanceAuc.value)) : '-',
      // The same number as metrics.json and MLflow's best_epoch: epochs count from 0, as MLflow's step axis does.
      String(fold.bestEpoch ?? 0),
      fmt((fold.secondsPerSlide ?? 0) * 1000, 2),
    ].join('\t'));
  }
  if (hidden > 0) lines.push(`(${hidden} more metric${hidden === 1 ? '' : 's'} per fold in the summary below and in summary.json)`);
  lines.push('');
  const okCount = result.folds.filter((f) => f.ok).length;
  const repeats = Math.max(0, ...Object.values(result.summary).map((s) => s.repeats ?? 0));
  lines.push(repeats > 1
    ? `summary over ${okCount} fold(s) in ${repeats} repeats (mean ± sample std of the per-repeat means, ddof=1):`
    : `summary over ${okCount} fold(s) (mean ± sample std, ddof=1):`);
  for (const [name, s] of Object.entries(result.summary)) {
    lines.push(`  test/${name}: ${fmt(s.mean)} ± ${fmt(s.std)}  (n=${s.n}${s.repeats !== undefined && s.repeats > 1 ? `, ${s.repeats} repeats` : ''})`);
  }
  if (result.pooled) {
    const pooled = result.pooled;
    const entries = Object.entries(pooled.metrics).filter((e): e is [string, NonNullable<(typeof e)[1]>] => e[1] !== null);
    if (entries.length > 0) {
      const repeats = Math.max(...entries.map(([, i]) => i.units));
      lines.push(`pooled out-of-fold test predictions (${Math.round(pooled.level * 100)}% CI: patients resampled, ${pooled.resamples} resamples, stream "${pooled.stream}"${repeats > 1 ? `; median over ${repeats} repeats` : ''}):`);
      for (const [name, interval] of entries) {
        const partial = interval.pooledFolds < interval.plannedFolds ? `  (${interval.pooledFolds}/${interval.plannedFolds} folds: failed folds left out)` : '';
        lines.push(`  test/${name}: ${fmt(interval.value)} [${fmt(interval.ci[0])}, ${fmt(interval.ci[1])}]${partial}`);
      }
    }
  }
    const times = result.folds.filter((f) => f.ok && f.secondsPerSlide !== undefined).map((f) => (f.secondsPerSlide as number) * 1000);
  if (times.length) lines.push(`  time per slide (forward): ${fmt(times.reduce((a, b) => a + b, 0) / times.length, 2)} ms`);
  lines.push(`outputs: ${result.outDir}`);
  return lines.join('\n');
}
