import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../../plugins/index.js';
import { main } from '../../../../src/core/cli/main.js';
import type { CliIo } from '../../../../src/core/cli/app.js';
import type { Fold } from '../../../../src/core/data/splits.js';

function capture(): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t), stdoutIsTTY: false };
}

async function milkit(args: string[], cwd: string): Promise<{ code: number; out: string; err: string }> {
  const io = capture();
  const code = await main(args, { manifest: builtinManifest(), io, cwd, env: {} });
  return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
}

describe('milkit splits / milkit data export', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'milkit-cli-splits-'));
  writeFileSync(
    path.join(dir, 'exp.yaml'),
    ['name: tiny', 'seed: 3', 'data:', '  dataset: { name: synthetic-camelyon, slides: 20, slidesPerCase: 2, instances: [5, 10], featureDim: 4, signalDim: 2 }', 'model:', '  aggregator: { name: mean-pool }', 'split: { mode: kfold, folds: 4, valFraction: 0.25 }', ''].join('\n'),
  );

  it('prints per-fold counts and writes splits.json and CLAM csv files', async () => {
    const { code, out, err } = await milkit(['splits', 'exp.yaml', '--out', 'out'], dir);
    expect(err).toContain('wrote 4 fold(s) to');
    expect(code).toBe(0);
    expect(out.split('\n')[0]).toBe('kfold: 4 fold(s), 20 slides, seed 3');
    expect(out).toContain('fold  part   slides  cases  normal_tissue  tumor_tissue');
    const saved = JSON.parse(readFileSync(path.join(dir, 'out', 'splits.json'), 'utf8')) as { mode: string; seed: number; folds: Fold[] };
    expect(saved.mode).toBe('kfold');
    expect(saved.folds).toHaveLength(4);
    expect(readFileSync(path.join(dir, 'out', 'splits_0.csv'), 'utf8').split('\n')[0]).toBe(',train,val,test');
  });

  it('reads its own CLAM files back into the same folds (split.file)', async () => {
    const first = JSON.parse(readFileSync(path.join(dir, 'out', 'splits.json'), 'utf8')) as { folds: Fold[] };
    const { code } = await milkit(['splits', 'exp.yaml', 'split.file=out', '--out', 'again', '--json'], dir);
    expect(code).toBe(0);
    const again = JSON.parse(readFileSync(path.join(dir, 'again', 'splits.json'), 'utf8')) as { folds: Fold[] };
    expect(again.folds).toEqual(first.folds);
  });

  it('is byte-identical across invocations with the same seed and differs with another', async () => {
    await milkit(['splits', 'exp.yaml', '--out', 'same'], dir);
    expect(readFileSync(path.join(dir, 'same', 'splits_2.csv'), 'utf8')).toBe(readFileSync(path.join(dir, 'out', 'splits_2.csv'), 'utf8'));
    await milkit(['splits', 'exp.yaml', 'split.seed=4', '--out', 'other'], dir);
    expect(readFileSync(path.join(dir, 'other', 'splits.json'), 'utf8')).not.toBe(readFileSync(path.join(dir, 'out', 'splits.json'), 'utf8'));
  });

  it('exports a synthetic dataset as CLAM h5 + slide table that features-h5 splits identically', async () => {
    const { code, out } = await milkit(['data', 'export', 'synthetic-camelyon', '--out', 'cam', '--set', 'slides=20', '--set', 'slidesPerCase=2', '--set', 'instances=[5,10]', '--set', 'featureDim=4', '--set', 'signalDim=2', '--seed', '3'], dir);
    expect(code).toBe(0);
    expect(out).toContain('wrote 20 slides: cam/h5_files/<slide_id>.h5 and cam/slides.csv');
    writeFileSync(path.join(dir, 'files.yaml'), readFileSync(path.join(dir, 'exp.yaml'), 'utf8').replace(/dataset: .*/, 'dataset: { name: features-h5, slideTable: cam/slides.csv, featuresDir: cam/h5_files }'));
    const fromFiles = await milkit(['splits', 'files.yaml', '--out', 'files'], dir);
    expect(fromFiles.code).toBe(0);
    expect(readFileSync(path.join(dir, 'files', 'splits.json'), 'utf8')).toBe(readFileSync(path.join(dir, 'out', 'splits.json'), 'utf8'));
  });

  it('rejects a malformed --set', async () => {
    const { code, err } = await milkit(['data', 'export', 'synthetic-camelyon', '--out', 'x', '--set', 'slides'], dir);
    expect(code).toBe(2);
    expect(err).toBe('error [bad-option]: --set: expected key=value, got "slides". For example --set slides=20 --set instances=[50,100].');
  });
});
