// Writes the input of test/reference/paired_bootstrap.py: two prediction sets on the same slides (patients with
// one to three slides) and the case resamples drawn from milkit's seeded Rng, so the Python reference replays
// exactly the draws of src/core/stats/paired-bootstrap.ts.
// Run: npx tsx test/reference/paired_bootstrap_input.ts && python3 test/reference/paired_bootstrap.py
import { writeFileSync } from 'node:fs';
import { drawCaseResamples, slidesByCase } from '../../src/core/stats/paired-bootstrap.js';
import { Rng } from '../../src/core/runtime/random.js';

const RESAMPLES = 200;

function softmax(logits: number[]): number[] {
  const max = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - max));
  const sum = e.reduce((a, b) => a + b, 0);
  // Rounded to 4 decimals so ties occur between slides and between models.
  return e.map((v) => Math.round((v / sum) * 1e4) / 1e4);
}

function makeCase(name: string, metric: string, numClasses: number, cases: number, seed: string): Record<string, unknown> {
  const rng = new Rng(`paired-bootstrap-reference/${seed}`);
  const caseIds: string[] = [];
  const labels: number[] = [];
  const probsA: number[][] = [];
  const probsB: number[][] = [];
  for (let c = 0; c < cases; c += 1) {
    const label = c % numClasses;
    const slides = 1 + rng.int(3);
    for (let s = 0; s < slides; s += 1) {
      caseIds.push(`case-${String(c).padStart(2, '0')}`);
      labels.push(label);
      const shared = Array.from({ length: numClasses }, (_, k) => (k === label ? 0.8 : 0) + rng.normal());
      probsA.push(softmax(shared.map((v) => v + 0.5 * rng.normal())));
      probsB.push(softmax(shared.map((v, k) => v + (k === label ? 0.3 : 0) + 0.5 * rng.normal())));
    }
  }
  const resamples = drawCaseResamples(slidesByCase(caseIds).length, RESAMPLES, rng.fork('resamples'));
  return { name, metric, numClasses, seed: `paired-bootstrap-reference/${seed}`, caseIds, labels, probsA, probsB, resamples };
}

const cases = [
  makeCase('binary-auc', 'auc', 2, 18, 'binary'),
  makeCase('binary-accuracy', 'accuracy', 2, 18, 'binary'),
  makeCase('three-class-macro-auc', 'auc', 3, 15, 'three-class'),
];
writeFileSync(new URL('./fixtures/paired-bootstrap-input.json', import.meta.url), `${JSON.stringify({ generator: 'test/reference/paired_bootstrap_input.ts', confidence: 0.95, cases })}\n`);
