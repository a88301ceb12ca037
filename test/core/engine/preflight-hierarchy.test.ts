// Preflight of two-level labels: plugins that need a hierarchy (hmil and its losses) are refused before compute when
// the data has none, data.hierarchy is checked against the slide table's classes, and coarse metrics may be monitored.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadExperiment } from '../../../src/core/config/load.js';
import { preflight, type PreflightJob } from '../../../src/core/engine/preflight.js';
import { MilkitError } from '../../../src/core/errors.js';
import { nodeFileSystem } from '../../../src/core/services.js';
import { builtinRegistry } from '../../helpers/registry.js';
import { QUICKSTART, tempDir } from '../../e2e/helpers.js';

async function job(overrides: string[]): Promise<PreflightJob> {
  const cwd = await tempDir();
  const resolved = await loadExperiment(QUICKSTART, ['data=synthetic-camelyon', 'data.dataset.slides=16', ...overrides], { registry: builtinRegistry(), cwd, env: {}, project: {} });
  return { resolved, label: 'experiments/quickstart.yaml', outputs: [{ dir: path.join(cwd, 'outputs'), key: 'output.dir' }] };
}

async function problems(overrides: string[]): Promise<MilkitError | undefined> {
  try {
    await preflight([await job(overrides)], { registry: builtinRegistry(), fs: nodeFileSystem });
    return undefined;
  } catch (error) {
    if (error instanceof MilkitError) return error;
    throw error;
  }
}

describe('preflight: label hierarchy', () => {
  it('refuses hmil and its hierarchy loss on data without a hierarchy, naming both slots and the fix', async () => {
    const error = await problems(['model/aggregator=hmil', '+model.losses.hier={name: hmil-hierarchy}']);
    expect(error?.code).toBe('missing-hierarchy');
    expect(error?.message).toContain('model.aggregator, model.losses.hier, data.hierarchy');
    expect(error?.message).toContain('aggregator "hmil" and loss "hmil-hierarchy" need two-level labels');
    expect(error?.message).toContain('classes: normal_tissue, tumor_tissue');
  });

  it('accepts the same run once data.hierarchy maps every class, and a coarse metric as the monitor', async () => {
    expect(await problems([
      'model/aggregator=hmil', '+model.losses.hier={name: hmil-hierarchy}', '+data.hierarchy={normal_tissue: benign, tumor_tissue: malignant}',
      'train.earlyStopping.monitor=val/coarse_auc', 'train.earlyStopping.mode=max',
    ])).toBeUndefined();
  });

  it('refuses a data.hierarchy that names a class the slide table does not have', async () => {
    const error = await problems(['+data.hierarchy={normal_tissue: benign, tumour_tissue: malignant}']);
    expect(error?.code).toBe('unknown-hierarchy-class');
    expect(error?.message).toContain('data.hierarchy.tumour_tissue');
    expect(error?.message).toContain('tumor_tissue');
  });
});
