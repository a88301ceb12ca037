// `milkit extract --executor slurm` on a real single-node Slurm (test/slurm/local-slurm.sh): the slides run as one
// sbatch array of `extract-slide` jobs and the feature files equal those of an extraction in one process.
// When the local daemons cannot start here, the test says why and is skipped (as the Slurm sweep test).
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { writeSyntheticSlides } from '../../../src/core/slides/synthetic-slides.js';
import { startLocalSlurm } from '../../slurm/cluster.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = path.join(REPO, 'bin/milkit.mjs');
const COMMON = ['--reader', 'tiff', '--detector-set', 'downsample=16', '--detector-set', 'minTissueArea=0.5', '--extractor-set', 'batchSize=8'];

async function rows(file: string): Promise<{ features: number[]; coords: number[] }> {
  const h5 = (await import('h5wasm/node')).default;
  await h5.ready;
  const f = new h5.File(file, 'r');
  try {
    return {
      features: Array.from((f.get('features') as unknown as { value: Float32Array }).value),
      coords: Array.from((f.get('coords') as unknown as { value: Int32Array }).value),
    };
  } finally {
    f.close();
  }
}

const cluster = await startLocalSlurm();
if (cluster.reason) console.warn(`\n*** Slurm extraction test SKIPPED: ${cluster.reason} ***\n`);
const dirs: string[] = [];
afterAll(async () => {
  await cluster.stop();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('milkit extract on Slurm', () => {
  it.skipIf(cluster.reason !== undefined)(cluster.reason ? `skipped: ${cluster.reason}` : 'extracts the slides as an sbatch array, with the files of a one-process run', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'milkit-extract-slurm-'));
    dirs.push(root);
    await writeSyntheticSlides({ slides: 2, seed: 8, tumourFraction: 0.5, format: 'svs', quality: 80, tileSize: 256, mpp: 0.5, magnification: 20, maskDownsample: 64, logger: silentLogger, outDir: path.join(root, 'slides'), size: 2048 });
    const env = { ...process.env, ...cluster.env, MILKIT_SOURCE: '1' };
    const local = await execa(process.execPath, [BIN, 'extract', 'slides', '--out', 'local', ...COMMON], { cwd: root, env, reject: false });
    expect(local.exitCode, local.stderr).toBe(0);
    const slurm = await execa(process.execPath, [BIN, 'extract', 'slides', '--out', 'slurm', '--executor', 'slurm', '--executor-set', 'pollSeconds=0.5', ...COMMON], { cwd: root, env, reject: false });
    expect(slurm.exitCode, `${slurm.stdout}\n${slurm.stderr}`).toBe(0);
    expect(slurm.stdout + slurm.stderr).toMatch(/submitted Slurm array job \d+ \(2 tasks\)/);
    const names = readdirSync(path.join(root, 'local', 'h5_files')).sort();
    expect(names).toEqual(['synthetic-000.h5', 'synthetic-001.h5']);
    expect(readdirSync(path.join(root, 'slurm', 'h5_files')).sort()).toEqual(names);
    for (const name of names) expect(await rows(path.join(root, 'slurm', 'h5_files', name)), name).toEqual(await rows(path.join(root, 'local', 'h5_files', name)));
    expect(readFileSync(path.join(root, 'slurm', 'process_list.csv'), 'utf8')).not.toMatch(/failed|pending/);
  }, 300_000);
});
