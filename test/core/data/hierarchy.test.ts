// Two-level labels: the hierarchy declared in the config (data.hierarchy), coarse probabilities from fine ones,
// and per-class scores / confusion matrices of a level.
import { describe, expect, it } from 'vitest';
import { coarseProbabilities, hierarchyFromConfig } from '../../../src/core/data/labels.js';
import { levelReport, metricSegment, perClassMetrics } from '../../../src/core/eval/levels.js';
import { ConfigError } from '../../../src/core/errors.js';

const BRACS = ['N', 'PB', 'UDH', 'FEA', 'ADH', 'DCIS', 'IC'];

describe('data.hierarchy', () => {
  it('numbers coarse classes in the order they first appear and maps every fine class', () => {
    const declared = { N: 'benign', PB: 'benign', UDH: 'benign', FEA: 'atypical', ADH: 'atypical', DCIS: 'malignant', IC: 'malignant' };
    expect(hierarchyFromConfig(BRACS, declared)).toEqual({ coarseNames: ['benign', 'atypical', 'malignant'], fineToCoarse: [0, 0, 0, 1, 1, 2, 2] });
    // Key order decides the coarse order, not the fine classes' order.
    expect(hierarchyFromConfig(['a', 'b'], { b: 'high', a: 'low' })).toEqual({ coarseNames: ['high', 'low'], fineToCoarse: [1, 0] });
  });

  it('refuses an unknown fine class (naming the key and a suggestion) and an unmapped one', () => {
    const unknown = (): unknown => hierarchyFromConfig(BRACS, { N: 'benign', PBB: 'benign' });
    expect(unknown).toThrow(ConfigError);
    try {
      unknown();
    } catch (error) {
      expect((error as ConfigError).code).toBe('unknown-hierarchy-class');
      expect((error as ConfigError).where?.key).toBe('data.hierarchy.PBB');
      expect((error as ConfigError).message).toContain('"PB"');
    }
    expect(() => hierarchyFromConfig(['a', 'b', 'c'], { a: 'x', b: 'y' })).toThrow(/no coarse class for "c"/);
  });
});

describe('coarse level', () => {
  it('sums the children\'s probabilities into their coarse class', () => {
    const coarse = coarseProbabilities([0.1, 0.2, 0.3, 0.05, 0.05, 0.25, 0.05], [0, 0, 0, 1, 1, 2, 2], 3);
    expect(coarse[0]).toBeCloseTo(0.6, 12);
    expect(coarse[1]).toBeCloseTo(0.1, 12);
    expect(coarse[2]).toBeCloseTo(0.3, 12);
  });

  it('per-class precision, recall and F1 and the confusion matrix of a level', () => {
    // truth 0 0 1 1 2, predicted 0 1 1 1 0
    const probs = [[0.9, 0.1, 0], [0.2, 0.7, 0.1], [0, 1, 0], [0.1, 0.8, 0.1], [0.6, 0.2, 0.2]];
    const report = levelReport({ labels: [0, 0, 1, 1, 2], probs, classNames: ['a', 'b c', 'd'] });
    expect(report.confusion).toEqual([[1, 1, 0], [0, 2, 0], [1, 0, 0]]);
    expect(report.perClass[0]).toEqual({ name: 'a', support: 2, precision: 0.5, recall: 0.5, f1: 0.5 });
    expect(report.perClass[1]).toMatchObject({ support: 2, precision: 2 / 3, recall: 1, f1: 0.8 });
    expect(report.perClass[2]).toMatchObject({ support: 1, precision: 0, recall: 0, f1: 0 });
    const metrics = perClassMetrics(report, 'coarse_');
    expect(metrics['coarse_f1_b_c']?.value).toBeCloseTo(0.8, 12);
    expect(Object.keys(metrics)).toHaveLength(9);
    expect(metricSegment('DCIS / IC')).toBe('DCIS_IC');
  });
});
