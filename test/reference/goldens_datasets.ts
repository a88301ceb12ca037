// Golden fingerprints of the generated datasets (synthetic-*, mnist-bags, mnist-hierarchical): the data a fixed seed and small options
// produce, pinned so any change to a generator is a visible, reviewed golden update. (The file-backed datasets'
// fingerprints are computed independently by goldens_datasets.py.)
//
// Run: npx tsx test/reference/goldens_datasets.ts
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { builtinManifest } from '../../plugins/index.js';
import { Registry } from '../../src/registry/index.js';
import { datasetFingerprint, openDatasetCase, type DatasetGoldenCase } from '../../src/testing/contracts/dataset.js';
import { REPO_ROOT } from '../contracts/builtins.js';

const CASES: Readonly<Record<string, DatasetGoldenCase>> = {
  'synthetic-camelyon': { options: { slides: 6, instances: [5, 12], featureDim: 8, signalDim: 2 }, seed: 7 },
  'synthetic-subtyping': { options: { slides: 6, instances: [5, 12], featureDim: 8 }, seed: 8 },
  'synthetic-hierarchical': { options: { slides: 14, instances: [5, 12], featureDim: 12 }, seed: 9 },
  'mnist-bags': { options: { trainBags: 4, testBags: 2 }, seed: 10 },
  'synthetic-decoys': { options: { slides: 6, instances: [8, 14], featureDim: 8, signalDim: 2 }, seed: 11 },
  'mnist-hierarchical': { options: { trainBags: 4, testBags: 2, meanBagSize: 4, stdBagSize: 1 }, seed: 11 },
};

const registry = new Registry(builtinManifest());
for (const [name, c] of Object.entries(CASES)) {
  const definition = await registry.get('dataset', name);
  const { source, cleanup } = await openDatasetCase(definition, c, { baseDir: REPO_ROOT });
  const fingerprint = await datasetFingerprint(source);
  await cleanup();
  const golden = {
    $comment: 'Golden case: generated, do not edit; regenerate with the script in "generator".',
    kind: 'dataset',
    plugin: name,
    generator: 'test/reference/goldens_datasets.ts',
    case: c,
    expected: { fingerprint },
  };
  const path = join(REPO_ROOT, 'plugins', 'datasets', `${name}.golden.json`);
  const text = `${JSON.stringify(golden)}\n`;
  writeFileSync(path, text);
  console.log(`plugins/datasets/${name}.golden.json: ${text.length} B`);
}
