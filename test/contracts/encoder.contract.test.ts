// Runs the encoder contract over every built-in, golden cases required.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll } from 'vitest';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { encoderContract } from '../../src/testing/contracts/index.js';
import { builtinDefinitions, builtinRegistry, goldenDirOf } from './builtins.js';

const encoders = await builtinDefinitions('encoder', builtinRegistry());

/** A narrow embedding keeps the generic checks fast (the paper's M is 500). */
const SMALL: Readonly<Record<string, Record<string, unknown>>> = { 'lenet-mnist': { embeddingDim: 16 } };

beforeAll(async () => {
  await initRuntime(RuntimeSection.parse({ backend: 'wasm', blasThreads: 1 }), { logger: silentLogger });
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

encoderContract(encoders, { goldenDir: goldenDirOf('encoder'), requireGolden: true, optionsFor: (name) => SMALL[name] ?? {} });
