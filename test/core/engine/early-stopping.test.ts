import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { EarlyStopping, type EarlyStoppingState } from '../../../src/core/engine/early-stopping.js';
import { EarlyStoppingSection, TrainSection } from '../../../src/core/engine/schema.js';
import { ConfigError, DataError } from '../../../src/core/errors.js';
import { Rng } from '../../../src/core/runtime/random.js';

type AnchorPreset = 'clam' | 'hdmil' | 'mhim-v1' | 'mhim-v1-tcga' | 'mhim-v2' | 'transmil' | 'dtfd';
type Preset = AnchorPreset | 'last-epoch';

/** The shipped group config experiments/groups/train/earlyStopping/<name>.yaml, parsed by the section schema. */
function preset(name: Preset): EarlyStoppingSection {
  const file = fileURLToPath(new URL(`../../../experiments/groups/train/earlyStopping/${name}.yaml`, import.meta.url));
  return EarlyStoppingSection.parse(parseYaml(readFileSync(file, 'utf8')));
}

interface Outcome {
  readonly stopEpoch: number | null;
  readonly bestEpoch: number | null;
}

/** Runs a rule over a scripted curve, as the trainer would: one update per epoch, break on stop. */
function run(rule: EarlyStopping, values: readonly number[]): Outcome {
  for (let epoch = 0; epoch < values.length; epoch += 1) {
    if (rule.update(epoch, values[epoch] as number).stop) return { stopEpoch: epoch, bestEpoch: rule.bestEpoch };
  }
  return { stopEpoch: null, bestEpoch: rule.bestEpoch };
}

/** A curve of `length` epochs: `fill(e)` everywhere, then the explicit `at` values. */
function curve(length: number, fill: (epoch: number) => number, at: Record<number, number> = {}): number[] {
  const values = Array.from({ length }, (_, e) => fill(e));
  for (const [epoch, value] of Object.entries(at)) values[Number(epoch)] = value;
  return values;
}

describe('core/engine/early-stopping presets on scripted curves', () => {
  it('CLAM: stops at epoch 51, not at 30 when the counter first reaches 20 (stop only when epoch > 50)', () => {
    // Loss falls to 0.5 at epoch 10, then stays at 0.6. Counter: e11 = 1 ... e30 = 20 (30 <= 50: go on) ...
    // e51 = 41 >= 20 and 51 > 50: stop at 51. Best = 10.
    const values = curve(200, (e) => (e <= 10 ? 1 - 0.05 * e : 0.6));
    expect(run(new EarlyStopping(preset('clam')), values)).toEqual({ stopEpoch: 51, bestEpoch: 10 });
  });

  it('CLAM: a tie is an improvement (new best epoch, counter reset)', () => {
    // As above plus a tie at epoch 40 (= the best loss of epoch 10): best moves to 40, counter resets;
    // e41 = 1 ... e60 = 20, 60 > 50: stop at 60.
    const values = curve(200, (e) => (e <= 10 ? 1 - 0.05 * e : 0.6));
    values[40] = values[10] as number;
    expect(run(new EarlyStopping(preset('clam')), values)).toEqual({ stopEpoch: 60, bestEpoch: 40 });
  });

  it('CLAM: after epoch 50 the plain patience applies (best 45, stop 65)', () => {
    // Improves every epoch up to 45, then 0.9: counter e46 = 1 ... e65 = 20 and 65 > 50: stop at 65.
    const values = curve(200, (e) => (e <= 45 ? 1 - 0.01 * e : 0.9));
    expect(run(new EarlyStopping(preset('clam')), values)).toEqual({ stopEpoch: 65, bestEpoch: 45 });
  });

  it('HDMIL: ignores epochs 0..48, strict improvement, stops 20 counted epochs after the best', () => {
    // 0-indexed e49 = 1-indexed epoch 50, the first considered. The 0.1 at e20 would win if it counted.
    // e49 0.9 (best) | e50-54 0.95: counter 1..5 | e55 0.8 (best, reset) | e56-59: 1..4 |
    // e60 0.8 = tie, strict: 5 | ... | e75: 20 -> stop at 75 (1-indexed 76). Best = 55.
    const values = curve(200, (e) => (e < 49 ? 1 : 0.95), { 20: 0.1, 49: 0.9, 55: 0.8, 60: 0.8 });
    const rule = new EarlyStopping(preset('hdmil'));
    expect(rule.update(0, values[0] as number)).toEqual({ improved: false, stop: false });
    expect(run(new EarlyStopping(preset('hdmil')), values)).toEqual({ stopEpoch: 75, bestEpoch: 55 });
  });

  it('HDMIL: a NaN validation loss counts as no improvement and is never selected', () => {
    // e49 NaN: counter 1 | e50 0.9: best, reset | then 0.95: counter 20 at e70.
    const values = curve(200, () => 0.95, { 49: Number.NaN, 50: 0.9 });
    expect(run(new EarlyStopping(preset('hdmil')), values)).toEqual({ stopEpoch: 70, bestEpoch: 50 });
  });

  it('MHIM-MIL v1 (C16): AUC, ties reset the counter but keep the first best; stop only after epoch 130', () => {
    // AUC rises to its maximum at e20, then 0.85; e120 ties the maximum: counter reset, best stays 20.
    // e121..e150: counter 1..30, 150 > 130: stop at 150.
    const values = curve(200, (e) => (e <= 20 ? 0.5 + 0.02 * e : 0.85));
    values[120] = values[20] as number;
    expect(run(new EarlyStopping(preset('mhim-v1')), values)).toEqual({ stopEpoch: 150, bestEpoch: 20 });
    // Without the tie reset the counter (100 at e120) would already allow the stop at e131.
    const noReset = EarlyStoppingSection.parse({ ...preset('mhim-v1'), tiesReset: false });
    expect(run(new EarlyStopping(noReset), values)).toEqual({ stopEpoch: 131, bestEpoch: 20 });
  });

  it('MHIM-MIL v1 (TCGA) and v2: patience 20, earliest stop after epoch 70 / 100', () => {
    // Best at e10, flat below afterwards: counter 20 at e30, but the stop waits for e71 / e101.
    const values = curve(200, (e) => (e <= 10 ? 0.6 + 0.03 * e : 0.8));
    expect(run(new EarlyStopping(preset('mhim-v1-tcga')), values)).toEqual({ stopEpoch: 71, bestEpoch: 10 });
    expect(run(new EarlyStopping(preset('mhim-v2')), values)).toEqual({ stopEpoch: 101, bestEpoch: 10 });
  });

  it('TransMIL: validation loss, patience 10, ties do not reset', () => {
    // Loss falls to its minimum at e7; e12 ties it (strict: counter 5); counter 10 at e17: stop at 17, best 7.
    const values = curve(200, (e) => (e <= 7 ? 1 - 0.1 * e : 0.5));
    values[12] = values[7] as number;
    expect(run(new EarlyStopping(preset('transmil')), values)).toEqual({ stopEpoch: 17, bestEpoch: 7 });
  });

  it('DTFD-MIL: never stops; selects the best AUC among epochs > int(0.8 * 200) = 160', () => {
    // e100 has the highest AUC but is not eligible; eligible e161 0.8, e170 0.85 (best), e180 ties it (strict).
    const values = curve(200, (e) => (e <= 160 ? 0.7 : 0.84), { 100: 0.99, 161: 0.8, 170: 0.85, 180: 0.85 });
    const rule = EarlyStopping.fromTrain(TrainSection.parse({ epochs: 200, earlyStopping: preset('dtfd') }));
    expect(rule.firstCountedEpoch).toBe(161);
    expect(run(rule, values)).toEqual({ stopEpoch: null, bestEpoch: 170 });
    expect(EarlyStopping.fromTrain(TrainSection.parse({ epochs: 100, earlyStopping: preset('dtfd') })).firstCountedEpoch).toBe(81);
  });
});

// Independent transcriptions of each original training loop's bookkeeping (docs/methods/training.md#early-stopping:
// CLAM, HDMIL, MHIM-MIL, TransMIL, DTFD-MIL), written as the loops read, to cross-check the one general rule on many tie-heavy curves.
const oracles: Record<AnchorPreset, (values: readonly number[]) => Outcome> = {
  clam: (values) => {
    let bestScore: number | null = null;
    let counter = 0;
    let bestEpoch: number | null = null;
    for (let epoch = 0; epoch < values.length; epoch += 1) {
      const score = -(values[epoch] as number);
      if (bestScore === null) {
        bestScore = score;
        bestEpoch = epoch;
      } else if (score < bestScore) {
        counter += 1;
        if (counter >= 20 && epoch > 50) return { stopEpoch: epoch, bestEpoch };
      } else {
        bestScore = score;
        bestEpoch = epoch;
        counter = 0;
      }
    }
    return { stopEpoch: null, bestEpoch };
  },
  hdmil: (values) => {
    let best = Number.POSITIVE_INFINITY;
    let counter = 0;
    let bestEpoch: number | null = null;
    for (let epoch1 = 1; epoch1 <= values.length; epoch1 += 1) {
      const loss = values[epoch1 - 1] as number;
      if (epoch1 >= 50) {
        if (loss < best) {
          counter = 0;
          best = loss;
          bestEpoch = epoch1 - 1;
        } else {
          counter += 1;
          if (counter >= 20) return { stopEpoch: epoch1 - 1, bestEpoch };
        }
      }
    }
    return { stopEpoch: null, bestEpoch };
  },
  'mhim-v1': (values) => mhimOracle(values, 30, 130),
  'mhim-v1-tcga': (values) => mhimOracle(values, 20, 70),
  'mhim-v2': (values) => mhimOracle(values, 20, 100),
  transmil: (values) => {
    let best = Number.POSITIVE_INFINITY; // Lightning EarlyStopping, mode min, min_delta 0
    let wait = 0;
    let checkpointLoss: number | null = null; // ModelCheckpoint(save_top_k=1, mode='min')
    let bestEpoch: number | null = null;
    for (let epoch = 0; epoch < values.length; epoch += 1) {
      const loss = values[epoch] as number;
      if (checkpointLoss === null || loss < checkpointLoss) {
        checkpointLoss = loss;
        bestEpoch = epoch;
      }
      if (loss < best) {
        best = loss;
        wait = 0;
      } else {
        wait += 1;
        if (wait >= 10) return { stopEpoch: epoch, bestEpoch };
      }
    }
    return { stopEpoch: null, bestEpoch };
  },
  dtfd: (values) => {
    let bestAuc = 0;
    let bestEpoch: number | null = null;
    for (let epoch = 0; epoch < values.length; epoch += 1) {
      const auc = values[epoch] as number;
      if (epoch > Math.trunc(values.length * 0.8) && auc > bestAuc) {
        bestAuc = auc;
        bestEpoch = epoch;
      }
    }
    return { stopEpoch: null, bestEpoch };
  },
};

function mhimOracle(values: readonly number[], patience: number, stopEpoch: number): Outcome {
  let bestScore: number | null = null; // EarlyStopping(epoch, -auc): score = auc
  let counter = 0;
  let optAuc = 0; // selection: auc > opt_auc, saved as the best model
  let bestEpoch: number | null = null;
  for (let epoch = 0; epoch < values.length; epoch += 1) {
    const auc = values[epoch] as number;
    let stop = false;
    if (bestScore === null) {
      bestScore = auc;
    } else if (auc < bestScore) {
      counter += 1;
      if (counter >= patience && epoch > stopEpoch) stop = true;
    } else {
      bestScore = auc;
      counter = 0;
    }
    if (auc > optAuc) {
      optAuc = auc;
      bestEpoch = epoch;
    }
    if (stop) return { stopEpoch: epoch, bestEpoch };
  }
  return { stopEpoch: null, bestEpoch };
}

/** A noisy, coarsely quantised 200-epoch curve (many exact ties), improving or plateauing over time. */
function randomCurve(rng: Rng, kind: 'loss' | 'auc', withNaN: boolean): number[] {
  const plateauAt = 20 + rng.int(160);
  return Array.from({ length: 200 }, (_, e) => {
    if (withNaN && rng.next() < 0.02) return Number.NaN;
    const progress = Math.min(e, plateauAt) / 200;
    const noisy = kind === 'loss' ? 1 - 0.6 * progress + 0.15 * rng.next() : 0.5 + 0.4 * progress + 0.1 * rng.next();
    return Math.round(noisy * 40) / 40;
  });
}

describe('core/engine/early-stopping against transcriptions of the original loops', () => {
  const cases: Array<[AnchorPreset, 'loss' | 'auc', boolean]> = [
    ['clam', 'loss', false],
    ['hdmil', 'loss', true],
    ['mhim-v1', 'auc', false],
    ['mhim-v1-tcga', 'auc', false],
    ['mhim-v2', 'auc', false],
    ['transmil', 'loss', false],
    ['dtfd', 'auc', false],
  ];
  it.each(cases)('%s agrees with the original on 300 seeded curves', (name, kind, withNaN) => {
    const rng = new Rng(`early-stopping/${name}`);
    let stops = 0;
    for (let i = 0; i < 300; i += 1) {
      const values = randomCurve(rng, kind, withNaN);
      const ours = run(EarlyStopping.fromTrain(TrainSection.parse({ epochs: 200, earlyStopping: preset(name) })), values);
      expect(ours, `curve ${i}: ${values.join(',')}`).toEqual(oracles[name](values));
      if (ours.stopEpoch !== null) stops += 1;
    }
    // The curves must exercise stopping, not only selection (DTFD never stops by design).
    if (name !== 'dtfd') expect(stops).toBeGreaterThan(30);
  });
});

describe('core/engine/early-stopping resume and validation', () => {
  it('continues from state() exactly as an uninterrupted run', () => {
    const values = curve(200, (e) => (e <= 20 ? 0.5 + 0.02 * e : 0.85));
    values[120] = values[20] as number;
    const straight = run(new EarlyStopping(preset('mhim-v1')), values);
    const first = new EarlyStopping(preset('mhim-v1'));
    for (let e = 0; e < 125; e += 1) first.update(e, values[e] as number);
    const saved = JSON.parse(JSON.stringify(first.state())) as EarlyStoppingState;
    expect(saved).toEqual({ monitor: 'val/auc', mode: 'max', counter: 4, bestValue: values[20], bestEpoch: 20, lastEpoch: 124, stopped: false });
    const resumed = EarlyStopping.fromState(preset('mhim-v1'), saved);
    let stopEpoch: number | null = null;
    for (let e = 125; e < values.length && stopEpoch === null; e += 1) if (resumed.update(e, values[e] as number).stop) stopEpoch = e;
    expect({ stopEpoch, bestEpoch: resumed.bestEpoch }).toEqual(straight);
  });

  it('refuses a saved state of a rule watching another metric', () => {
    const state = new EarlyStopping(preset('clam')).state();
    expect(() => EarlyStopping.fromState(preset('mhim-v1'), state)).toThrow(DataError);
    expect(() => EarlyStopping.fromState(preset('mhim-v1'), state)).toThrow(
      'the saved early-stopping state watches val/loss (min) but the rule watches val/auc (max).',
    );
    expect(() => EarlyStopping.fromState(preset('clam'), { ...state, counter: -1 })).toThrow(/malformed/);
  });

  it('rejects epochs that do not increase', () => {
    const rule = new EarlyStopping(preset('transmil'));
    rule.update(3, 1);
    expect(() => rule.update(3, 1)).toThrow('EarlyStopping.update: epoch must be an integer > 3 (got 3)');
  });

  it('refuses rules that can select no epoch, before training starts', () => {
    const train = TrainSection.parse({ epochs: 40, earlyStopping: preset('hdmil') });
    expect(() => EarlyStopping.fromTrain(train)).toThrow(ConfigError);
    expect(() => EarlyStopping.fromTrain(train)).toThrow(
      'the early-stopping rule ignores epochs 0..48, which leaves none of the 40 training epochs to select from.',
    );
    expect(() => new EarlyStopping(preset('dtfd'))).toThrow('minEpochsFraction needs the number of training epochs.');
    expect(EarlyStoppingSection.safeParse({ minEpochs: 5, minEpochsFraction: 0.5 }).error?.issues[0]?.message).toBe(
      'set either minEpochs or minEpochsFraction, not both',
    );
  });

  it('never stops under the last-epoch preset, whatever the curve does', () => {
    const rising = Array.from({ length: 60 }, (_, e) => 1 + e / 10);
    const rule = new EarlyStopping(preset('last-epoch'));
    expect(preset('last-epoch').select).toBe('last');
    expect(run(rule, rising)).toEqual({ stopEpoch: null, bestEpoch: 0 });
  });

  it('ships each preset with only the fields that differ from the defaults', () => {
    const defaults = EarlyStoppingSection.parse({});
    const names: Preset[] = ['clam', 'hdmil', 'mhim-v1', 'mhim-v1-tcga', 'mhim-v2', 'transmil', 'dtfd', 'last-epoch'];
    for (const name of names) {
      const file = fileURLToPath(new URL(`../../../experiments/groups/train/earlyStopping/${name}.yaml`, import.meta.url));
      const raw = parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown>;
      for (const [key, value] of Object.entries(raw)) expect(value, `${name}.${key}`).not.toEqual(defaults[key as keyof typeof defaults]);
    }
  });
});
