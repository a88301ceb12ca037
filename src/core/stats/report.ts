// How comparisons are read back and explained: fold predictions from predictions.csv, and the method footnote
// every comparison table carries (sweep table.md, `milkit runs compare --baseline`, the sweep run's MLflow note).
import { readFile } from 'node:fs/promises';
import { parse } from 'csv-parse/sync';
import type { ComparisonResult, FoldPredictionSet } from './compare.js';

/**
 * The other label levels predictions.csv may carry after its flat columns, as src/core/eval/predictions.ts writes them:
 * the level's label column and the prefix of its probability columns. A fold metric named `<level>_<metric>` (e.g.
 * `coarse_auc`) is `<metric>` computed on that level's predictions.
 */
export const PREDICTION_LEVELS: ReadonlyArray<{ readonly level: string; readonly labelColumn: string; readonly probPrefix: string }> = [
  { level: 'coarse', labelColumn: 'coarse_label', probPrefix: 'pc_' },
];

/** A fold's predictions.csv (slide_id, case_id, label, p_<class>...) as a prediction set; undefined when absent or unreadable. */
export async function readFoldPredictions(file: string): Promise<FoldPredictionSet | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const rows = parse(text, { columns: true, skip_empty_lines: true }) as Array<Record<string, string>>;
  const first = rows[0];
  if (first === undefined) return undefined;
  const probColumns = Object.keys(first).filter((k) => k.startsWith('p_'));
  if (probColumns.length < 2 || !('slide_id' in first) || !('label' in first)) return undefined;
  const levels: Record<string, FoldPredictionSet> = {};
  const slideIds = rows.map((r) => r.slide_id ?? '');
  const caseIds = rows.map((r) => r.case_id || r.slide_id || '');
  for (const { level, labelColumn, probPrefix } of PREDICTION_LEVELS) {
    const columns = Object.keys(first).filter((k) => k.startsWith(probPrefix));
    // A level is usable only when every slide has its label (a slide without one has empty cells).
    if (columns.length < 2 || !(labelColumn in first) || rows.some((r) => (r[labelColumn] ?? '') === '')) continue;
    levels[level] = { slideIds, caseIds, labels: rows.map((r) => Number(r[labelColumn])), probs: rows.map((r) => columns.map((c) => Number(r[c]))), numClasses: columns.length };
  }
  return {
    slideIds,
    caseIds,
    labels: rows.map((r) => Number(r.label)),
    probs: rows.map((r) => probColumns.map((c) => Number(r[c]))),
    numClasses: probColumns.length,
    ...(Object.keys(levels).length > 0 ? { levels } : {}),
  };
}

/** What the numbers mean and what they assume (the `[^stats]` footnote). */
export function methodFootnote(result: ComparisonResult): string {
  const alpha = result.alpha;
  return [
    `[^stats]: Δ = row − baseline. **Corrected resampled t-test** (Nadeau & Bengio 2003) over the J folds × repeats both rows finished on the same test slides:`,
    `    t = mean(Δ) / √((1/J + n_test/n_train) · s²) with J − 1 degrees of freedom, two-sided; the n_test/n_train term corrects for the training sets the folds share (the plain paired t-test rejects far too often).`,
    `    p is Holm-adjusted across the rows compared with the same baseline (per metric and dataset). Marks: ▲ significantly higher, ▼ significantly lower, ≈ no significant difference at α = ${alpha}.`,
    `    It assumes the folds are exchangeable resamples of one population; with few folds it has little power, so ≈ means "not shown", not "equal".`,
    `    **DeLong** (binary AUC only) and the **paired bootstrap** (${result.bootstrapResamples} resamples of patients, percentile CI, p = 2·(1 + min(#Δ* ≤ 0, #Δ* ≥ 0))/(B + 1)) run on the pooled out-of-fold test predictions of each repeat (for a coarse_* metric, the coarse-level ones)`,
    `    (of each fold when test sets overlap), and the table shows their median over repeats. Both treat the trained models as fixed: they measure the test-set noise only, not the training variance, so they are smaller than the t-test's and do not set the mark.`,
    `    Failed folds and folds evaluated on different slides are left out and listed under Warnings, never paired.`,
  ].join('\n');
}

