// The recorded per-bag run: ABMIL (with dropout, so the step streams matter) on the toy bags, 3 epochs of Adam.
// Run by test/core/engine/bags-per-step.test.ts, and by record-per-bag-run.ts against the trainer as it was before
// train.bagsPerStep existed to record test/fixtures/trainer/per-bag-run.json (the same file, imported from the
// older sources; how, in that script's header), so `bagsPerStep: 1` is checked against training as it was.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { MilModel } from '../../../src/core/engine/model.js';
import type { TrainFoldOptions, TrainFoldResult } from '../../../src/core/engine/trainer.js';

export interface PerBagRun {
  readonly trainLoss: number[];
  readonly valLoss: number[];
  readonly weights: Record<string, number[]>;
}

export const PER_BAG_SECTION = { epochs: 3, optimizer: { name: 'adam', lr: 0.01 }, earlyStopping: { monitor: 'val/loss', select: 'last' } } as const;

export async function perBagRun(
  build: () => Promise<MilModel>,
  train: (model: MilModel, dir: string) => Promise<TrainFoldResult>,
): Promise<PerBagRun> {
  const model = await build();
  const dir = await mkdtemp(path.join(tmpdir(), 'milkit-per-bag-'));
  const result = await train(model, dir);
  const weights = Object.fromEntries(model.namedTensors().map(([name, e]) => [name, Array.from(e.variable.dataSync())]));
  model.dispose();
  return {
    trainLoss: result.history.map((h) => h.metrics['train/loss'] as number),
    valLoss: result.history.map((h) => h.metrics['val/loss'] as number),
    weights,
  };
}

export type { TrainFoldOptions };
