// Runs the dataset contract over every built-in dataset, golden fingerprints required. Each plugin's golden case
// (small options; file datasets read the fixtures under test/reference/fixtures/) is also the generic checks' case.
import { datasetContract } from '../../src/testing/contracts/index.js';
import { builtinDefinitions, goldenDirOf, REPO_ROOT } from './builtins.js';

datasetContract(await builtinDefinitions('dataset'), { goldenDir: goldenDirOf('dataset'), requireGolden: true, baseDir: REPO_ROOT });
