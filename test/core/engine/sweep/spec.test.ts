import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expandCells, mergeGridArguments, readSweepFile, normaliseDatasets, sweepArgumentKey, type SweepDefinition } from '../../../../src/core/engine/sweep/spec.js';
import { ConfigError } from '../../../../src/core/errors.js';
import { fakeExpand } from './fixtures/fake-job.js';

const base: SweepDefinition = { name: 's', experimentFile: 'exp.yaml', grid: [], zip: [] };

describe('sweep spec: expandCells', () => {
  it('takes the cartesian product with the last argument varying fastest (Hydra order)', () => {
    const cells = expandCells({ ...base, grid: ['a=1,2', 'b=x,y', 'c=0'] }, fakeExpand);
    expect(cells.map((c) => c.overrides)).toEqual([
      ['a=1', 'b=x', 'c=0'], ['a=1', 'b=y', 'c=0'], ['a=2', 'b=x', 'c=0'], ['a=2', 'b=y', 'c=0'],
    ]);
    // Single-valued overrides apply to every cell but are not parameters of the table.
    expect(cells.map((c) => c.name)).toEqual(['a=1 b=x', 'a=1 b=y', 'a=2 b=x', 'a=2 b=y']);
    expect(cells[3]?.params).toEqual({ a: '2', b: 'y' });
    expect(cells.map((c) => c.index)).toEqual([0, 1, 2, 3]);
  });

  it('pairs zipped keys value by value and crosses the pairs with the other axes', () => {
    const cells = expandCells({ ...base, grid: ['n=5,10', 'c=p,q', 'a=0.5,0.7'], zip: [['n', 'a']] }, fakeExpand);
    expect(cells.map((c) => c.overrides)).toEqual([
      ['n=5', 'a=0.5', 'c=p'], ['n=5', 'a=0.5', 'c=q'], ['n=10', 'a=0.7', 'c=p'], ['n=10', 'a=0.7', 'c=q'],
    ]);
    expect(cells[2]?.name).toBe('n=10 a=0.7 c=p');
  });

  it('runs every row on every dataset, rows outermost, applying row then dataset then grid overrides', () => {
    const cells = expandCells({
      ...base,
      rows: [{ name: 'baseline', overrides: ['m=abmil'] }, { name: '+dmin', overrides: ['m=dmin'] }],
      datasets: [{ name: 'C16', overrides: ['data=c16'] }, { name: 'NSCLC', overrides: ['data=nsclc'] }],
      grid: ['seed=1'],
    }, fakeExpand);
    expect(cells.map((c) => [c.row, c.dataset, c.overrides.join(' ')])).toEqual([
      ['baseline', 'C16', 'm=abmil data=c16 seed=1'],
      ['baseline', 'NSCLC', 'm=abmil data=nsclc seed=1'],
      ['+dmin', 'C16', 'm=dmin data=c16 seed=1'],
      ['+dmin', 'NSCLC', 'm=dmin data=nsclc seed=1'],
    ]);
    expect(cells[1]?.name).toBe('baseline | NSCLC');
  });

  it('gives a lone default cell when nothing is swept', () => {
    expect(expandCells(base, fakeExpand)).toEqual([{ index: 0, name: 'default', params: {}, overrides: [] }]);
  });

  it.each([
    [{ grid: ['a=1,2', 'b=x,y,z'], zip: [['a', 'b']] }, 'sweep-zip-length-mismatch', 'zipped keys need the same number of values; got a: 2, b: 3.'],
    [{ grid: ['alpha=1,2', 'b=x,y'], zip: [['alpah', 'b']] }, 'sweep-zip-unknown-key', '--zip names "alpah", which no sweep argument sets. Did you mean "alpha"?'],
    [{ grid: ['a=1,2', 'a=3'] }, 'sweep-duplicate-key', 'the sweep sets "a" twice (a=1,2 and a=3).'],
    [{ grid: ['a=1,2', 'b=x,y', 'c=1,2'], zip: [['a', 'b'], ['b', 'c']] }, 'sweep-zip-overlap', '"b" is in two --zip groups.'],
  ])('rejects a bad grid: %j', (patch, code, message) => {
    const run = (): unknown => expandCells({ ...base, ...patch }, fakeExpand);
    expect(run).toThrow(ConfigError);
    try {
      run();
    } catch (error) {
      expect((error as ConfigError).code).toBe(code);
      expect((error as ConfigError).message).toBe(message);
    }
  });
});

describe('sweep spec: sweep files', () => {
  it('reads rows and datasets, resolving the experiment next to the file and bare dataset names to data=<name>', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-sweepfile-'));
    const file = path.join(dir, 'table3.yaml');
    await writeFile(file, [
      'experiment: ../experiments/hdmil.yaml',
      'rows:',
      '  - {name: baseline, overrides: []}',
      '  - {name: "+ DMIN", overrides: [model/aggregator=dmin]}',
      'datasets: [camelyon16, {name: NSCLC, overrides: [data=tcga-nsclc, split.folds=4]}]',
      'metrics: [auc, accuracy]',
    ].join('\n'));
    const parsed = await readSweepFile(file);
    expect(parsed.experiment).toBe(path.join(dir, '..', 'experiments', 'hdmil.yaml'));
    expect(parsed.rows?.map((r) => r.name)).toEqual(['baseline', '+ DMIN']);
    expect(normaliseDatasets(parsed.datasets)).toEqual([
      { name: 'camelyon16', overrides: ['data=camelyon16'] },
      { name: 'NSCLC', overrides: ['data=tcga-nsclc', 'split.folds=4'] },
    ]);
    expect(parsed.grid).toEqual([]);
  });

  it('rejects duplicate row names and unknown keys, naming the file', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-sweepfile-'));
    const dup = path.join(dir, 'dup.yaml');
    await writeFile(dup, 'rows: [{name: a}, {name: a}]\n');
    await expect(readSweepFile(dup)).rejects.toMatchObject({ code: 'sweep-duplicate-name', message: 'rows name "a" appears twice.', where: { file: dup, key: 'rows' } });
    const typo = path.join(dir, 'typo.yaml');
    await writeFile(typo, 'rowz: []\n');
    await expect(readSweepFile(typo)).rejects.toThrow(/rowz/);
  });
});

describe('sweep spec: command line over the sweep file', () => {
  it('a grid key given on the command line replaces the file\'s argument for it, whatever its prefix', () => {
    expect(sweepArgumentKey('train.lr=1e-4,3e-4')).toBe('train.lr');
    expect(sweepArgumentKey('+train.x=1')).toBe('train.x');
    expect(sweepArgumentKey('~model.losses.inst')).toBe('model.losses.inst');
    expect(sweepArgumentKey('model/aggregator=abmil,clam-sb')).toBe('model/aggregator');
    const file = ['split.folds=3', 'train.epochs=20', 'model/aggregator=abmil,clam-sb'];
    expect(mergeGridArguments(file, ['train.epochs=2', 'seed=0,1'])).toEqual(['split.folds=3', 'model/aggregator=abmil,clam-sb', 'train.epochs=2', 'seed=0,1']);
    expect(mergeGridArguments(file, [])).toEqual(file);
  });
});
