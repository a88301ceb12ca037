// Model selection and early stopping over one logged validation metric, general enough to reproduce the
// anchors' rules exactly (docs/methods/training.md#early-stopping; presets in
// experiments/groups/train/earlyStopping/). All epochs are 0-indexed, as the trainer counts them.
//
// One rule, per epoch e with value x, after the first `minEpochs` epochs (ignored entirely):
//   better  = x < best (min) or x > best (max); the first counted finite x is always better;
//   tie     = x == best;
//   improved (new best epoch) = better, or tie when !strict;
//   counter = 0 when improved or (tie and tiesReset), else counter + 1;
//   stop    = enabled and counter >= patience and (stopAfterEpoch unset or e > stopAfterEpoch).
// Non-finite values never become the best and count as no improvement (HDMIL and Lightning behave so; CLAM's
// class would instead adopt a NaN loss as its best, which we do not reproduce).
import { ConfigError, DataError } from '../errors.js';
import type { EarlyStoppingSection, TrainSection } from './schema.js';

/** Everything needed to resume the rule mid-run (JSON-safe). */
export interface EarlyStoppingState {
  readonly monitor: string;
  readonly mode: 'min' | 'max';
  readonly counter: number;
  readonly bestValue: number | null;
  readonly bestEpoch: number | null;
  readonly lastEpoch: number | null;
  readonly stopped: boolean;
}

export interface EarlyStoppingOptions {
  /** train.epochs; needed by minEpochsFraction and used to reject rules that can select no epoch. */
  readonly epochs?: number;
}

/** Outcome of one epoch: `improved` = this epoch is the new best (save it); `stop` = end training after it. */
export interface EarlyStoppingUpdate {
  readonly improved: boolean;
  readonly stop: boolean;
}

/** First 0-indexed epoch the rule looks at. */
function firstCountedEpoch(rule: EarlyStoppingSection, epochs: number | undefined): number {
  if (rule.minEpochsFraction === undefined) return rule.minEpochs;
  if (epochs === undefined) {
    throw new ConfigError('missing-epochs', 'minEpochsFraction needs the number of training epochs.', {
      where: { key: 'train.earlyStopping.minEpochsFraction' },
      hint: 'Build the rule with EarlyStopping.fromTrain(train) or pass { epochs }.',
    });
  }
  // DTFD-MIL keeps epochs with ii > int(EPOCH * 0.8); the same float64 product gives the same cut.
  return Math.floor(epochs * rule.minEpochsFraction) + 1;
}

export class EarlyStopping {
  readonly monitor: string;
  readonly mode: 'min' | 'max';
  /** First 0-indexed epoch that is selected or counted; earlier epochs are ignored. */
  readonly firstCountedEpoch: number;
  private counter = 0;
  private best: number | null = null;
  private bestAt: number | null = null;
  private last: number | null = null;
  private hasStopped = false;

  constructor(
    private readonly rule: EarlyStoppingSection,
    options: EarlyStoppingOptions = {},
  ) {
    this.monitor = rule.monitor;
    this.mode = rule.mode;
    this.firstCountedEpoch = firstCountedEpoch(rule, options.epochs);
    if (options.epochs !== undefined && this.firstCountedEpoch >= options.epochs) {
      const key = rule.minEpochsFraction === undefined ? 'minEpochs' : 'minEpochsFraction';
      throw new ConfigError(
        'no-eligible-epoch',
        `the early-stopping rule ignores epochs 0..${this.firstCountedEpoch - 1}, which leaves none of the ${options.epochs} training epochs to select from.`,
        { where: { key: `train.earlyStopping.${key}` }, hint: `Lower train.earlyStopping.${key} or raise train.epochs.` },
      );
    }
  }

  /** The rule of `train.earlyStopping`, with `train.epochs` known. */
  static fromTrain(train: TrainSection): EarlyStopping {
    return new EarlyStopping(train.earlyStopping, { epochs: train.epochs });
  }

  /** A rule that continues from `state` (written by `state()` of a rule with the same monitor and mode). */
  static fromState(rule: EarlyStoppingSection, state: EarlyStoppingState, options: EarlyStoppingOptions = {}): EarlyStopping {
    const restored = new EarlyStopping(rule, options);
    if (state.monitor !== rule.monitor || state.mode !== rule.mode) {
      throw new DataError(
        'early-stopping-state-mismatch',
        `the saved early-stopping state watches ${state.monitor} (${state.mode}) but the rule watches ${rule.monitor} (${rule.mode}).`,
        { where: { key: 'train.earlyStopping' }, hint: 'Resume with the train.earlyStopping settings of the interrupted run.' },
      );
    }
    const isEpoch = (v: unknown): boolean => v === null || (Number.isInteger(v) && (v as number) >= 0);
    const valid =
      Number.isInteger(state.counter) && state.counter >= 0 && isEpoch(state.bestEpoch) && isEpoch(state.lastEpoch) &&
      (state.bestValue === null || Number.isFinite(state.bestValue)) && (state.bestValue === null) === (state.bestEpoch === null) &&
      typeof state.stopped === 'boolean';
    if (!valid) {
      throw new DataError('early-stopping-state-invalid', `the saved early-stopping state is malformed (${JSON.stringify(state)}).`, {
        where: { key: 'train.earlyStopping' },
        hint: 'The checkpoint is damaged; resume from an earlier one or restart the run.',
      });
    }
    restored.counter = state.counter;
    restored.best = state.bestValue;
    restored.bestAt = state.bestEpoch;
    restored.last = state.lastEpoch;
    restored.hasStopped = state.stopped;
    return restored;
  }

  /** Feeds the monitored value of `epoch` (0-indexed, strictly increasing across calls). */
  update(epoch: number, value: number): EarlyStoppingUpdate {
    if (!Number.isInteger(epoch) || epoch < 0 || (this.last !== null && epoch <= this.last)) {
      throw new RangeError(`EarlyStopping.update: epoch must be an integer > ${this.last ?? -1} (got ${epoch})`);
    }
    this.last = epoch;
    if (epoch < this.firstCountedEpoch) return { improved: false, stop: false };

    const finite = Number.isFinite(value);
    let better: boolean;
    let tie = false;
    if (this.best === null) {
      better = finite;
    } else {
      better = this.mode === 'min' ? value < this.best : value > this.best;
      tie = value === this.best;
    }
    const improved = better || (tie && !this.rule.strict);
    if (improved) {
      this.best = value;
      this.bestAt = epoch;
    }
    this.counter = improved || (tie && this.rule.tiesReset) ? 0 : this.counter + 1;

    const pastEarliestStop = this.rule.stopAfterEpoch === undefined || epoch > this.rule.stopAfterEpoch;
    const stop = this.rule.enabled && this.counter >= this.rule.patience && pastEarliestStop;
    if (stop) this.hasStopped = true;
    return { improved, stop };
  }

  /** Epoch of the selected model (null while no counted epoch had a finite value). */
  get bestEpoch(): number | null {
    return this.bestAt;
  }

  get bestValue(): number | null {
    return this.best;
  }

  /** Counted epochs since the counter was last reset. */
  get patienceCounter(): number {
    return this.counter;
  }

  /** Whether some update has asked to stop. */
  get stopped(): boolean {
    return this.hasStopped;
  }

  state(): EarlyStoppingState {
    return {
      monitor: this.monitor,
      mode: this.mode,
      counter: this.counter,
      bestValue: this.best,
      bestEpoch: this.bestAt,
      lastEpoch: this.last,
      stopped: this.hasStopped,
    };
  }
}
