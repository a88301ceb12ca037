import { describe, expect, it } from 'vitest';
import { builtinRegistry } from '../../helpers/registry.js';

const registry = builtinRegistry();

describe('MIL zoo option errors', () => {
  it.each([
    ['aggregator', { name: 'abmil', dropout: 1 }],
    ['aggregator', { name: 'abmil', attnActivaton: 'relu' }],
    ['aggregator', { name: 'clam-sb', size: 'huge' }],
    ['aggregator', { name: 'clam-mb', kSample: -1 }],
    ['aggregator', { name: 'dsmil', init: 'kaiming' }],
    ['aggregator', { name: 'transmil', embedDim: 100, heads: 8 }],
    ['aggregator', { name: 'transmil', residualKernel: 32 }],
    ['aggregator', { name: 'dtfd-mil', distill: 'maxmins', totalInstance: 2 }],
    ['classifier', { name: 'mlp', hiddenDims: [0] }],
    ['loss', { name: 'clam-instance', fn: 'hinge' }],
  ] as const)('%s %j is rejected with a pinned message', async (kind, ref) => {
    let message = '';
    try {
      await registry.resolve(kind, ref, { file: 'exp.yaml', key: `model.${kind}` });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatchSnapshot();
  });
});
