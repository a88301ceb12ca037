/**
 * Gate distillation into a pre-screener (strategy/gate-distillation)
 * Paper: J. Dong et al., "Fast and Accurate Gigapixel Pathological Image Classification with Hierarchical
 *   Distillation Multi-Instance Learning" (HDMIL), CVPR 2025 — stage 2, training LIPN against the frozen DMIN
 * Implements: targets M_HR = 1[S > 0] from the aggregator's per-branch gate logits S (capability gateLogits)
 *   computed in the aggregator's stage mode (HDMIL: train mode, dropout on, no noise), the pre-screener's
 *   branch scores on the thumbnails, and the pre-screener's own imitation loss as the whole objective (S is
 *   passed along for a pre-screener that calibrates on attention, docs/methods/hdmil.md#screened-keep-sets)
 *   (docs/methods/hdmil.md#lipn-training); the stage's configured losses score validation and test only
 * Symbols: S [N,K] gate logits · M_HR [N,K] 0/1 targets · O [N,K] pre-screener branch scores
 * Choices: stream labels `targets` (gate dropout) and `prescreener` are forks of the step stream; logs the
 *   union keep fraction of the targets and of the pre-screener (`train/target_kept`, `train/kept`)
 * Checked against: test/core/engine/hdmil-stages.test.ts (same numbers as the pre-stages HDMIL engine,
 *   test/fixtures/hdmil-baseline.json)
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { BAG_VIEWS, definePlugin, PluginError, type Aggregator, type Prescreener, type Strategy, type StrategyContext, type StrategyStep } from 'milkit';
import { stepGate, unionFraction } from 'milkit/nn';

class GateDistillation implements Strategy {
  readonly replacesModelLosses = true;
  private readonly gateLogits: NonNullable<Aggregator['gateLogits']>;
  private readonly branchScores: NonNullable<Prescreener['branchScores']>;
  private readonly imitationLoss: NonNullable<Prescreener['imitationLoss']>;
  /** The last step's scores and targets, read by stepMetrics inside the same step. */
  private last: { scores: tf.Tensor2D; targets: tf.Tensor2D } | undefined;

  constructor(ctx: StrategyContext) {
    const { aggregator, prescreener } = ctx.model;
    if (!aggregator.gateLogits || !prescreener?.branchScores || !prescreener.imitationLoss) {
      throw new PluginError('gate-distillation-unmet', 'strategy "gate-distillation" needs an aggregator with gateLogits and a pre-screener with branchScores and imitationLoss.', {
        hint: 'Use dmin with lipn, or another strategy.',
      });
    }
    this.gateLogits = aggregator.gateLogits.bind(aggregator);
    this.branchScores = prescreener.branchScores.bind(prescreener);
    this.imitationLoss = prescreener.imitationLoss.bind(prescreener);
  }

  lossTerms(step: StrategyStep): Record<string, tf.Scalar> {
    const thumbs = step.bag.views?.[BAG_VIEWS.thumbs] as tf.Tensor4D | undefined;
    if (!thumbs) throw new PluginError('missing-thumbnails', `slide ${step.bag.slideId}: the pre-screener reads the thumbs view, which the bag lacks.`, { hint: 'Use a dataset with thumbnails.' });
    // Targets in the aggregator's stage mode (HDMIL: train, dropout on), never with noise.
    const gateIo = { training: step.isTraining('aggregator'), rng: step.io.rng.fork('targets') };
    const gate = this.gateLogits({ slideId: step.bag.slideId, features: step.bag.features }, gateIo); // [N, K]  S
    const targets = stepGate(gate, 0) as tf.Tensor2D; // [N, K]  M_HR
    const scores = this.branchScores(thumbs, { training: step.isTraining('prescreener'), rng: step.io.rng.fork('prescreener') }); // [N, K]  O
    // Kept past the step's scope so stepMetrics may read them wherever it is called; freed at the next step (the
    // previous step's gradients are done by then; freeing them inside the tape would break its backward) or at dispose().
    this.release();
    this.last = { scores: tf.keep(scores), targets: tf.keep(targets) };
    // S goes along (no gradient flows to the frozen aggregator) for pre-screeners that weigh targets by attention.
    return { imitation: this.imitationLoss(scores, targets, gate) };
  }

  stepMetrics(): Record<string, number> {
    if (!this.last) return {};
    const { scores, targets } = this.last;
    const [rows = 0, branches = 1] = targets.shape;
    return { target_kept: unionFraction(targets.dataSync(), rows, branches), kept: unionFraction(tf.tidy(() => stepGate(scores, 0).dataSync()), rows, branches) };
  }

  dispose(): void {
    this.release();
  }

  private release(): void {
    if (this.last) tf.dispose([this.last.scores, this.last.targets]);
    this.last = undefined;
  }
}

export default definePlugin({
  kind: 'strategy',
  name: 'gate-distillation',
  summary: 'HDMIL stage 2: train the pre-screener to reproduce the aggregator\'s per-branch instance gates (imitation loss)',
  paper: { cite: 'Dong et al., Fast and Accurate Gigapixel Pathological Image Classification with Hierarchical Distillation Multi-Instance Learning, CVPR 2025' },
  options: z.strictObject({}),
  capabilities: { needsViews: ['thumbs'], requiresAggregator: ['gateLogits'], requiresTrainedPrescreener: true, batchedSteps: false },
  create: (_options, ctx) => new GateDistillation(ctx),
});
