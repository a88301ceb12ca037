// An independent reader of MLflow's file-store layout, written from the documented rules (docs/methods/mlflow.md#file-store-layout)
// and sharing no code with src/core/tracking: tests read what milkit wrote the way `mlflow ui` would.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

export interface ParsedMetric {
  readonly timestamp: number;
  readonly value: number;
  readonly step: number;
}

export interface ParsedRun {
  readonly runId: string;
  readonly meta: Record<string, unknown>;
  readonly metaText: string;
  readonly status: 'RUNNING' | 'SCHEDULED' | 'FINISHED' | 'FAILED' | 'KILLED';
  readonly lifecycleStage: string;
  readonly params: Record<string, string>;
  readonly tags: Record<string, string>;
  readonly metrics: Record<string, ParsedMetric[]>;
  readonly artifacts: string[];
}

export interface ParsedExperiment {
  readonly id: string;
  readonly meta: Record<string, unknown>;
  readonly metaText: string;
  readonly name: string;
  readonly runs: ParsedRun[];
}

const STATUS = ['', 'RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'] as const;

function files(dir: string, prefix = ''): Array<[string, string]> {
  if (!existsSync(dir)) return [];
  const out: Array<[string, string]> = [];
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    const key = prefix ? `${prefix}/${name}` : name;
    if (statSync(full).isDirectory()) out.push(...files(full, key));
    else out.push([key, full]);
  }
  return out;
}

/** Python float() of a metric value field. */
function pyFloat(text: string): number {
  const t = text.toLowerCase();
  if (t === 'nan') return NaN;
  if (t === 'inf' || t === 'infinity') return Infinity;
  if (t === '-inf' || t === '-infinity') return -Infinity;
  const v = Number(text);
  if (text.trim() === '' || Number.isNaN(v)) throw new Error(`not a float: ${text}`);
  return v;
}

function parseMetricFile(file: string): ParsedMetric[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  if (lines[lines.length - 1] !== '') throw new Error(`${file}: does not end with a newline`);
  return lines.slice(0, -1).map((line) => {
    const fields = line.trim().split(' ');
    if (fields.length !== 2 && fields.length !== 3) throw new Error(`${file}: metric line "${line}" has ${fields.length} fields`);
    return { timestamp: Number.parseInt(fields[0] ?? '', 10), value: pyFloat(fields[1] ?? ''), step: fields.length === 3 ? Number.parseInt(fields[2] ?? '', 10) : 0 };
  });
}

/** Reads every active experiment and its runs; skips what MLflow would skip (id mismatch, no meta.yaml). */
export function parseMlruns(root: string): ParsedExperiment[] {
  const experiments: ParsedExperiment[] = [];
  for (const id of readdirSync(root).sort()) {
    const dir = path.join(root, id);
    if (id === '.trash' || id === 'models' || !statSync(dir).isDirectory() || !existsSync(path.join(dir, 'meta.yaml'))) continue;
    const metaText = readFileSync(path.join(dir, 'meta.yaml'), 'utf8');
    const meta = YAML.parse(metaText) as Record<string, unknown>;
    if (meta.experiment_id !== id) continue;
    const runs: ParsedRun[] = [];
    for (const runId of readdirSync(dir).sort()) {
      const runDir = path.join(dir, runId);
      if (['tags', 'datasets', 'traces'].includes(runId) || !statSync(runDir).isDirectory() || !existsSync(path.join(runDir, 'meta.yaml'))) continue;
      const runMetaText = readFileSync(path.join(runDir, 'meta.yaml'), 'utf8');
      const runMeta = YAML.parse(runMetaText) as Record<string, unknown>;
      if (String(runMeta.experiment_id) !== id) continue;
      const code = typeof runMeta.status === 'number' ? runMeta.status : 1;
      runs.push({
        runId,
        meta: runMeta,
        metaText: runMetaText,
        status: (STATUS[code] || 'RUNNING') as ParsedRun['status'],
        lifecycleStage: String(runMeta.lifecycle_stage ?? 'active'),
        params: Object.fromEntries(files(path.join(runDir, 'params')).map(([k, f]) => [k, readFileSync(f, 'utf8')])),
        tags: Object.fromEntries(files(path.join(runDir, 'tags')).map(([k, f]) => [k, readFileSync(f, 'utf8')])),
        metrics: Object.fromEntries(files(path.join(runDir, 'metrics')).map(([k, f]) => [k, parseMetricFile(f)])),
        artifacts: files(path.join(runDir, 'artifacts')).map(([k]) => k),
      });
    }
    experiments.push({ id, meta, metaText, name: String(meta.name), runs });
  }
  return experiments;
}

/** Top-level keys of a YAML mapping in file order. */
export function yamlKeyOrder(text: string): string[] {
  return text.split('\n').filter((line) => /^[A-Za-z_]+:/.test(line)).map((line) => line.slice(0, line.indexOf(':')));
}
