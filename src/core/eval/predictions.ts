// The per-slide predictions table (CLAM's fold_{k}.csv, extended): slide, case, label, one probability
// column per class, argmax prediction and fold, so any metric can be recomputed outside milkit.
import { stringify } from 'csv-stringify/sync';
import { writeFileDurably } from '../io/disk.js';
import type { FileSystem } from '../io/file-system.js';

export interface PredictionRow {
  readonly slideId: string;
  readonly caseId: string;
  /** True class index. */
  readonly label: number;
  /** Class probabilities, indexed like classNames. */
  readonly probs: readonly number[];
  /** Predicted class index (argmax). */
  readonly prediction: number;
  readonly fold?: number;
}

/** Column-safe class name for `p_<class>` headers (spaces and punctuation become "_"). */
function columnName(name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]+/g, '_');
}

/** CSV text: slide_id, case_id, label, label_name, p_<class>..., prediction, prediction_name, fold. */
export function predictionsCsv(rows: readonly PredictionRow[], classNames: readonly string[]): string {
  const header = ['slide_id', 'case_id', 'label', 'label_name', ...classNames.map((c) => `p_${columnName(c)}`), 'prediction', 'prediction_name', 'fold'];
  const records = rows.map((r) => [
    r.slideId,
    r.caseId,
    String(r.label),
    classNames[r.label] ?? '',
    // Full float precision (shortest round-trip form): metrics recomputed from the CSV match exactly.
    ...classNames.map((_, c) => String(r.probs[c] ?? '')),
    String(r.prediction),
    classNames[r.prediction] ?? '',
    r.fold === undefined ? '' : String(r.fold),
  ]);
  return stringify([header, ...records]);
}

/** Writes the predictions table atomically. */
export async function writePredictionsCsv(file: string, rows: readonly PredictionRow[], classNames: readonly string[], fs?: FileSystem): Promise<void> {
  await writeFileDurably(file, predictionsCsv(rows, classNames), { ...(fs ? { fs } : {}), action: 'write the predictions table' });
}
