import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { jobId, planSweep, sweepSpecHash } from '../../../../src/core/engine/sweep/plan.js';
import { expandCells, type SweepDefinition } from '../../../../src/core/engine/sweep/spec.js';
import { ConfigError } from '../../../../src/core/errors.js';
import { fakeCompose, fakeExpand } from './fixtures/fake-job.js';

const base: SweepDefinition = { name: 's', experimentFile: 'exp.yaml', grid: [], zip: [] };

describe('sweep plan', () => {
  it('derives job ids as sha256(configHash, fold), stable and distinct per fold', () => {
    const expected = createHash('sha256').update('milkit-job\0abc\0fold=2').digest('hex').slice(0, 16);
    expect(jobId('abc', 2)).toBe(expected);
    expect(jobId('abc', 2)).toBe(jobId('abc', 2));
    expect(jobId('abc', 1)).not.toBe(jobId('abc', 2));
    expect(jobId('abd', 2)).not.toBe(jobId('abc', 2));
  });

  it('makes one job per cell × fold, in cell then fold order', async () => {
    const definition = { ...base, grid: ['a=1,2', 'b=x,y'] };
    const plan = await planSweep(definition, expandCells(definition, fakeExpand), fakeCompose, '/w');
    expect(plan.jobs).toHaveLength(12);
    expect(plan.jobs.map((j) => `${j.cell}/${j.fold}`).slice(0, 4)).toEqual(['0/0', '0/1', '0/2', '1/0']);
    expect(new Set(plan.jobs.map((j) => j.id)).size).toBe(12);
    expect(plan.cells[1]?.jobIds).toEqual(plan.jobs.slice(3, 6).map((j) => j.id));
    expect(plan.jobs[4]?.label).toBe('a=1 b=y · fold 1');
  });

  it('shares the jobs of cells whose resolved configs coincide (a repeated row trains once)', async () => {
    // The later override wins, so both rows resolve to a=1.
    const definition: SweepDefinition = { ...base, rows: [{ name: 'r1', overrides: ['a=1'] }, { name: 'r2', overrides: ['a=2', 'a=1'] }] };
    const plan = await planSweep(definition, expandCells(definition, fakeExpand), fakeCompose, '/w');
    expect(plan.jobs).toHaveLength(3);
    expect(plan.cells[0]?.jobIds).toEqual(plan.cells[1]?.jobIds);
  });

  it('composes every cell before failing, and reports all the bad ones in one error', async () => {
    const composed: string[] = [];
    const definition = { ...base, grid: ['a=1,2,3'], rows: [{ name: 'ok', overrides: [] }, { name: 'broken', overrides: ['bad=1'] }] };
    const promise = planSweep(definition, expandCells(definition, fakeExpand), async (file, overrides) => {
      composed.push(overrides.join(' '));
      return fakeCompose(file, overrides);
    }, '/w');
    await expect(promise).rejects.toBeInstanceOf(ConfigError);
    expect(composed).toHaveLength(6);
    const error = (await promise.catch((e: unknown) => e)) as ConfigError;
    expect(error.code).toBe('sweep-invalid-cells');
    // One shared error is reported once, with the cells it hit.
    expect(error.message).toBe([
      '3 of 6 sweep cells do not compose; no job was started:',
      '  3 cells: 4 "broken | a=1", 5 "broken | a=2", 6 "broken | a=3":',
      '    error [invalid-option]: exp.yaml › bad: key "bad" is not allowed (got 1).',
    ].join('\n'));
  });

  it('names each cell with its overrides when its error is its own', async () => {
    const definition = { ...base, grid: ['a=1,2', 'bad=x'], zip: [] };
    const compose = async (file: string, overrides: readonly string[]) => {
      if (overrides.includes('a=2')) throw new ConfigError('invalid-option', 'a=2 is out of range.', { where: { file, key: 'a' } });
      return fakeCompose(file, overrides.filter((o) => o !== 'bad=x'));
    };
    const error = (await planSweep(definition, expandCells(definition, fakeExpand), compose, '/w').catch((e: unknown) => e)) as ConfigError;
    expect(error.message).toBe([
      '1 of 2 sweep cells do not compose; no job was started:',
      '  cell 2 "a=2" [a=2 bad=x]:',
      '    error [invalid-option]: exp.yaml › a: a=2 is out of range.',
    ].join('\n'));
  });

  it('lets a programming error through unchanged instead of blaming the cell', async () => {
    const definition = { ...base, grid: ['a=1'] };
    await expect(planSweep(definition, expandCells(definition, fakeExpand), async () => {
      throw new TypeError('boom');
    }, '/w')).rejects.toThrow(TypeError);
  });

  it('keys the state folder on the experiment path (relative to cwd) and the cells, not on config contents', () => {
    const cells = expandCells({ ...base, grid: ['a=1,2'] }, fakeExpand);
    expect(sweepSpecHash('exp.yaml', '/w', cells)).toBe(sweepSpecHash('/w/exp.yaml', '/w', cells));
    expect(sweepSpecHash('exp.yaml', '/w', cells)).not.toBe(sweepSpecHash('exp.yaml', '/w', cells.slice(1)));
    expect(sweepSpecHash('exp.yaml', '/w', cells)).toMatch(/^[0-9a-f]{8}$/);
  });
});
