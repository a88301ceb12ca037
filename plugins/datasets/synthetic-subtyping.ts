/**
 * Synthetic NSCLC-like subtyping (dataset/synthetic-subtyping)
 * Paper: modelled on TCGA-NSCLC LUAD vs LUSC subtyping as used by CLAM (Lu et al., Nat. Biomed. Eng. 2021),
 *   TransMIL and HDMIL (label maps: docs/methods/hdmil.md#data); no TCGA data is used.
 * Implements: two classes; every slide holds one large tumour region (40–90% of the instances by default) whose
 *   instances are shifted by x ← x + a·b_1 ± σ_s·b_2 (sign = subtype) inside a signal subspace B; the rest is
 *   normal tissue (prototypes ⊥ B), as in dataset/synthetic-camelyon
 * Symbols: a `signalStrength` (tumour vs normal) · σ_s `subtypeStrength` (LUAD vs LUSC) · instanceLabels [N]
 *   = tumour mask (informative instances) · coords [N, 2] · thumbs [N, 16, 16, 3]
 * Choices: class names follow HDMIL's map (TCGA-LUSC=0, TCGA-LUAD=1); most instances are informative, so mean
 *   pooling works well here, unlike the Camelyon-like task; a `split` column (train/test) is stratified by label
 * Checked against: subtype separation and determinism in test/plugins/datasets/synthetic-datasets.test.ts
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
  Rng,
  type SlideRecord,
} from 'milkit';

export const SyntheticSubtypingOptions = syntheticOptions(
  { slides: 80, minSlides: 4, instances: [100, 500], minFeatureDim: 2, slideShift: 0.2, thumbs: true, officialTestFraction: 0.2 },
  {
    luadFraction: z.number().gt(0).lt(1).default(0.5).describe('fraction of cases of subtype TCGA-LUAD (class 1)'),
    signalDim: z.int().min(2).default(4).describe('s: rank of the signal subspace (≥ 2: tumour and subtype axes)'),
    signalStrength: z.number().min(0).default(2).describe('a: shift of tumour instances along the tumour axis'),
    subtypeStrength: z.number().min(0).default(1.5).describe('σ_s: ± shift of tumour instances along the subtype axis'),
    tumorFraction: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]).default([0.4, 0.9]).describe('[min, max] tumour fraction of a slide (uniform)'),
  },
  { ranges: ['tumorFraction'], signalWithinFeatures: true },
);
export type SyntheticSubtypingOptions = z.output<typeof SyntheticSubtypingOptions>;

const CLASS_NAMES = ['TCGA-LUSC', 'TCGA-LUAD'] as const;

function makeTable(options: SyntheticSubtypingOptions, root: Rng): SlideRecord[] {
  const rng = root.fork('table');
  const numCases = Math.ceil(options.slides / options.slidesPerCase);
  const caseLabels = balancedLabels(numCases, [1 - options.luadFraction, options.luadFraction], rng.fork('labels'));
  const testCases = officialTestCases(caseLabels, CLASS_NAMES.length, options.officialTestFraction, rng);
  const digits = String(options.slides - 1).length;
  return Array.from({ length: options.slides }, (_, s) => {
    const caseIndex = Math.floor(s / options.slidesPerCase);
    const label = caseLabels[caseIndex] as number;
    const slideRng = rng.fork(`slide/${s}`);
    const n = drawCount(options.instances[0], options.instances[1], slideRng);
    const fraction = options.tumorFraction[0] + slideRng.next() * (options.tumorFraction[1] - options.tumorFraction[0]);
    return {
      slideId: `nsclc-${String(s).padStart(digits, '0')}`,
      caseId: `case-${String(caseIndex).padStart(digits, '0')}`,
      label,
      labelName: CLASS_NAMES[label] as string,
      meta: { split: testCases.has(caseIndex) ? 'test' : 'train', num_instances: String(n), tumor_instances: String(Math.min(n, Math.max(1, Math.round(fraction * n)))) },
    };
  });
}

export default definePlugin({
  kind: 'dataset',
  name: 'synthetic-subtyping',
  summary: 'binary NSCLC-like subtyping: large tumour regions whose features carry the subtype',
  options: SyntheticSubtypingOptions,
  capabilities: { instanceLabels: true, thumbs: true, coords: true },
  create: async (options, ctx) => {
    const root = new Rng(`synthetic-subtyping/${options.seed ?? ctx.seed}`);
    const table = applyDeclaredLabels(makeTable(options, root), CLASS_NAMES, ctx.labelMap, ctx.logger);
    const structure = lesionStructure(options.featureDim, options.signalDim, options.backgroundTypes, root);
    // Subtype c: a along b_1 (tumour), ∓σ_s along b_2 (LUSC −, LUAD +).
    const shifts = CLASS_NAMES.map((_, c) => combineBasis(structure.basis, [options.signalStrength, (c === 1 ? 1 : -1) * options.subtypeStrength], 1));
    return new GeneratedBagSource(
      table.slides,
      options.featureDim,
      table.classNames,
      (slide) =>
        generateLesionBag(
          {
            slideId: slide.slideId,
            n: Number(slide.meta['num_instances']),
            lesionInstances: Number(slide.meta['tumor_instances']),
            // The shift follows the subtype name, so a declared label map cannot swap the biology.
            lesionShift: shifts[CLASS_NAMES.indexOf(slide.labelName as (typeof CLASS_NAMES)[number])] as Float32Array,
            lesionJitter: 0.5,
            slideShift: options.slideShift,
            ...(options.thumbs ? { thumbSignal: options.thumbSignal } : {}),
          },
          structure,
          root.fork(`bag/${slide.slideId}`),
        ),
      ctx.cacheBytes ?? 512 * 1024 ** 2,
      'synthetic-subtyping',
    );
  },
});
