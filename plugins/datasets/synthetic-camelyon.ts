/**
 * Synthetic Camelyon16-like metastasis detection (dataset/synthetic-camelyon)
 * Paper: modelled on the CAMELYON16 challenge task (Ehteshami Bejnordi et al., JAMA 2017) as used by CLAM
 *   (Lu et al., Nat. Biomed. Eng. 2021) and HDMIL (Dong et al., CVPR 2025); no data of theirs is used.
 * Implements: binary bags x ∈ R^{N×D}; negatives hold only normal tissue, positives a single spatially
 *   compact lesion of 0.5–10% of the instances (docs/methods/datasets.md#feature-files).
 *   x_n = p_{t(n)} + o + ε_n + y_n · (a · Σ_k b_k / √s + 0.5 · B ξ_n), ε ~ N(0, I), o ~ N(0, σ_o² I)
 * Symbols: B=[b_1..b_s] [s,D] orthonormal signal subspace · p_t [D] background tissue prototypes (⊥ B) ·
 *   o [D] per-slide offset · y_n instance ground truth (`instanceLabels`) · coords [N,2] level-0 pixels ·
 *   thumbs [N,16,16,3] uint8 H&E-like patches whose stain and nuclear density carry y_n weakly and noisily
 * Choices: the lesion is the k nearest grid cells to a random seed cell (k = max(1, round(f·N)), f
 *   log-uniform); class names follow HDMIL's Camelyon16 map (normal_tissue=0, tumor_tissue=1); an
 *   official train/test column (`split`) is stratified by label so `split.mode: official-test` works;
 *   every slide is drawn from its own named random stream, so bags do not depend on load order.
 *   `plantedDifficulty` (MHIM-MIL's situation, docs/methods/mhim-mil.md#planted-difficulty): positives carry many subtle
 *   instances (signalStrength on signal axes 2..s) and, in 1 − subtleOnlyFraction of them, a few very salient ones
 *   on axis 1 alone, a shortcut that subtle-only positives lack.
 * Checked against: statistical properties (lesion fraction, contiguity, subspace shift, determinism) in
 *   test/plugins/datasets/synthetic-camelyon.test.ts
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

export const SyntheticCamelyonOptions = syntheticOptions(
  { slides: 80, minSlides: 4, instances: [100, 500], minFeatureDim: 2, slideShift: 0.05, thumbs: true, officialTestFraction: 0.3 },
  {
    positiveFraction: z.number().gt(0).lt(1).default(0.4).describe('fraction of cases that are tumour-positive'),
    signalDim: z.int().min(1).default(4).describe('s: rank of the subspace in which tumour instances are shifted'),
    signalStrength: z.number().min(0).default(5).describe('a: norm of the tumour shift, in units of the instance noise std'),
    tumorFraction: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]).default([0.005, 0.1]).describe('[min, max] lesion fraction f of a positive slide (log-uniform)'),
    officialTestFraction: z.number().min(0).lt(1).default(0.3).describe('fraction of cases marked split=test in the slide table (Camelyon16: 130 of 399)'),
    plantedDifficulty: z.strictObject({
      salientInstances: z.tuple([z.int().min(0), z.int().min(0)]).default([1, 3]).describe('[min, max] very salient tumour instances of a positive slide that has them'),
      salientStrength: z.number().min(0).default(8).describe('norm of the salient instances\' shift, along a direction of its own (the first signal axis)'),
      subtleOnlyFraction: z.number().min(0).max(1).default(0.5).describe('fraction of positive slides whose tumour instances are all subtle (no salient ones)'),
    }).optional().describe('MHIM-MIL\'s situation: a few very salient positives on a shortcut direction plus many subtle ones (signalStrength, on the other signal axes); some positive slides hold only subtle ones'),
  },
  { ranges: ['tumorFraction'], signalWithinFeatures: true },
).check((ctx) => {
  if (ctx.value.plantedDifficulty && ctx.value.signalDim < 2) {
    ctx.issues.push({ code: 'custom', input: ctx.value.signalDim, path: ['signalDim'], message: 'plantedDifficulty needs signalDim ≥ 2 (one axis for the salient shortcut, the rest for the subtle signal)' });
  }
  if (ctx.value.plantedDifficulty && ctx.value.plantedDifficulty.salientInstances[0] > ctx.value.plantedDifficulty.salientInstances[1]) {
    ctx.issues.push({ code: 'custom', input: ctx.value.plantedDifficulty.salientInstances, path: ['plantedDifficulty', 'salientInstances'], message: 'min exceeds max' });
  }
});
export type SyntheticCamelyonOptions = z.output<typeof SyntheticCamelyonOptions>;

const CLASS_NAMES = ['normal_tissue', 'tumor_tissue'] as const;

/** The slide table: cases with balanced labels, slides numbered in case order, N and lesion fraction fixed here. */
function makeTable(options: SyntheticCamelyonOptions, root: Rng): SlideRecord[] {
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
    const fraction = label === 1 ? logUniform(options.tumorFraction[0], options.tumorFraction[1], slideRng) : 0;
    const tumorInstances = label === 1 ? Math.min(n, Math.max(1, Math.round(fraction * n))) : 0;
    // Planted difficulty draws from a stream of its own, so the table above is the same with or without it.
    const planted = options.plantedDifficulty;
    let salient: Record<string, string> = {};
    if (planted && label === 1) {
      const plantRng = slideRng.fork('salient');
      const subtleOnly = plantRng.next() < planted.subtleOnlyFraction;
      const count = subtleOnly ? 0 : Math.min(tumorInstances, drawCount(planted.salientInstances[0], planted.salientInstances[1], plantRng));
      salient = { salient_instances: String(count) };
    }
    slides.push({
      slideId: `cam-${String(s).padStart(digits, '0')}`,
      caseId: `case-${String(caseIndex).padStart(digits, '0')}`,
      label,
      labelName: CLASS_NAMES[label] as string,
      meta: { split: testCases.has(caseIndex) ? 'test' : 'train', num_instances: String(n), tumor_instances: String(tumorInstances), ...salient },
    });
  }
  return slides;
}

function generateSlide(slide: SlideRecord, options: SyntheticCamelyonOptions, structure: LesionStructure, tumorShift: Float32Array, root: Rng, salientShift?: Float32Array): BagData {
  const bag = generateLesionBag(
    {
      slideId: slide.slideId,
      n: Number(slide.meta['num_instances']),
      lesionInstances: Number(slide.meta['tumor_instances']),
      lesionShift: tumorShift,
      lesionJitter: 0.5,
      slideShift: options.slideShift,
      ...(options.thumbs ? { thumbSignal: options.thumbSignal } : {}),
    },
    structure,
    root.fork(`bag/${slide.slideId}`),
  );
  const salientCount = Number(slide.meta['salient_instances'] ?? 0);
  if (salientShift && salientCount > 0 && bag.instanceLabels) {
    // A random `salientCount` of the lesion's instances trade the subtle shift for the salient shortcut.
    const lesion = Array.from(bag.instanceLabels).flatMap((y, i) => (y === 1 ? [i] : []));
    const picked = root.fork(`salient/${slide.slideId}`).shuffle(lesion).slice(0, salientCount);
    const d = bag.d;
    for (const i of picked) for (let j = 0; j < d; j += 1) bag.features[i * d + j] = (bag.features[i * d + j] as number) - (tumorShift[j] as number) + (salientShift[j] as number);
  }
  return bag;
}

export default definePlugin({
  kind: 'dataset',
  name: 'synthetic-camelyon',
  summary: 'binary metastasis-like bags with a small clustered lesion, coords, thumbnails and instance ground truth',
  paper: { cite: 'Ehteshami Bejnordi et al., Diagnostic Assessment of Deep Learning Algorithms for Detection of Lymph Node Metastases (CAMELYON16), JAMA 2017', doi: '10.1001/jama.2017.14585' },
  options: SyntheticCamelyonOptions,
  capabilities: { instanceLabels: true, thumbs: true, coords: true },
  create: async (options, ctx) => {
    const root = new Rng(`synthetic-camelyon/${options.seed ?? ctx.seed}`);
    const table = applyDeclaredLabels(makeTable(options, root), CLASS_NAMES, ctx.labelMap, ctx.logger);
    const structure = lesionStructure(options.featureDim, options.signalDim, options.backgroundTypes, root);
    // Tumour shift: a along the unit diagonal of the signal subspace.
    const planted = options.plantedDifficulty;
    // Planted difficulty: the subtle signal lives on axes 2..s, the salient shortcut on axis 1 alone.
    const tumorShift = planted
      ? combineBasis(structure.basis, structure.basis.map((_, k) => (k === 0 ? 0 : 1 / Math.sqrt(options.signalDim - 1))), options.signalStrength)
      : combineBasis(structure.basis, structure.basis.map(() => 1 / Math.sqrt(options.signalDim)), options.signalStrength);
    const salientShift = planted ? combineBasis(structure.basis, structure.basis.map((_, k) => (k === 0 ? 1 : 0)), planted.salientStrength) : undefined;
    return new GeneratedBagSource(table.slides, options.featureDim, table.classNames, (slide) => generateSlide(slide, options, structure, tumorShift, root, salientShift), ctx.cacheBytes ?? 512 * 1024 ** 2, 'synthetic-camelyon');
  },
});
