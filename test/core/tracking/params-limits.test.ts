// flattenParams, MLflow name rules, value formatting and log-batch chunking.
import { describe, expect, it } from 'vitest';
import { flattenParams } from '../../../src/core/tracking/index.js';
import {
  chunkLogBatch,
  keyProblem,
  metricPointKey,
  metricValueFromFileText,
  metricValueFromJson,
  metricValueToFileText,
  metricValueToJson,
  MLFLOW_LIMITS,
} from '../../../src/core/tracking/limits.js';

describe('flattenParams', () => {
  it('flattens nested config to dotted keys with MLflow-friendly strings, sorted', () => {
    const { params, oversized } = flattenParams({
      name: 'table3',
      seed: 0,
      model: { aggregator: { name: 'abmil', gated: true, dropout: 0.25 }, losses: { ce: { name: 'cross-entropy', weight: 1 } } },
      train: { epochs: 20, schedule: [1, 2, 3], optimizer: null, skipped: undefined },
      empty: {},
    });
    expect(Object.keys(params)).toEqual(['model.aggregator.dropout', 'model.aggregator.gated', 'model.aggregator.name', 'model.losses.ce.name', 'model.losses.ce.weight', 'name', 'seed', 'train.epochs', 'train.optimizer', 'train.schedule']);
    expect(params).toMatchObject({ 'model.aggregator.gated': 'true', 'model.aggregator.dropout': '0.25', seed: '0', 'train.schedule': '[1,2,3]', 'train.optimizer': 'null' });
    expect(oversized).toEqual({});
  });

  it('hands back whole what MLflow cannot hold as a param: long values, unusable keys', () => {
    const long = 'x'.repeat(6001);
    const { params, oversized } = flattenParams({ a: { notes: long, fine: 'y'.repeat(6000) }, 'bad key!': 1, ['k'.repeat(251)]: 2 });
    expect(Object.keys(params)).toEqual(['a.fine']);
    expect(oversized).toEqual({ 'a.notes': long, 'bad key!': '1', ['k'.repeat(251)]: '2' });
  });
});

describe('MLflow limits and value rules', () => {
  it('accepts MLflow names and explains every rejection', () => {
    for (const ok of ['val/auc', 'train loss', 'a:b', 'model.aggregator.name', 'fold_0/val-auc', 'k'.repeat(250), 'métrique']) expect(keyProblem(ok), ok).toBeUndefined();
    expect(keyProblem('')).toBe('it is empty');
    expect(keyProblem('k'.repeat(251))).toMatch(/251 characters/);
    expect(keyProblem('bad key!')).toMatch(/characters other than/);
    expect(keyProblem('/abs')).toMatch(/normalised relative path/);
    expect(keyProblem('a//b')).toMatch(/normalised relative path/);
    expect(keyProblem('a/../b')).toMatch(/path segment/);
  });

  it('writes metric values as Python would and reads them back exactly', () => {
    const cases: Array<[number, string]> = [[0.5, '0.5'], [3, '3.0'], [-2, '-2.0'], [1e-7, '1e-07'], [1.5e-10, '1.5e-10'], [1e21, '1e+21'], [NaN, 'nan'], [Infinity, 'inf'], [-Infinity, '-inf'], [0.1 + 0.2, '0.30000000000000004']];
    for (const [value, text] of cases) {
      expect(metricValueToFileText(value)).toBe(text);
      expect(Object.is(metricValueFromFileText(text), value) || (Number.isNaN(value) && Number.isNaN(metricValueFromFileText(text)))).toBe(true);
    }
    expect(metricValueFromFileText('Infinity')).toBe(Infinity);
    expect(metricValueFromFileText('12')).toBe(12);
    expect(metricValueFromFileText('abc')).toBeUndefined();
  });

  it('sends NaN/±Infinity as strings and reads the server forms (string NaN, ±DBL_MAX) back', () => {
    expect([NaN, Infinity, -Infinity, 0.25].map(metricValueToJson)).toEqual(['NaN', 'Infinity', '-Infinity', 0.25]);
    expect(Number.isNaN(metricValueFromJson('NaN'))).toBe(true);
    expect(metricValueFromJson(1.7976931348623157e308)).toBe(Infinity);
    expect(metricValueFromJson(-1.7976931348623157e308)).toBe(-Infinity);
    expect(metricValueFromJson('2.5')).toBe(2.5);
    expect(() => metricValueFromJson(null)).toThrow(/not a number/);
    // The server's ±DBL_MAX and our ±Infinity are the same point for de-duplication.
    expect(metricPointKey({ key: 'k', value: Infinity, step: 1, timestamp: 2 })).toBe(metricPointKey({ key: 'k', value: 1.7976931348623157e308, step: 1, timestamp: 2 }));
  });

  it('chunks any mix into batches within every server limit, params first, order kept', () => {
    const metrics = Array.from({ length: 2500 }, (_, i) => ({ key: `m${i % 7}`, value: i, step: i, timestamp: i }));
    const params = Array.from({ length: 250 }, (_, i) => ({ key: `p${i}`, value: 'v' }));
    const tags = Array.from({ length: 130 }, (_, i) => ({ key: `t${i}`, value: 'v' }));
    const batches = chunkLogBatch({ metrics, params, tags });
    for (const b of batches) {
      expect(b.metrics.length).toBeLessThanOrEqual(MLFLOW_LIMITS.metricsPerBatch);
      expect(b.params.length).toBeLessThanOrEqual(MLFLOW_LIMITS.paramsPerBatch);
      expect(b.tags.length).toBeLessThanOrEqual(MLFLOW_LIMITS.tagsPerBatch);
      expect(b.metrics.length + b.params.length + b.tags.length).toBeLessThanOrEqual(MLFLOW_LIMITS.entitiesPerBatch);
    }
    expect(batches.flatMap((b) => b.metrics)).toEqual(metrics);
    expect(batches.flatMap((b) => b.params)).toEqual(params);
    expect(batches.flatMap((b) => b.tags)).toEqual(tags);
    // 250 params need 3 calls, 130 tags 2 more (separate limits), 2500 metrics the rest.
    expect(batches).toHaveLength(6);
    // Large values are split by request size too.
    // 100 params of 6000 characters and 100 tags of 5000 fit the count limits but not the 1 MB request limit.
    const bySize = chunkLogBatch({
      params: Array.from({ length: 100 }, (_, i) => ({ key: `p${i}`, value: 'x'.repeat(6000) })),
      tags: Array.from({ length: 100 }, (_, i) => ({ key: `t${i}`, value: 'y'.repeat(5000) })),
    });
    expect(bySize.length).toBeGreaterThan(1);
    for (const b of bySize) expect(JSON.stringify(b).length).toBeLessThan(1_000_000);
    expect(chunkLogBatch({})).toEqual([]);
  });
});
