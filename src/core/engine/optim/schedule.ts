// Per-epoch learning-rate schedules, as closed forms of the torch schedulers the anchors step once per epoch:
// CosineAnnealingLR (MHIM-MIL v1; timm's cosine without warm-up for v2), StepLR and MultiStepLR (DTFD-MIL).
import type { TrainSection } from '../schema.js';

/** Learning rate of epoch `epoch` (0-indexed) under the train section's schedule. */
export function learningRateAt(train: TrainSection, epoch: number): number {
  if (!Number.isInteger(epoch) || epoch < 0) throw new RangeError(`learningRateAt: epoch must be an integer >= 0 (got ${epoch})`);
  const base = train.optimizer.lr;
  switch (train.schedule) {
    case 'constant':
      return base;
    case 'cosine':
      // eta_e = eta_min + (eta_0 - eta_min) (1 + cos(pi e / T)) / 2 with T = train.epochs.
      return train.minLr + ((base - train.minLr) * (1 + Math.cos((Math.PI * epoch) / train.epochs))) / 2;
    case 'step': {
      // MultiStepLR counts the milestones already reached (with multiplicity); StepLR decays every stepSize epochs.
      const decays = train.milestones === undefined ? Math.floor(epoch / train.stepSize) : train.milestones.filter((m) => m <= epoch).length;
      return base * train.gamma ** decays;
    }
  }
}
