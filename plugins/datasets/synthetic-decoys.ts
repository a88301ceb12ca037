/**
 * Synthetic lesions among decoys (dataset/synthetic-decoys)
 * Paper: none; a teaching task for the quickstart, built on the Camelyon16-like generator of
 *   dataset/synthetic-camelyon. It asks where in a bag the evidence lies (docs/methods/datasets.md#where-the-evidence-lies).
 * Implements: binary bags x ∈ R^{N×D} as in synthetic-camelyon, x_n = p_{t(n)} + o + ε_n + z_n · (a · Σ_k b_k / √s + 0.5 · B ξ_n),
 *   z_n = 1 on the lesion (positives only: a compact cluster of k = max(minLesion, round(f·N)) instances, f log-uniform)
 *   and on m isolated decoys (every slide, m uniform in [decoys]) that look exactly like lesion instances
 * Symbols: B=[b_1..b_s] [s,D] orthonormal signal subspace · p_t background tissue prototypes (⊥ B) · o [D] per-slide
 *   offset · instanceLabels = the lesion only (decoys are 0: tumour-like, not tumour) · coords [N,2] level-0 pixels
 * Choices: the label is carried by the NUMBER of tumour-like instances (a lesion has ≥ minLesion, decoys alone never
 *   more than decoys[1] < minLesion), not by any single instance: mean pooling sees the lesion diluted by N, max
 *   pooling sees one decoy as much as a lesion; an attention pool can weigh how many tumour-like instances there are.
 *   Every slide is drawn from its own named random stream, so bags do not depend on load order.
 * Checked against: lesion/decoy counts, shifts and determinism in test/plugins/datasets/synthetic-decoys.test.ts
 */
import { z } from 'zod';
import {
  applyDeclaredLabels,
  balancedLabels,
  combineBasis,
  definePlugin,
  officialTestCases,
  syntheticOptions,
  drawCount,
  GeneratedBagSource,
  generateLesionBag,
  lesionStructure,
  logUniform,
  Rng,
  type BagData,
  type LesionStructure,
  type SlideRecord,
} from 'milkit';

export const SyntheticDecoysOptions = syntheticOptions(
  { slides: 60, minSlides: 4, instances: [60, 180], minFeatureDim: 2, slideShift: 0.05, thumbs: false, officialTestFraction: 0.3 },
  {
    positiveFraction: z.number().gt(0).lt(1).default(0.5).describe('fraction of cases with a lesion'),
    signalDim: z.int().min(1).default(4).describe('s: rank of the subspace in which tumour-like instances are shifted'),
    signalStrength: z.number().min(0).default(5).describe('a: norm of the tumour-like shift, in units of the instance noise std'),
    lesionFraction: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]).default([0.02, 0.06]).describe('[min, max] lesion fraction f of a positive slide (log-uniform)'),
    minLesion: z.int().min(1).default(3).describe('smallest lesion, in instances (k = max(minLesion, round(f·N)))'),
    decoys: z.tuple([z.int().min(0), z.int().min(0)]).default([0, 2]).describe('[min, max] isolated tumour-like decoy instances per slide, in both classes (uniform)'),
  },
  { ranges: ['lesionFraction', 'decoys'], signalWithinFeatures: true },
).check((ctx) => {
  const { minLesion, decoys, instances } = ctx.value;
  // The teaching point is that counts separate the classes: decoys alone must stay below the smallest lesion.
  if (decoys[1] >= minLesion) {
    ctx.issues.push({ code: 'custom', input: decoys, path: ['decoys'], message: `at most ${decoys[1]} decoys per slide would reach the smallest lesion (minLesion ${minLesion}); keep decoys[1] < minLesion` });
  }
  if (minLesion + decoys[1] > instances[0]) {
    ctx.issues.push({ code: 'custom', input: instances, path: ['instances'], message: `a bag of ${instances[0]} instances cannot hold a lesion of ${minLesion} and ${decoys[1]} decoys; raise instances[0]` });
  }
});
export type SyntheticDecoysOptions = z.output<typeof SyntheticDecoysOptions>;

const CLASS_NAMES = ['negative', 'positive'] as const;

/** The slide table: balanced case labels; N, lesion size and decoy count are fixed here, per slide stream. */
function makeTable(options: SyntheticDecoysOptions, root: Rng): SlideRecord[] {
  const rng = root.fork('table');
  const numCases = Math.ceil(options.slides / options.slidesPerCase);
  const caseLabels = balancedLabels(numCases, [1 - options.positiveFraction, options.positiveFraction], rng.fork('labels'));
  const testCases = officialTestCases(caseLabels, CLASS_NAMES.length, options.officialTestFraction, rng);
  const digits = String(options.slides - 1).length;
  const slides: SlideRecord[] = [];
  for (let s = 0; s < options.slides; s += 1) {
    const caseIndex = Math.floor(s / options.slidesPerCase);
    const label = caseLabels[caseIndex] as number;
    const slideRng = rng.fork(`slide/${s}`);
    const n = drawCount(options.instances[0], options.instances[1], slideRng);
    const decoys = drawCount(options.decoys[0], options.decoys[1], slideRng);
    const fraction = logUniform(options.lesionFraction[0], options.lesionFraction[1], slideRng);
    const lesion = label === 1 ? Math.min(n - decoys, Math.max(options.minLesion, Math.round(fraction * n))) : 0;
    slides.push({
      slideId: `dec-${String(s).padStart(digits, '0')}`,
      caseId: `case-${String(caseIndex).padStart(digits, '0')}`,
      label,
      labelName: CLASS_NAMES[label] as string,
      meta: { split: testCases.has(caseIndex) ? 'test' : 'train', num_instances: String(n), tumor_instances: String(lesion), decoy_instances: String(decoys) },
    });
  }
  return slides;
}

function generateSlide(slide: SlideRecord, options: SyntheticDecoysOptions, structure: LesionStructure, shift: Float32Array, root: Rng): BagData {
  const rng = root.fork(`bag/${slide.slideId}`);
  const bag = generateLesionBag(
    { slideId: slide.slideId, n: Number(slide.meta['num_instances']), lesionInstances: Number(slide.meta['tumor_instances']), lesionShift: shift, lesionJitter: 0.5, slideShift: options.slideShift },
    structure,
    rng,
  );
  // Decoys: isolated instances outside the lesion with exactly the lesion's appearance (shift and jitter).
  const { n, d } = bag;
  const labels = bag.instanceLabels as Uint8Array;
  const outside = Array.from({ length: n }, (_, i) => i).filter((i) => labels[i] === 0);
  const decoyRng = rng.fork('decoys');
  const chosen = decoyRng.shuffle(outside).slice(0, Number(slide.meta['decoy_instances']));
  const features = bag.features;
  for (const i of chosen) {
    for (let j = 0; j < d; j += 1) features[i * d + j] = (features[i * d + j] as number) + (shift[j] as number);
    for (const b of structure.basis) {
      const jitter = 0.5 * decoyRng.normal();
      for (let j = 0; j < d; j += 1) features[i * d + j] = (features[i * d + j] as number) + jitter * (b[j] as number);
    }
  }
  return bag;
}

export default definePlugin({
  kind: 'dataset',
  name: 'synthetic-decoys',
  summary: 'binary bags where a small lesion must be told from isolated tumour-like decoys present in every class (the quickstart)',
  options: SyntheticDecoysOptions,
  capabilities: { instanceLabels: true, coords: true },
  create: async (options, ctx) => {
    const root = new Rng(`synthetic-decoys/${options.seed ?? ctx.seed}`);
    const table = applyDeclaredLabels(makeTable(options, root), CLASS_NAMES, ctx.labelMap, ctx.logger);
    const structure = lesionStructure(options.featureDim, options.signalDim, options.backgroundTypes, root);
    const shift = combineBasis(structure.basis, structure.basis.map(() => 1 / Math.sqrt(options.signalDim)), options.signalStrength);
    return new GeneratedBagSource(table.slides, options.featureDim, table.classNames, (slide) => generateSlide(slide, options, structure, shift, root), ctx.cacheBytes ?? 512 * 1024 ** 2, 'synthetic-decoys');
  },
});
