// Runs the classifier and pre-screener contracts over every built-in, golden cases required.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll } from 'vitest';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { classifierContract, prescreenerContract } from '../../src/testing/contracts/index.js';
import { builtinDefinitions, builtinRegistry, goldenDirOf } from './builtins.js';

const registry = builtinRegistry();
const classifiers = await builtinDefinitions('classifier', registry);
const prescreeners = await builtinDefinitions('prescreener', registry);

/** Small widths keep the generic checks fast (the MLP's default hidden layer is 256 wide). */
const SMALL: Readonly<Record<string, Record<string, unknown>>> = { mlp: { hiddenDims: [8], dropout: 0.25 }, cka: { degree: 3 } };

beforeAll(async () => {
  await initRuntime(RuntimeSection.parse({ backend: 'wasm', blasThreads: 1 }), { logger: silentLogger });
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

classifierContract(classifiers, { goldenDir: goldenDirOf('classifier'), requireGolden: true, optionsFor: (name) => SMALL[name] ?? {} });
prescreenerContract(prescreeners, { goldenDir: goldenDirOf('prescreener'), requireGolden: true });
