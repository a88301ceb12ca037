// Where screened and all-patch inference part (docs/hdmil.md#large-slides-unlike-the-training-slides): a trained
// DMIN + LIPN run on a folder of feature files that `milkit extract` wrote (features, coords, thumbs; slides.csv in
// the folder), per slide: p in both modes, DMIN's gate-kept share in mode all, what LIPN keeps, its recall and
// precision against the gate and the rank AUC of its union score; and per patch (CSV): gate, S, LIPN's scores,
// attention and the thumbnail's mean grey level. Not a bench module (run.ts runs *.bench.ts only):
//   node --conditions=milkit-source --import tsx test/bench/hdmil-agreement.ts <run dir> <feature folder> <patches.csv> [threshold shifts, e.g. 0.005,0.01]
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { builtinRegistry } from '../helpers/registry.js';
import { silentLogger } from '../../src/core/logger.js';
import { openTrainedRun } from '../../src/core/engine/predict-run.js';
import { openCohort } from '../../src/core/engine/predict-cohort.js';
import { buildViews } from '../../src/core/data/bags.js';
import { classifyScreened, fullPass, prescreen, screenedRows } from '../../src/core/engine/screening.js';

const [runDir, dataDir, outFile, offsetList] = process.argv.slice(2) as [string, string, string, string | undefined];
// Optional: extra shifts of LIPN's keep threshold, each scored as if calibrated there (keep fraction and mean |Δp|).
const offsets = offsetList ? offsetList.split(',').map(Number) : [];
const sweep = offsets.map(() => ({ kept: 0, patches: 0, delta: 0 }));
const registry = builtinRegistry();
const run = await openTrainedRun({ runDir, registry, logger: silentLogger, cwd: process.cwd(), env: process.env });
const cohort = await openCohort(dataDir, run, { registry, cwd: process.cwd(), logger: silentLogger });
const fold = run.folds[0]!;
fold.model.setTraining(false);
const rowsOut: string[] = ['slide,i,x,y,gate0,gate1,s0,s1,o0,o1,a0,a1,thumbMean'];
function rankAuc(scores: number[], labels: boolean[]): number {
  const idx = scores.map((s, i) => [s, i] as const).sort((a, b) => a[0] - b[0]);
  let rank = 0, pos = 0, sumPos = 0;
  for (let k = 0; k < idx.length; ) { let j = k; while (j < idx.length && idx[j]![0] === idx[k]![0]) j++; const r = (k + j + 1) / 2; for (let t = k; t < j; t++) if (labels[idx[t]![1]]) { sumPos += r; pos++; } k = j; rank = j; }
  const neg = idx.length - pos; return pos && neg ? (sumPos - pos * (pos + 1) / 2) / (pos * neg) : NaN;
}
console.log('| slide | label | p all | p screened | |Δp| | patches | gate keeps | LIPN keeps | recall | precision | rank AUC |');
let sumD = 0;
for (const slide of cohort.source.slides) {
  const data = await cohort.source.load(slide.slideId);
  const io = { training: false, rng: fold.testRng() };
  const passOptions = { io, views: fold.model.capabilities.needsViews, makeViews: buildViews };
  const full = fullPass(fold.model, data, passOptions);
  const pAll = tf.tidy(() => tf.softmax(full.output.logits).dataSync())[1]!;
  const gate = full.output.extras!.gateMask!.dataSync();
  const s = full.output.extras!.attentionLogits!.dataSync();
  const a = full.output.instanceScores!.dataSync(); // [C, N]
  const decision = prescreen(fold.model, data.slideId, data.thumbs, data.n, io);
  const { rows } = screenedRows(decision);
  const feats = new Float32Array(rows.length * data.d);
  rows.forEach((r, i) => feats.set(data.features.subarray(r * data.d, (r + 1) * data.d), i * data.d));
  const scr = classifyScreened(fold.model, data, decision, feats, passOptions);
  const pScr = tf.tidy(() => tf.softmax(scr.output.logits).dataSync())[1]!;
  tf.dispose([full.output as unknown as tf.TensorContainer, scr.output as unknown as tf.TensorContainer]);
  const n = data.n; const C = decision.branches;
  const g: boolean[] = []; const o: number[] = []; const keep: boolean[] = [];
  for (let i = 0; i < n; i++) {
    g.push(gate[i * C]! > 0 || gate[i * C + 1]! > 0);
    o.push(Math.max(decision.scores[i * C]!, decision.scores[i * C + 1]!));
    keep.push(o[i]! > 0);
    let m = 0; for (let k = 0; k < 768; k++) m += data.thumbs![i * 768 + k]!; m /= 768;
    rowsOut.push([slide.slideId, i, data.coords![2 * i], data.coords![2 * i + 1], gate[i * C], gate[i * C + 1], s[i * C]!.toFixed(4), s[i * C + 1]!.toFixed(4), decision.scores[i * C]!.toFixed(4), decision.scores[i * C + 1]!.toFixed(4), a[i]!.toExponential(3), a[n + i]!.toExponential(3), m.toFixed(1)].join(','));
  }
  offsets.forEach((offset, k) => {
    const scores = decision.scores.map((v) => v - offset);
    const kept: number[] = [];
    for (let i = 0; i < n; i++) if (Math.max(scores[i * C]!, scores[i * C + 1]!) > 0) kept.push(i);
    const shifted = { ...decision, scores, kept };
    const { rows: r2 } = screenedRows(shifted);
    const f2 = new Float32Array(r2.length * data.d);
    r2.forEach((r, i) => f2.set(data.features.subarray(r * data.d, (r + 1) * data.d), i * data.d));
    const out = classifyScreened(fold.model, data, shifted, f2, passOptions);
    const p2 = tf.tidy(() => tf.softmax(out.output.logits).dataSync())[1]!;
    tf.dispose(out.output as unknown as tf.TensorContainer);
    const acc = sweep[k]!;
    acc.kept += kept.length; acc.patches += n; acc.delta += Math.abs(pAll - p2);
  });
  const gk = g.filter(Boolean).length, lk = keep.filter(Boolean).length, both = g.filter((x, i) => x && keep[i]).length;
  sumD += Math.abs(pAll - pScr);
  console.log(`| ${slide.slideId} | ${slide.label} | ${pAll.toFixed(4)} | ${pScr.toFixed(4)} | ${Math.abs(pAll - pScr).toFixed(4)} | ${n} | ${(100 * gk / n).toFixed(1)} % | ${(100 * lk / n).toFixed(1)} % | ${(both / gk).toFixed(3)} | ${(both / lk).toFixed(3)} | ${rankAuc(o, g).toFixed(3)} |`);
}
console.log('mean |Δp|', (sumD / cohort.source.slides.length).toFixed(4));
offsets.forEach((offset, k) => console.log(`threshold +${offset}: keeps ${(100 * sweep[k]!.kept / sweep[k]!.patches).toFixed(1)} %, mean |Δp| ${(sweep[k]!.delta / cohort.source.slides.length).toFixed(4)}`));
writeFileSync(outFile, rowsOut.join('\n') + '\n');
await cohort.source.close?.();
run.dispose();
