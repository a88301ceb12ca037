// Where does a trained model's attention point on hierarchical MNIST? Reads one fold of a finished run (or sweep
// job) on its test bags and scores several read-outs of the attention against the key-digit ground truth, so the
// instance AUC the run reports (the true fine class's attention row, pooled over bags) can be told apart from the
// other ways of reading the same model (docs/methods/hmil.md#attention-of-hmil-on-hierarchical-mnist).
//   node --conditions=milkit-source --import tsx experiments/hmil/attention-readout.ts <run or job folder> [fold]
// Prints one JSON line per read-out. The per-instance evidence s_n is the model's fine logits on the one-instance
// bag {x_n}: with N = 1 every attention row is 1, so for a shared-head model (HMIL) logit_k = w·h2_n + b for every k,
// and a bag's fine logit k is the attention-weighted mean of its instances' s_n.
import * as tf from '@tensorflow/tfjs';
import { builtinRegistry } from '../../test/contracts/builtins.js';
import { openCohort } from '../../src/core/engine/predict-cohort.js';
import { openTrainedRun } from '../../src/core/engine/predict-run.js';
import { fullPass } from '../../src/core/engine/screening.js';
import { buildViews } from '../../src/core/data/bags.js';
import { binaryAuc } from '../../src/core/eval/classification.js';
import { silentLogger } from '../../src/core/logger.js';
import { HIERARCHY_EXTRAS } from '../../src/index.js';
import type { BagData } from '../../src/registry/contracts/data.js';

const [runDir, foldArg] = process.argv.slice(2);
if (!runDir) throw new Error('usage: attention-readout.ts <run or job folder> [fold]');
const registry = builtinRegistry();
const cwd = process.cwd();
const run = await openTrainedRun({ runDir, registry, logger: silentLogger, cwd, env: process.env, ...(foldArg !== undefined ? { fold: Number(foldArg) } : {}) });
const fold = run.folds[0];
if (!fold) throw new Error('no fold');
const cohort = await openCohort(undefined, run, { registry, cwd, logger: silentLogger });
const testIds = new Set(run.splits?.find((f) => f.index === fold.fold)?.test ?? []);
const slides = cohort.source.slides.filter((s) => testIds.has(s.slideId));
const hierarchy = fold.model.hierarchy;
const io = { training: false, rng: fold.testRng() };
const views = fold.model.capabilities.needsViews;
fold.model.setTraining(false);

/** Scores and truths of one read-out, pooled over bags, and the per-bag AUCs (bags with both kinds of instance). */
class Readout {
  readonly scores: number[] = [];
  readonly truth: boolean[] = [];
  readonly perBag: number[] = [];
  add(scores: ArrayLike<number>, truth: ArrayLike<number>): void {
    const t = Array.from(truth, (v) => v === 1);
    const s = Array.from(scores);
    this.scores.push(...s);
    this.truth.push(...t);
    const auc = binaryAuc(t, s);
    if (auc !== null) this.perBag.push(auc);
  }
  summary(name: string): Record<string, unknown> {
    const mean = this.perBag.reduce((a, b) => a + b, 0) / Math.max(1, this.perBag.length);
    return { readout: name, pooledAuc: binaryAuc(this.truth, this.scores), meanPerBagAuc: mean, bags: this.perBag.length };
  }
}

const readouts = new Map<string, Readout>();
const add = (name: string, scores: ArrayLike<number>, truth: ArrayLike<number>): void => {
  if (!readouts.has(name)) readouts.set(name, new Readout());
  readouts.get(name)?.add(scores, truth);
};
let keyEvidence = 0;
let backgroundEvidence = 0;
let keyCount = 0;
let correct = 0;

for (const slide of slides) {
  const data = await cohort.source.load(slide.slideId);
  const truth = data.instanceLabels;
  if (!truth || !truth.includes(1)) continue;
  const y = slide.label;
  const pass = fullPass(fold.model, data, { io, views, makeViews: buildViews });
  const out = pass.output;
  const a = out.instanceScores?.arraySync() as number[][]; // [K, N] after the softmax over instances
  const logits = out.logits.dataSync();
  if (Array.from(logits).indexOf(Math.max(...logits)) === y) correct += 1;
  const coarse = out.extras?.[HIERARCHY_EXTRAS.coarseInstanceScores]?.arraySync() as number[][] | undefined;
  tf.dispose(out as unknown as tf.TensorContainer);
  const rowOf = (k: number): number[] => a[Math.min(k, a.length - 1)] ?? [];
  const n = data.n;
  add('true fine row, after softmax (what instance_auc reports)', rowOf(y), truth);
  // Each class's row has its own attention weights, so each may settle on its own orientation.
  add(`true fine row, bags of class ${y}`, rowOf(y), truth);
  // log A = raw score − logsumexp over the bag; minus its bag mean it is the pre-softmax score centred per bag.
  const logRow = rowOf(y).map((v) => Math.log(v));
  const logMean = logRow.reduce((x, v) => x + v, 0) / Math.max(1, logRow.length);
  add('true fine row before the softmax (centred per bag)', logRow.map((v) => v - logMean), truth);
  add('true fine row × N (bag-size-free scale)', rowOf(y).map((v) => v * n), truth);
  if (a.length > 1) {
    const others = Array.from({ length: n }, (_, i) => a.reduce((acc, r, k) => (k === y ? acc : acc + (r[i] ?? 0)), 0) / (a.length - 1));
    add('mean of the other fine rows', others, truth);
    add('true row minus mean of the others', rowOf(y).map((v, i) => v - (others[i] ?? 0)), truth);
    const predicted = Array.from(logits).indexOf(Math.max(...logits));
    add('predicted fine row', rowOf(predicted), truth);
  }
  if (coarse && hierarchy) {
    const c = hierarchy.fineToCoarse[y] as number;
    add('true coarse row (coarseInstanceScores)', coarse[c] ?? [], truth);
  }
  // Per-instance evidence: the fine logits of each one-instance bag.
  const evidence: number[] = [];
  const evidenceTrue: number[] = [];
  for (let i = 0; i < n; i += 1) {
    const single: BagData = { ...data, n: 1 };
    const p = fullPass(fold.model, single, {
      io, views,
      read: (d) => d.features.slice(i * d.d, (i + 1) * d.d),
      makeViews: (d, names) => buildViews(data, names, [i]),
    });
    const l = p.output.logits.dataSync();
    evidence.push(l[0] as number); // for a shared head every class's logit is the same w·h2 + b
    evidenceTrue.push(l[y] as number);
    tf.dispose(p.output as unknown as tf.TensorContainer);
    if (truth[i] === 1) {
      keyEvidence += l[y] as number;
      keyCount += 1;
    } else backgroundEvidence += l[y] as number;
  }
  add('one-instance bag: fine logit of the true class', evidenceTrue, truth);
  // Occlusion: how much the true class's margin (its logit minus the best other) drops when instance n is left out.
  // It asks the model which instances decide, whatever sign or row its attention uses.
  const margin = (l: ArrayLike<number>): number => (l[y] as number) - Math.max(...Array.from(l).filter((_, k) => k !== y));
  const full = margin(logits);
  const drops: number[] = [];
  for (let i = 0; i < n; i += 1) {
    const keep = Array.from({ length: n }, (_, j) => j).filter((j) => j !== i);
    const without: BagData = { ...data, n: n - 1 };
    const p = fullPass(fold.model, without, {
      io, views,
      read: (d) => Float32Array.from(keep.flatMap((j) => Array.from(d.features.subarray(j * d.d, (j + 1) * d.d)))),
      makeViews: (d, names) => buildViews(data, names, keep),
    });
    drops.push(full - margin(p.output.logits.dataSync()));
    tf.dispose(p.output as unknown as tf.TensorContainer);
  }
  add('occlusion: drop of the true-class margin without the instance', drops, truth);
  add('contribution A[y,n]·s_n (true row × one-instance logit)', rowOf(y).map((v, i) => v * (evidenceTrue[i] ?? 0)), truth);
}

const total = readouts.get('true fine row, after softmax (what instance_auc reports)')?.perBag.length ?? 0;
process.stdout.write(`${JSON.stringify({ run: runDir, fold: fold.fold, testBags: slides.length, accuracy: correct / Math.max(1, slides.length), bagsWithKeys: total })}\n`);
for (const [name, r] of [...readouts].sort(([a], [b]) => (a.startsWith('true fine row, bags') ? 1 : 0) - (b.startsWith('true fine row, bags') ? 1 : 0))) process.stdout.write(`${JSON.stringify(r.summary(name))}\n`);
const background = readouts.get('true fine row, after softmax (what instance_auc reports)')?.truth.filter((t) => !t).length ?? 1;
process.stdout.write(`${JSON.stringify({ meanOneInstanceLogitTrueClass: { key: keyEvidence / Math.max(1, keyCount), background: backgroundEvidence / Math.max(1, background) } })}\n`);
await cohort.source.close?.();
run.dispose();
