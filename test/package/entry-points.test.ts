// The package entry points, as the tests (and the built-in plugins under vitest) resolve them: by package name,
// to the TypeScript sources (`milkit-source` condition), so the plugins and the core share one module instance.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as publicApi from 'milkit';
import * as nn from 'milkit/nn';
import * as testing from 'milkit/testing';
import { definePlugin, Module } from '../../src/registry/index.js';
import { Linear } from '../../src/core/nn/layers.js';
import { builtinManifest } from '../../plugins/index.js';

describe('package entry points (sources)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('`milkit` is the registry surface of the sources, not a copy from dist/', () => {
    expect(publicApi.definePlugin).toBe(definePlugin);
    expect(publicApi.Module).toBe(Module);
  });

  it('`milkit/nn` gathers the layers and ops plugins build on', () => {
    expect(nn.Linear).toBe(Linear);
    for (const name of ['Linear', 'LayerNorm', 'ModuleList', 'AttentionScorer', 'NystromAttention', 'ProjectedPool', 'constantOf', 'selectionMatrix', 'straightThroughGate', 'unionKeepRate', 'oneHotBceWithLogits', 'checkpointed', 'initWeight']) {
      expect(typeof (nn as Record<string, unknown>)[name], name).toBe('function');
    }
  });

  it('`milkit/testing` resolves', () => {
    expect(typeof testing).toBe('object');
  });

  it('a built-in plugin loaded through the manifest builds on the same Module class as the core', async () => {
    const loader = builtinManifest()['aggregator/abmil'];
    expect(loader).toBeDefined();
    const { default: abmil } = (await loader!()) as { default: { create: (options: unknown, ctx: unknown) => unknown; name: string; options: { parse(input: unknown): unknown } } };
    expect(abmil.name).toBe('abmil');
    const { Rng } = publicApi;
    const model = abmil.create(abmil.options.parse({}), { inputDim: 5, numClasses: 2, rng: new Rng(0) });
    expect(model).toBeInstanceOf(Module);
  });
});
