// The run folder's records (docs/reliability.md): results keyed by fold (a subset refreshes only its folds, the
// summary keeps the others), fold indices out of range and a changed fold count refused with exit 2, the data
// fingerprint refusing --resume over changed feature files (naming them), and the lock naming its holder and
// recovering a dead holder's lock.
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { consoleLogger } from '../../src/core/logger.js';
import { lockRunFolder } from '../../src/core/engine/run-folder.js';
import { parseMlruns } from '../helpers/mlruns-parser.js';
import { QUICKSTART, runCli, tempDir } from '../e2e/helpers.js';

const TINY3 = [
  'runtime.backend=cpu', 'data.dataset.slides=18', 'data.dataset.instances=[10,20]', 'data.dataset.featureDim=8', 'data.dataset.signalDim=2',
  'data.dataset.thumbs=false', 'train.epochs=2', 'split.folds=3', 'eval.metrics=[auc,accuracy]', 'eval.bootstrap=0',
];

interface Summary {
  folds: Array<{ fold: number; ok: boolean; metrics: Record<string, { value: number | null }> }>;
  summary: Record<string, { mean: number | null; n: number }>;
  partial?: boolean;
  missingFolds?: number[];
}

async function onlyRunDir(root: string): Promise<string> {
  const [hash] = (await readdir(root)).filter((n) => /^[0-9a-f]{8}$/.test(n));
  return path.join(root, hash as string);
}

const readSummary = async (dir: string): Promise<Summary> => JSON.parse(await readFile(path.join(dir, 'summary.json'), 'utf8')) as Summary;

describe('results keyed by fold', () => {
  it('a fold subset refreshes only its folds; an out-of-range fold and a changed fold count exit 2 before compute', async () => {
    const cwd = await tempDir('milkit-folds-');
    const args = ['cv', QUICKSTART, ...TINY3, `output.dir=${path.join(cwd, 'out')}`, `tracking.uri=${path.join(cwd, 'mlruns')}`];
    const full = await runCli(args, cwd);
    expect(full.code, full.err).toBe(0);
    const dir = await onlyRunDir(path.join(cwd, 'out'));
    const before = await readSummary(dir);
    expect(before.folds.map((f) => f.fold)).toEqual([0, 1, 2]);
    const fold0Done = await readFile(path.join(dir, 'fold-0', 'done.json'), 'utf8');

    // Only fold 1 over the finished run: folds 0 and 2 stay in the summary, the same numbers (same seed).
    const subset = await runCli([...args, '--folds', '1'], cwd);
    expect(subset.code, subset.err).toBe(0);
    const after = await readSummary(dir);
    expect(after.folds.map((f) => f.fold)).toEqual([0, 1, 2]);
    expect(after.summary).toEqual(before.summary);
    expect(after).not.toHaveProperty('partial');
    expect(await readFile(path.join(dir, 'fold-0', 'done.json'), 'utf8')).toBe(fold0Done);
    const predictions = (await readFile(path.join(dir, 'predictions.csv'), 'utf8')).trim().split('\n');
    expect(predictions).toHaveLength(1 + 18);
    // One experiment run; fold 1's first run is kept but marked as replaced by the new one.
    const runs = parseMlruns(path.join(cwd, 'mlruns')).flatMap((e) => e.runs);
    expect(runs.filter((r) => r.tags['milkit.level'] === 'experiment')).toHaveLength(1);
    const fold1 = runs.filter((r) => r.tags['milkit.fold'] === '1');
    expect(fold1).toHaveLength(2);
    const superseded = fold1.filter((r) => r.tags['milkit.superseded_by'] !== undefined);
    expect(superseded).toHaveLength(1);
    expect(superseded[0]?.tags['milkit.superseded_by']).toBe(fold1.find((r) => r !== superseded[0])?.runId);

    // `--folds 7` (a typo) over a 3-fold run: exit 2 naming the index and the fold count, nothing written.
    const typo = await runCli([...args, '--folds', '7'], cwd);
    expect(typo.code).toBe(2);
    expect(typo.err).toMatch(/--folds 7: fold 7 does not exist; the split has 3 folds \(0–2\)/);
    expect(existsSync(path.join(dir, 'fold-7'))).toBe(false);
    expect(await readSummary(dir)).toEqual(after);

    // A folder recorded with another fold count (here: its run.json says 5) is refused, naming both; --force restarts it.
    const identityFile = path.join(dir, 'run.json');
    const identity = JSON.parse(await readFile(identityFile, 'utf8')) as { folds: number };
    await writeFile(identityFile, JSON.stringify({ ...identity, folds: 5 }));
    const mismatch = await runCli([...args, '--resume'], cwd);
    expect(mismatch.code).toBe(2);
    expect(mismatch.err).toMatch(/holds a run with 5 folds; this run has 3/);
    expect(mismatch.err).toContain('--force');
    const forced = await runCli([...args, '--force'], cwd);
    expect(forced.code, forced.err).toBe(0);
    expect(JSON.parse(await readFile(identityFile, 'utf8'))).toMatchObject({ folds: 3 });
  }, 240_000);
});

describe('data identity', () => {
  it('--resume over re-written feature files exits 2 naming them; a full run without --resume starts afresh', async () => {
    const cwd = await tempDir('milkit-data-identity-');
    const exported = await runCli(['data', 'export', 'synthetic-camelyon', '--out', 'features', '--set', 'slides=12', '--set', 'featureDim=8', '--set', 'instances=[10,20]'], cwd);
    expect(exported.code, exported.err).toBe(0);
    await writeFile(path.join(cwd, 'exp.yaml'), [
      'name: identity',
      'data:',
      '  dataset: { name: features-h5, slideTable: features/slides.csv, featuresDir: features/h5_files }',
      'model: { aggregator: { name: mean-pool } }',
      'split: { mode: kfold, folds: 2, valFraction: 0.25 }',
      'train: { epochs: 1 }',
      'eval: { bootstrap: 0 }',
      'runtime: { backend: cpu }',
      '',
    ].join('\n'));
    const first = await runCli(['cv', 'exp.yaml'], cwd);
    expect(first.code, first.err).toBe(0);
    const dir = await onlyRunDir(path.join(cwd, 'outputs', 'identity'));
    const recorded = JSON.parse(await readFile(path.join(dir, 'run.json'), 'utf8')) as { data: { paths: Array<{ key: string; kind: string; count?: number }> } };
    expect(recorded.data.paths.map((p) => [p.key, p.kind])).toEqual([['slideTable', 'file'], ['featuresDir', 'folder']]);

    // Same data: resume is accepted (and runs nothing).
    const same = await runCli(['cv', 'exp.yaml', '--resume'], cwd);
    expect(same.code, same.err).toBe(0);

    // "Re-extracted" features: one h5 file rewritten (new modification time).
    const h5 = (await readdir(path.join(cwd, 'features', 'h5_files'))).sort()[0] as string;
    const later = new Date(Date.now() + 60_000);
    await utimes(path.join(cwd, 'features', 'h5_files', h5), later, later);
    const refused = await runCli(['cv', 'exp.yaml', '--resume'], cwd);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain('--resume: the data changed since');
    expect(refused.err).toContain(`1 changed (${h5})`);
    expect(refused.err).toMatch(/without --resume|--force/);

    const fresh = await runCli(['cv', 'exp.yaml'], cwd);
    expect(fresh.code, fresh.err).toBe(0);
    expect(fresh.err).toMatch(/the data changed since the results there were computed/);
    const resumedAgain = await runCli(['cv', 'exp.yaml', '--resume'], cwd);
    expect(resumedAgain.code, resumedAgain.err).toBe(0);
  }, 240_000);
});

describe('run-folder lock', () => {
  it('a second process on the folder exits 2 naming the holder pid; a dead holder\'s lock is taken over', async () => {
    const cwd = await tempDir('milkit-lock-');
    const args = ['cv', QUICKSTART, ...TINY3, 'split.folds=2', `output.dir=${path.join(cwd, 'out')}`, 'tracking.enabled=false'];
    const first = await runCli(args, cwd);
    expect(first.code, first.err).toBe(0);
    const dir = await onlyRunDir(path.join(cwd, 'out'));

    // Held by a live process (this one, through the same lock a run takes).
    const logger = consoleLogger('error', () => undefined);
    const release = await lockRunFolder(dir, logger, 'cv held-by-test');
    try {
      const second = await runCli([...args, '--resume'], cwd);
      expect(second.code).toBe(2);
      expect(second.err).toContain(`is in use by pid ${process.pid} on ${hostname()}`);
      expect(second.err).toContain('milkit cv held-by-test');
    } finally {
      await release();
    }

    // Left by a process that is gone (what kill -9 leaves): taken over at once.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout);
    await mkdir(path.join(dir, '.milkit.lock'));
    await writeFile(path.join(dir, '.milkit.lock.json'), JSON.stringify({ pid: deadPid, host: hostname(), startedAt: new Date().toISOString(), command: 'cv' }));
    const third = await runCli([...args, '--resume'], cwd);
    expect(third.code, third.err).toBe(0);
    expect(third.err).toContain(`was left by pid ${deadPid}, which is gone; taking it over`);
    expect(existsSync(path.join(dir, '.milkit.lock'))).toBe(false);
  }, 240_000);
});
