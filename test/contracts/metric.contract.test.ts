// Runs the metric contract over every built-in metric, golden cases required.
import { expect, it } from 'vitest';
import { metricContract } from '../../src/testing/contracts/index.js';
import { builtinDefinitions, goldenDirOf } from './builtins.js';

const definitions = await builtinDefinitions('metric');

it('finds the built-in metrics', () => {
  expect(definitions.map((d) => d.name)).toEqual(expect.arrayContaining(['auc', 'accuracy', 'balanced-accuracy', 'f1', 'kappa', 'kappa-quadratic', 'precision', 'recall']));
});

metricContract(definitions, { goldenDir: goldenDirOf('metric'), requireGolden: true });
