// Plain-text reports of finished runs: per-fold metrics and the Table-1-style mean ± std summary.
import type { ExperimentResult } from './run.js';

function fmt(value: number | null | undefined, digits = 4): string {
  return value === null || value === undefined || Number.isNaN(value) ? 'n/a' : value.toFixed(digits);
}

/** Per-fold lines and a `metric: mean ± std (n folds)` block, std being the sample std (ddof=1). */
export function renderRunReport(result: ExperimentResult): string {
  const lines: string[] = [];
  const metricNames = [...new Set(result.folds.flatMap((f) => Object.keys(f.metrics)))];
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
      String((fold.bestEpoch ?? 0) + 1),
      fmt((fold.secondsPerSlide ?? 0) * 1000, 2),
    ].join('\t'));
  }
  lines.push('');
  const okCount = result.folds.filter((f) => f.ok).length;
  lines.push(`summary over ${okCount} fold(s) (mean ± sample std, ddof=1):`);
  for (const [name, s] of Object.entries(result.summary)) {
    lines.push(`  test/${name}: ${fmt(s.mean)} ± ${fmt(s.std)}  (n=${s.n})`);
  }
  const times = result.folds.filter((f) => f.ok && f.secondsPerSlide !== undefined).map((f) => (f.secondsPerSlide as number) * 1000);
  if (times.length) lines.push(`  time per slide (forward): ${fmt(times.reduce((a, b) => a + b, 0) / times.length, 2)} ms`);
  lines.push(`outputs: ${result.outDir}`);
  return lines.join('\n');
}
