// Runs the loss contract over every built-in loss, golden cases required (cpu backend: the inputs are tiny).
import { lossContract } from '../../src/testing/contracts/index.js';
import { builtinDefinitions, goldenDirOf } from './builtins.js';

lossContract(await builtinDefinitions('loss'), { goldenDir: goldenDirOf('loss'), requireGolden: true });
