// Preflight: every problem of every job found from declared capabilities, the data source, the split and the
// output folders, before anything runs; reported once, with the exit code of its class.
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePlugin, type AnyPluginDefinition } from '../../../src/registry/index.js';
import { ConfigError, DataError, MilkitError } from '../../../src/core/errors.js';
import { loadExperiment } from '../../../src/core/config/load.js';
import { preflight, preflightChecks, throwingCheck, type PreflightJob } from '../../../src/core/engine/preflight.js';
import { nodeFileSystem, type FileSystem } from '../../../src/core/services.js';
import { builtinRegistry } from '../../helpers/registry.js';
import { QUICKSTART, tempDir } from '../../e2e/helpers.js';

async function job(cwd: string, overrides: string[], label = 'experiments/quickstart.yaml'): Promise<PreflightJob> {
  const registry = builtinRegistry();
  const resolved = await loadExperiment(QUICKSTART, ['data.dataset.slides=16', ...overrides], { registry, cwd, env: {}, project: {} });
  return { resolved, label, outputs: [{ dir: path.join(cwd, 'outputs'), key: 'output.dir' }] };
}

async function failure(jobs: PreflightJob[], fs: FileSystem = nodeFileSystem): Promise<MilkitError> {
  try {
    await preflight(jobs, { registry: builtinRegistry(), fs });
  } catch (error) {
    if (error instanceof MilkitError) return error;
    throw error;
  }
  throw new Error('preflight passed');
}

/** A file system on a read-only mount: creating folders works (they exist), writing files fails with EROFS. */
function readOnlyFs(): FileSystem & { writes: string[] } {
  const writes: string[] = [];
  return {
    writes,
    mkdir: async () => {},
    writeFile: async (file) => {
      writes.push(file);
      throw Object.assign(new Error(`EROFS: read-only file system, open '${file}'`), { code: 'EROFS' });
    },
    appendFile: async (file) => {
      writes.push(file);
      throw Object.assign(new Error(`EROFS: read-only file system, open '${file}'`), { code: 'EROFS' });
    },
    rename: async () => {},
    remove: async () => {},
  };
}

describe('preflight', () => {
  it('passes a good job, leaving no probe file behind', async () => {
    const cwd = await tempDir();
    await preflight([await job(cwd, [])], { registry: builtinRegistry(), fs: nodeFileSystem });
    expect(await readdir(path.join(cwd, 'outputs'))).toEqual([]);
  });

  it('names the loss slot and the aggregator of a bad pairing, and the aggregators that would do', async () => {
    const cwd = await tempDir();
    const error = await failure([await job(cwd, ['+model.losses.inst={name: clam-instance}'])]);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.exitCode).toBe(2);
    expect(error.code).toBe('loss-requirement-unmet');
    expect(error.message).toMatch(/^model\.losses\.inst, model\.aggregator: loss "clam-instance" needs "instanceLogits", "instanceTargets", "instanceWeights" from the aggregator, but aggregator "mean-pool" provides no extras\./);
    expect(error.message).toContain('Choose an aggregator that provides them (clam-mb, clam-sb, dmin; e.g. model/aggregator=clam-mb)');
    expect(error.message).toContain('~model.losses.inst');
    expect(error.render()).toContain('nothing ran and no MLflow run was opened');
  });

  it('collects every problem of a job into one message, config problems first', async () => {
    const cwd = await tempDir();
    const error = await failure([await job(cwd, ['+model.losses.inst={name: clam-instance}', '+model/prescreener=lipn', 'split.folds=40', 'train.earlyStopping.monitor=val/f1'])]);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.code).toBe('preflight-failed');
    const lines = error.message.split('\n');
    expect(lines[0]).toBe('4 problems in experiments/quickstart.yaml:');
    expect(lines[1]).toMatch(/^ {2}- model\.losses\.inst, model\.aggregator: /);
    expect(lines[2]).toMatch(/^ {2}- model\.prescreener: pre-screener "lipn" is trainable, but no stage trains it/);
    expect(lines[3]).toMatch(/^ {2}- train\.earlyStopping\.monitor, eval\.metrics: watches "val\/f1", but "f1" is not among/);
    expect(lines[4]).toMatch(/^ {2}- split\.folds: split\.mode kfold needs 2 ≤ folds ≤ number of cases \(16\); got 40\./);
  });

  it('checks what the aggregator and a trainable pre-screener read from bags against what the dataset declares', async () => {
    const cwd = await tempDir();
    const registry = builtinRegistry();
    const slides = Array.from({ length: 8 }, (_, i) => ({ slideId: `s${i}`, caseId: `c${i}`, label: i % 2, labelName: String(i % 2), meta: {} }));
    registry.register(definePlugin({
      kind: 'dataset', name: 'acme:plain-bags', summary: 'features only', options: z.strictObject({}),
      capabilities: { instanceLabels: false, thumbs: false, coords: false },
      create: async () => ({ slides, featureDim: 4, classNames: ['0', '1'], load: () => Promise.reject(new Error('not read by preflight')) }),
    }) as unknown as AnyPluginDefinition, 'test');
    registry.register(definePlugin({
      kind: 'aggregator', name: 'acme:spatial-pool', summary: 'reads coordinates', options: z.strictObject({}),
      capabilities: { needsViews: ['coords'] },
      create: () => { throw new Error('not built by preflight'); },
    }) as unknown as AnyPluginDefinition, 'test');
    const load = (overrides: string[]) => loadExperiment(QUICKSTART, ['~data.dataset', '+data.dataset={name: acme:plain-bags}', ...overrides], { registry, cwd, env: {}, project: {} });
    const outputs = [{ dir: path.join(cwd, 'outputs'), key: 'output.dir' }];
    const check = async (overrides: string[]): Promise<string> => {
      try {
        await preflight([{ resolved: await load(overrides), label: 'x', outputs }], { registry, fs: nodeFileSystem });
        return 'passed';
      } catch (error) {
        return (error as Error).message;
      }
    };
    expect(await check([])).toBe('passed');
    expect(await check(['model/aggregator=acme:spatial-pool'])).toBe(
      'stages[0].views: the stage reads bag view(s) "coords", but dataset "acme:plain-bags" provides none. Use a dataset that provides them (capability views / thumbs / coords), or drop the plugin or stage that needs them. (x)',
    );
    // A pre-screener trained by a stage reads thumbnails, which this dataset lacks.
    expect(await check(['model/aggregator=dmin', '+model/prescreener=lipn', 'stages=[{name: main}, {name: lipn, trains: [prescreener], strategy: {name: gate-distillation}}]'])).toBe(
      'stages[1].views: the stage reads bag view(s) "thumbs", but dataset "acme:plain-bags" provides none. Use a dataset that provides them (capability views / thumbs / coords), or drop the plugin or stage that needs them. (x)',
    );
  });

  it('fails a missing slide table with the data exit code, naming the dataset key and the file', async () => {
    const cwd = await tempDir();
    await mkdir(path.join(cwd, 'features'));
    const error = await failure([await job(cwd, ['~data.dataset', `+data.dataset={name: features-dir, featuresDir: ${path.join(cwd, 'features')}, slideTable: ${path.join(cwd, 'missing.csv')}}`])]);
    expect(error).toBeInstanceOf(DataError);
    expect(error.exitCode).toBe(4);
    expect(error.message).toMatch(/^data\.dataset/);
    expect(error.message).toContain('missing.csv');
  });

  it('names a missing features folder with the key that points at it', async () => {
    const cwd = await tempDir();
    await writeFile(path.join(cwd, 'slides.csv'), 'slide_id,case_id,label\na,a,x\nb,b,y\n');
    const missing = path.join(cwd, 'h5_files');
    const error = await failure([await job(cwd, ['~data.dataset', `+data.dataset={name: features-dir, featuresDir: ${missing}, slideTable: ${path.join(cwd, 'slides.csv')}}`])]);
    expect(error).toBeInstanceOf(DataError);
    expect(error.code).toBe('missing-file');
    expect(error.message).toBe(`data.dataset, data.dataset.featuresDir: ${missing}: features folder not found. Point featuresDir at the folder of per-slide feature files (CLAM: h5_files/). (experiments/quickstart.yaml)`);
  });

  it('names an output folder that takes no file, with the key that chose it (a read-only fs injected)', async () => {
    const cwd = await tempDir();
    const fs = readOnlyFs();
    const error = await failure([await job(cwd, [])], fs);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.code).toBe('output-not-writable');
    expect(error.message).toBe(`output.dir: cannot write to ${path.join(cwd, 'outputs')}: the file system is mounted read-only (EROFS). Point output.dir at a writable folder, or fix the folder's permissions and free space. (experiments/quickstart.yaml)`);
    expect(fs.writes).toHaveLength(1);
  });

  it('reports a problem shared by several jobs once, naming the jobs it affects; folders are probed once', async () => {
    const cwd = await tempDir();
    const fs = readOnlyFs();
    const jobs = [
      await job(cwd, [], 'lr=1'),
      await job(cwd, ['+model.losses.inst={name: clam-instance}'], 'lr=2'),
      await job(cwd, [], 'lr=3'),
    ];
    const error = await failure(jobs, fs);
    const lines = error.message.split('\n');
    expect(lines[0]).toBe('2 problems in 3 jobs:');
    expect(lines[1]).toMatch(/^ {2}- model\.losses\.inst, model\.aggregator: .* \[lr=2\]$/);
    expect(lines[2]).toMatch(/^ {2}- output\.dir: cannot write to .* \[every job\]$/);
    expect(fs.writes).toHaveLength(1);
  });

  it('refuses a selection rule that ignores every epoch (minEpochs ≥ epochs), naming both keys', async () => {
    const cwd = await tempDir();
    const error = await failure([await job(cwd, ['train.epochs=5', 'train.earlyStopping.minEpochs=5'])]);
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain('train.earlyStopping.minEpochs, train.epochs: minEpochs 5 ≥ epochs 5');
    // Testing the last epoch needs no selectable epoch.
    await preflight([await job(cwd, ['train.epochs=5', 'train.earlyStopping.minEpochs=5', 'train.earlyStopping.select=last'])], { registry: builtinRegistry(), fs: nodeFileSystem });
  });

  it('refuses imported split files that put a patient in two partitions, listing the patients', async () => {
    const cwd = await tempDir();
    const splits = path.join(cwd, 'splits');
    await mkdir(splits, { recursive: true });
    // With two slides per case, synthetic-camelyon's case-00 holds cam-00 and cam-01: one in train, one in test.
    const rows = [',train,val,test', '0,cam-00,cam-02,cam-01', '1,cam-03,cam-04,cam-05', '2,cam-06,,cam-07', '3,cam-08,,', '4,cam-09,,'];
    await writeFile(path.join(splits, 'splits_0.csv'), `${rows.join('\n')}\n`);
    const error = await failure([await job(cwd, [`split.file=${splits}`, 'split.mode=kfold', 'split.folds=1', 'data.dataset.slidesPerCase=2'])]);
    expect(error.exitCode).toBe(4);
    expect(error.message).toContain('fold 0: 4 patient(s) have slides in more than one partition: case-00 (train + test), case-01 (train + val), case-02 (val + test), case-03 (train + test).');
    // A malformed file is named as such, not a parser stack.
    await writeFile(path.join(splits, 'splits_0.csv'), ',train,val,test\n0,cam-00,cam-01,cam-02,extra\n');
    const malformed = await failure([await job(cwd, [`split.file=${splits}`, 'split.mode=kfold', 'split.folds=1', 'data.dataset.slidesPerCase=2'])]);
    expect(malformed.code).toBe('split-file-invalid');
    expect(malformed.message).toContain('splits_0.csv');
  });

  it('takes extra checks written as throwing functions (where stage checks plug in)', async () => {
    const cwd = await tempDir();
    const stageCheck = throwingCheck((resolved) => {
      if (resolved.config.train.epochs < 10) throw new ConfigError('too-short', 'stage 2 needs at least 10 epochs.', { where: { key: 'train.epochs' }, hint: 'Set train.epochs=10.' });
    });
    await expect(preflight([await job(cwd, [])], { registry: builtinRegistry(), fs: nodeFileSystem, checks: [...preflightChecks, stageCheck] }))
      .rejects.toThrow('train.epochs: stage 2 needs at least 10 epochs. Set train.epochs=10. (experiments/quickstart.yaml)');
  });
});
