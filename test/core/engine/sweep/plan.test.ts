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
    expect(error.message).toBe([
      '3 of 6 sweep cells do not compose; no job was started:',
      '  cell 4 "broken | a=1" [bad=1 a=1]:',
      '    error [invalid-option]: exp.yaml › bad: key "bad" is not allowed (got 1).',
      '  cell 5 "broken | a=2" [bad=1 a=2]:',
      '    error [invalid-option]: exp.yaml › bad: key "bad" is not allowed (got 1).',
      '  cell 6 "broken | a=3" [bad=1 a=3]:',
      '    error [invalid-option]: exp.yaml › bad: key "bad" is not allowed (got 1).',
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
