// The models of the hot-spot benches (hotspots-step.ts, hotspots-dispatch.ts): milkit training configurations of
// the pooling models, DMIN + CKA, DSMIL and the attention models, dropout off, C = 2.
import { MilModel } from '../../src/core/engine/model.js';
import { silentLogger } from '../../src/core/logger.js';
import { Rng } from '../../src/core/runtime/random.js';
import type { Registry } from '../../src/registry/registry.js';

export const CLASSES = 2;
export const LABEL = 1;

export interface BenchModel {
  readonly aggregator: Record<string, unknown>;
  readonly classifier: string;
  readonly losses: Record<string, { name: string; weight: number; [k: string]: unknown }>;
}

export const HOTSPOT_MODELS: Record<string, BenchModel> = {
  'mean-pool': { aggregator: { name: 'mean-pool' }, classifier: 'linear', losses: { bag: { name: 'cross-entropy', weight: 1 } } },
  'max-pool': { aggregator: { name: 'max-pool' }, classifier: 'linear', losses: { bag: { name: 'cross-entropy', weight: 1 } } },
  // With a ReLU projection (E = 512) the gradient flows back through the pooling.
  'mean-pool-proj': { aggregator: { name: 'mean-pool', projectDim: 512 }, classifier: 'linear', losses: { bag: { name: 'cross-entropy', weight: 1 } } },
  'max-pool-proj': { aggregator: { name: 'max-pool', projectDim: 512 }, classifier: 'linear', losses: { bag: { name: 'cross-entropy', weight: 1 } } },
  // HDMIL stage 1 as hdmil.bench.ts trains it, dropout off so both trees draw the same masks (none).
  'dmin-cka': {
    aggregator: { name: 'dmin', dropout: 0 },
    classifier: 'cka',
    losses: {
      ce: { name: 'cross-entropy', weight: 0.7 },
      clu: { name: 'clam-instance', weight: 0.3 },
      mse: { name: 'embedding-mse', weight: 0.5 },
      kl: { name: 'logit-kl', weight: 0.5 },
      rate: { name: 'keep-rate', target: 0.6, weight: 2 },
    },
  },
  dsmil: { aggregator: { name: 'dsmil' }, classifier: 'linear', losses: { bag: { name: 'binary-cross-entropy', weight: 0.5 }, max: { name: 'dsmil-max-instance', weight: 0.5 } } },
  // The zoo bench's configurations of the attention models (test/bench/shared.ts), dropout off.
  abmil: { aggregator: { name: 'abmil', dropout: 0 }, classifier: 'linear', losses: { bag: { name: 'cross-entropy', weight: 1 } } },
  'clam-sb': { aggregator: { name: 'clam-sb', dropout: 0, attnDropout: 0 }, classifier: 'linear', losses: { bag: { name: 'cross-entropy', weight: 0.7 }, instance: { name: 'clam-instance', weight: 0.3 } } },
  'clam-mb': { aggregator: { name: 'clam-mb', dropout: 0, attnDropout: 0 }, classifier: 'linear', losses: { bag: { name: 'cross-entropy', weight: 0.7 }, instance: { name: 'clam-instance', weight: 0.3 } } },
};

/** The model `name` of HOTSPOT_MODELS over D-wide instances. */
export async function buildHotspotModel(registry: Registry, name: string, inputDim: number): Promise<MilModel> {
  const spec = HOTSPOT_MODELS[name];
  if (spec === undefined) throw new Error(`unknown bench model "${name}"`);
  const aggregator = await registry.resolve('aggregator', spec.aggregator, { key: 'model.aggregator' });
  const classifier = await registry.resolve('classifier', { name: spec.classifier }, { key: 'model.classifier' });
  const losses: Record<string, Awaited<ReturnType<Registry['resolve']>> & { weight: number }> = {};
  for (const [slot, { weight, ...ref }] of Object.entries(spec.losses)) losses[slot] = { ...(await registry.resolve('loss', ref, { key: `model.losses.${slot}` })), weight };
  return new MilModel(registry, { aggregator, classifier, losses: losses as never }, { inputDim, numClasses: CLASSES }, new Rng(`hotspots/${name}`), silentLogger);
}
