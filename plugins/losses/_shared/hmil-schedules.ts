// Epoch schedules of HMIL's loss (docs/methods/hmil.md#losses), shared by the hmil-hierarchy and supcon losses so
// both read the same α. e is the 0-based epoch, E the stage's epoch count; outside training (no epoch given)
// the schedules are read at e = 0.
import { z } from 'zod';
import type { LossTarget } from 'milkit';

/**
 * α(e), the weight of the coarse cross-entropy; SupCon is weighted 1 − α.
 *  - `quadratic`: α = 1 − (e/E)², what the original code computes (train_phase)
 *  - `linear`: α = 1 − e/E, the β of third-party notes of the paper [secondary]
 *  - `constant`: α = 1 (no curriculum: coarse CE at full weight, SupCon weight 0 unless set otherwise)
 */
export const AlphaSchedule = z.enum(['quadratic', 'linear', 'constant']);
export type AlphaSchedule = z.output<typeof AlphaSchedule>;

export function alphaAt(schedule: AlphaSchedule, epoch: number, totalEpochs: number): number {
  const t = totalEpochs > 0 ? epoch / totalEpochs : 0;
  if (schedule === 'quadratic') return 1 - t * t;
  if (schedule === 'linear') return 1 - t;
  return 1;
}

/**
 * τ(e), SupCon's temperature. `cosine`: τ = min + (max − min)(1 + cos(2π e/E))/2 — a full period over training, so
 * τ is max at e = 0, min at e = E/2 and back near max at e = E − 1 (the original's compute_temperature with
 * max 1, min 0.1). `constant`: τ = max.
 */
export const TemperatureSchedule = z.strictObject({
  schedule: z.enum(['cosine', 'constant']).default('cosine').describe('cosine: one full period over the epochs (the original); constant: always max'),
  max: z.number().positive().default(1).describe('τ at epoch 0 (and the constant value)'),
  min: z.number().positive().default(0.1).describe('τ at epoch E/2 (cosine)'),
});
export type TemperatureSchedule = z.output<typeof TemperatureSchedule>;

export function temperatureAt(options: TemperatureSchedule, epoch: number, totalEpochs: number): number {
  if (options.schedule === 'constant' || totalEpochs <= 0) return options.max;
  return options.min + ((options.max - options.min) * (1 + Math.cos((2 * Math.PI * epoch) / totalEpochs))) / 2;
}

/** The (epoch, E) a target is computed at: training's, or (0, 1) outside training. */
export function epochOf(target: LossTarget): { epoch: number; totalEpochs: number } {
  return { epoch: target.epoch ?? 0, totalEpochs: target.totalEpochs ?? 1 };
}
