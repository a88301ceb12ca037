// Memory budget of a bag: before a large bag is run, its peak tensor memory is estimated and compared with the
// backend's limit, so an oversized bag ends in one clear error instead of a wasm trap ("table index is out of
// bounds") or a swapping machine. See docs/runtime.md#memory-budget.
//
// The estimate is measured, not tabulated: the model's own step (forward, losses and gradients for training;
// forward alone for evaluation) is profiled on the real bag cut to two small sizes, and the peak is extrapolated
// linearly in N. That works for any aggregator, a user's plugin included, without a formula per model; every
// built-in aggregator's activations grow linearly in N (TransMIL's Nyström attention uses a fixed number of
// landmarks and its PPEG pads N to the next square, which is linear too).
import { totalmem } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { BackendError } from '../errors.js';
import { bagToTensors } from '../data/bags.js';
import type { Rng } from '../runtime/random.js';
import type { BagData } from '../../registry/contracts/data.js';
import { disposeBag } from './bag-tensors.js';
import type { MilModel } from './model.js';

/** What the estimate is for: a training step (activations kept for the backward pass) or an evaluation forward. */
export type BudgetMode = 'train' | 'eval';

/** Largest wasm32 heap Emscripten lets tfjs grow to (getHeapMax: 4 GiB − 64 KiB). */
export const WASM_HEAP_MAX_BYTES = 4_294_901_760;
/** Share of the limit a bag may plan to use: the allocator's fragmentation and host copies need the rest. */
const USABLE_SHARE = 0.85;

export interface MemoryLimit {
  readonly bytes: number;
  /** What the limit is (named in the error). */
  readonly what: string;
}

/** The default limit of a backend: the wasm heap's ceiling, else the machine's memory. */
export function defaultMemoryLimit(backend: string, configured?: number): MemoryLimit {
  if (configured !== undefined) return { bytes: configured, what: 'runtime.memoryLimit' };
  if (backend === 'wasm') return { bytes: Math.floor(WASM_HEAP_MAX_BYTES * USABLE_SHARE), what: `${Math.round(USABLE_SHARE * 100)} % of the wasm heap's 4 GiB ceiling` };
  return { bytes: Math.floor(totalmem() * USABLE_SHARE), what: `${Math.round(USABLE_SHARE * 100)} % of this machine's memory` };
}

/** Peak tensor bytes of one step on `data` cut to `n` rows (the real step, profiled). */
export type PeakProbe = (n: number, mode: BudgetMode, data: BagData) => Promise<number>;

export interface MemoryBudgetOptions {
  readonly limit: MemoryLimit;
  /** Aggregator name, for the message. */
  readonly model: string;
  readonly probe: PeakProbe;
  /** Bags smaller than this are not checked (no built-in model comes near the limit there); default 4,096. */
  readonly checkFrom?: number;
  /** The two probe sizes; default 512 and 2,048 (clamped below the bag size). */
  readonly probeSizes?: readonly [number, number];
  /** A measured lower bound at N the estimate is raised to (the aggregator's minimumPeakBytes). */
  readonly floor?: (n: number, mode: BudgetMode) => number | undefined;
}

export interface PeakEstimate {
  /** Bytes at N = 0 (weights, optimizer state, constant buffers). */
  readonly fixed: number;
  /** Bytes per instance. */
  readonly perInstance: number;
  readonly probedAt: readonly [number, number];
}

/** Per-model budget: calibrates lazily on the first bag large enough to matter, then checks every bag. */
export class MemoryBudget {
  private readonly estimates = new Map<BudgetMode, PeakEstimate>();
  readonly checkFrom: number;

  constructor(private readonly options: MemoryBudgetOptions) {
    this.checkFrom = options.checkFrom ?? 4096;
  }

  /** The fitted line, once calibrated for `mode`. */
  estimateFor(mode: BudgetMode): PeakEstimate | undefined {
    return this.estimates.get(mode);
  }

  /** Estimated peak bytes at `n` instances (calibrating on this bag first when needed). */
  async estimate(data: BagData, mode: BudgetMode, n = data.n): Promise<number> {
    const fit = await this.calibrate(data, mode);
    return Math.max(fit.fixed + fit.perInstance * n, this.options.floor?.(n, mode) ?? 0);
  }

  /**
   * Throws a BackendError before any compute when the bag, run at `n` instances (its size after instance
   * sampling), would not fit; `where` names the bag (`fold 0, slide S`). Bags under `checkFrom` pass unprobed.
   */
  async check(data: BagData, mode: BudgetMode, where: string, n = data.n): Promise<void> {
    if (n < this.checkFrom) return;
    const bytes = await this.estimate(data, mode, n);
    if (bytes <= this.options.limit.bytes) return;
    const fit = this.estimates.get(mode)!;
    const floorAt = (count: number): number => this.options.floor?.(count, mode) ?? 0;
    let largest = Math.max(0, Math.floor((this.options.limit.bytes - fit.fixed) / Math.max(fit.perInstance, 1)));
    if (floorAt(largest) > this.options.limit.bytes) {
      // The floor grows with N: the largest count under it too, by bisection (it is monotone in N).
      let low = 0;
      let high = largest;
      while (low < high) {
        const mid = Math.ceil((low + high) / 2);
        if (floorAt(mid) <= this.options.limit.bytes) low = mid;
        else high = mid - 1;
      }
      largest = low;
    }
    const how = floorAt(n) > fit.fixed + fit.perInstance * n
      ? `the wasm heap this aggregator was measured to need at this size, above the ${formatBytes(fit.fixed + fit.perInstance * n)} extrapolated from ${fit.probedAt.map((p) => p.toLocaleString('en-US')).join(' and ')} instances`
      : `measured at ${fit.probedAt.map((p) => p.toLocaleString('en-US')).join(' and ')} instances and extrapolated`;
    throw new BackendError(
      'memory-budget-exceeded',
      `${where}: a ${mode === 'train' ? 'training step' : 'forward pass'} of ${this.options.model} on N = ${n.toLocaleString('en-US')} instances needs about ${formatBytes(bytes)} ` +
        `(${how}), over the limit of ${formatBytes(this.options.limit.bytes)} (${this.options.limit.what}). ` +
        `About ${largest.toLocaleString('en-US')} instances fit.`,
      {
        hint:
          `Cap bags with data.maxInstances (instance sampling), choose a smaller model, or run on the tensorflow backend ` +
          `(npm install @tensorflow/tfjs-node; its limit is the machine's memory); runtime.memoryLimit sets the limit. Nothing was computed for this bag.`,
      },
    );
  }

  private async calibrate(data: BagData, mode: BudgetMode): Promise<PeakEstimate> {
    const known = this.estimates.get(mode);
    if (known) return known;
    const n = data.n;
    const [wantSmall, wantLarge] = this.options.probeSizes ?? [512, 2048];
    // Both probes must be smaller than the bag (they cut it) and distinct.
    const large = Math.max(2, Math.min(wantLarge, Math.floor(n / 2)));
    const small = Math.max(1, Math.min(wantSmall, Math.floor(large / 4)));
    const peakSmall = await this.options.probe(small, mode, data);
    const peakLarge = await this.options.probe(large, mode, data);
    const perInstance = Math.max(0, (peakLarge - peakSmall) / (large - small));
    const fit: PeakEstimate = { fixed: Math.max(0, peakSmall - perInstance * small), perInstance, probedAt: [small, large] };
    this.estimates.set(mode, fit);
    return fit;
  }
}

/** Peak total tensor bytes while `fn` runs (tf.profile), with everything it returns disposed. */
export async function profilePeakBytes(fn: () => tf.TensorContainer): Promise<number> {
  const info = await tf.profile(() => {
    const out = fn();
    tf.dispose(out);
    return [] as tf.Tensor[];
  });
  return info.peakBytes;
}

export interface ModelProbeOptions {
  readonly model: MilModel;
  /** Label used for the probe's losses (any valid class). */
  readonly label: number;
  readonly numClasses: number;
  readonly views: readonly string[];
  /** Variables the step differentiates (the stage's trained ones). */
  readonly variables: readonly tf.Variable[];
  /** A throwaway stream: probes must not consume the training streams. */
  readonly rng: Rng;
}

/**
 * Probe of the model's own step: forward + losses + gradients (train) or forward (eval). A stage strategy's extra
 * modules (a teacher's forward, for instance) are not in it; docs/runtime.md#memory-budget says so. Buffers a
 * training forward updates (BatchNorm running statistics) are restored, so probing changes no result.
 */
export function modelStepProbe(options: ModelProbeOptions): PeakProbe {
  const { model } = options;
  // The bag about to run is cut to the probe's size (a random subset of rows, views cut alike).
  return async (n, mode, data) => {
    const buffers = model.namedTensors().filter(([, entry]) => !entry.trainable).map(([, entry]) => [entry.variable, tf.clone(entry.variable)] as const);
    const wasTraining = model.training;
    model.setTraining(mode === 'train');
    const bag = bagToTensors(data, { maxInstances: n, rng: options.rng.fork(`memory-probe-${n}`), views: options.views });
    const io = { training: mode === 'train', rng: options.rng.fork(`memory-probe-io-${n}`) };
    try {
      return await profilePeakBytes(() => {
        if (mode === 'eval') return model.forward(bag, io) as unknown as tf.TensorContainer;
        const { value, grads } = tf.variableGrads(() => model.losses(model.forward(bag, io), options.label, options.numClasses).total, [...options.variables]);
        return [value, ...Object.values(grads)];
      });
    } finally {
      disposeBag(bag);
      for (const [variable, saved] of buffers) {
        variable.assign(saved);
        saved.dispose();
      }
      model.setTraining(wasTraining);
    }
  };
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(0)} MB`;
  return `${Math.round(bytes / 1024)} KB`;
}

/** `runtime.memoryLimit` values: a byte count or a size such as "3.5GB", "512MB". */
export function parseByteSize(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? value : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB)?\s*$/i.exec(value);
  if (!match) return undefined;
  const scale = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }[(match[2] ?? 'B').toUpperCase() as 'B'];
  return Number(match[1]) * scale;
}
