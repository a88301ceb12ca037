/**
 * Synthetic BRACS-like hierarchical classification (dataset/synthetic-hierarchical)
 * Paper: modelled on BRACS (Brancati et al., Database 2022) as used by HMIL (Jin et al., IEEE TMI 2025):
 *   3 coarse classes (benign, atypical, malignant) over 7 fine classes (N, PB, UDH | FEA, ADH | DCIS, IC)
 *   (docs/methods/hmil.md#label-hierarchy); no BRACS data is used.
 * Implements: a lesion of 5–30% of the instances (none for N) shifted by x ← x + a_c·b_{coarse} + a_f·b_{3+fine}
 *   with orthonormal b_0..b_9, so fine classes of one coarse class share the coarse component
 * Symbols: a_c `coarseStrength` · a_f `fineStrength` (a_f < a_c: fine classes are harder to tell apart than
 *   coarse ones) · labels = fine class index · meta coarse_label / fine_label · instanceLabels [N] = lesion mask
 * Choices: N (normal) slides hold no lesion; the source exposes `hierarchy` (fine → coarse) for hierarchical
 *   models and losses; equal class frequencies unless `classFractions` is set
 * Checked against: coarse/fine geometry and table consistency in test/plugins/datasets/synthetic-datasets.test.ts
 */
import { z } from 'zod';
import {
  applyDeclaredLabels,
  balancedLabels,
  combineBasis,
  definePlugin,
  SYNTHETIC_LIMITS,
  officialTestCases,
  syntheticOptions,
  drawCount,
  GeneratedBagSource,
  generateLesionBag,
  lesionStructure,
  Rng,
  type SlideRecord,
} from 'milkit';

export const FINE_CLASSES = ['N', 'PB', 'UDH', 'FEA', 'ADH', 'DCIS', 'IC'] as const;
export const COARSE_CLASSES = ['benign', 'atypical', 'malignant'] as const;
/** Coarse class of each fine class (BRACS' three-way grouping). */
export const FINE_TO_COARSE = [0, 0, 0, 1, 1, 2, 2] as const;

export const SyntheticHierarchicalOptions = syntheticOptions(
  { slides: 105, minSlides: 7, instances: [100, 400], minFeatureDim: 10, slideShift: 0.2, thumbs: false, officialTestFraction: 0.2 },
  {
    classFractions: z.array(z.number().positive()).length(7).optional().describe('relative frequency of N, PB, UDH, FEA, ADH, DCIS, IC (default equal)'),
    featureDim: z.int().min(10).max(SYNTHETIC_LIMITS.featureDim).default(64).describe('D: feature width (≥ 10: 3 coarse + 7 fine signal axes)'),
    coarseStrength: z.number().min(0).default(2.5).describe('a_c: lesion shift along its coarse axis'),
    fineStrength: z.number().min(0).default(1.2).describe('a_f: lesion shift along its fine axis'),
    lesionFraction: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]).default([0.05, 0.3]).describe('[min, max] lesion fraction of a non-normal slide (uniform)'),
  },
  { ranges: ['lesionFraction'] },
);
export type SyntheticHierarchicalOptions = z.output<typeof SyntheticHierarchicalOptions>;

function makeTable(options: SyntheticHierarchicalOptions, root: Rng): SlideRecord[] {
  const rng = root.fork('table');
  const numCases = Math.ceil(options.slides / options.slidesPerCase);
  const caseLabels = balancedLabels(numCases, options.classFractions ?? FINE_CLASSES.map(() => 1), rng.fork('labels'));
  const testCases = officialTestCases(caseLabels, FINE_CLASSES.length, options.officialTestFraction, rng);
  const digits = String(options.slides - 1).length;
  return Array.from({ length: options.slides }, (_, s) => {
    const caseIndex = Math.floor(s / options.slidesPerCase);
    const label = caseLabels[caseIndex] as number;
    const slideRng = rng.fork(`slide/${s}`);
    const n = drawCount(options.instances[0], options.instances[1], slideRng);
    const fraction = options.lesionFraction[0] + slideRng.next() * (options.lesionFraction[1] - options.lesionFraction[0]);
    const lesion = label === 0 ? 0 : Math.min(n, Math.max(1, Math.round(fraction * n)));
    return {
      slideId: `bracs-${String(s).padStart(digits, '0')}`,
      caseId: `case-${String(caseIndex).padStart(digits, '0')}`,
      label,
      labelName: FINE_CLASSES[label] as string,
      meta: {
        coarse_label: COARSE_CLASSES[FINE_TO_COARSE[label] as number] as string,
        fine_label: FINE_CLASSES[label] as string,
        split: testCases.has(caseIndex) ? 'test' : 'train',
        num_instances: String(n),
        lesion_instances: String(lesion),
      },
    };
  });
}

export default definePlugin({
  kind: 'dataset',
  name: 'synthetic-hierarchical',
  summary: 'BRACS-like 3 coarse / 7 fine classes; fine lesions share their coarse feature component',
  paper: { cite: 'Brancati et al., BRACS: A Dataset for BReAst Carcinoma Subtyping in H&E Histology Images, Database 2022', doi: '10.1093/database/baac093' },
  options: SyntheticHierarchicalOptions,
  capabilities: { instanceLabels: true, thumbs: true, coords: true },
  create: async (options, ctx) => {
    const root = new Rng(`synthetic-hierarchical/${options.seed ?? ctx.seed}`);
    const table = applyDeclaredLabels(makeTable(options, root), FINE_CLASSES, ctx.labelMap, ctx.logger);
    const structure = lesionStructure(options.featureDim, COARSE_CLASSES.length + FINE_CLASSES.length, options.backgroundTypes, root);
    // Fine class j: a_c along its coarse axis b_{coarse(j)} plus a_f along its own axis b_{3+j}.
    const shifts = FINE_CLASSES.map((_, j) => {
      const weights = new Array<number>(10).fill(0);
      weights[FINE_TO_COARSE[j] as number] = options.coarseStrength;
      weights[COARSE_CLASSES.length + j] = options.fineStrength;
      return combineBasis(structure.basis, weights, 1);
    });
    const fineIndex = new Map<string, number>(FINE_CLASSES.map((name, j) => [name, j]));
    // With a declared label map the classes may be re-indexed: the hierarchy follows the fine names.
    const fineToCoarse = table.classNames.map((name) => FINE_TO_COARSE[fineIndex.get(name) as number] as number);
    return new GeneratedBagSource(
      table.slides,
      options.featureDim,
      table.classNames,
      (slide) =>
        generateLesionBag(
          {
            slideId: slide.slideId,
            n: Number(slide.meta['num_instances']),
            lesionInstances: Number(slide.meta['lesion_instances']),
            lesionShift: shifts[fineIndex.get(slide.labelName) as number] as Float32Array,
            lesionJitter: 0.4,
            slideShift: options.slideShift,
            ...(options.thumbs ? { thumbSignal: options.thumbSignal } : {}),
          },
          structure,
          root.fork(`bag/${slide.slideId}`),
        ),
      ctx.cacheBytes ?? 512 * 1024 ** 2,
      'synthetic-hierarchical',
      { coarseNames: [...COARSE_CLASSES], fineToCoarse },
    );
  },
});
