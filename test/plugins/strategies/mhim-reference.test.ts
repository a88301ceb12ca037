// strategy/mhim against the PyTorch reference of one MHIM step (test/reference/mhim_reference.py): teacher and
// student with different weights, the random draws injected, dropout 0; the masked counts, the loss, the
// consistency term and every student (and GRN) gradient agree for abmil, transmil and dsmil students, v1 and v2.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { readSafetensors, toFloat32, type TensorRecord } from '../../../src/core/nn/safetensors.js';
import { importTorchState, torchEntries } from '../../../src/core/nn/state-dict.js';
import type { ModelOutput, Strategy, StrategyStep } from '../../../src/registry/index.js';
import mhimPlugin, { MhimOptions } from '../../../plugins/strategies/mhim.js';
import { buildModel, expectClose, expectGradClose, FIXTURES, type CaseSpec } from '../../helpers/zoo.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

interface MhimCase extends CaseSpec {
  readonly strategy: Record<string, unknown>;
  readonly counts: Record<string, number>;
}

function read(file: string): { tensors: Readonly<Record<string, TensorRecord>>; metadata: Record<string, string> } {
  return readSafetensors(new Uint8Array(readFileSync(join(FIXTURES, file))));
}

type ModuleLike = { namedTensors(): Array<[string, { variable: tf.Variable; torch: { perm?: readonly number[] } }]>; dispose(): void };

describe.each(['abmil-v1', 'transmil-v1', 'dsmil-v1', 'abmil-v2-grn', 'transmil-v2'])('strategy/mhim vs the PyTorch step: %s', (name) => {
  it('agrees on masked counts, loss, consistency and gradients (1e-4)', async () => {
    const caseFile = read(`mhim-${name}.case.safetensors`);
    const spec = JSON.parse(caseFile.metadata['case'] as string) as MhimCase;
    const t = (key: string): TensorRecord => {
      const record = caseFile.tensors[key];
      if (!record) throw new Error(`${name}: no tensor ${key}`);
      return record;
    };
    const model = await buildModel({ inputDim: spec.inputDim, numClasses: spec.numClasses, aggregator: spec.aggregator, classifier: spec.classifier, losses: spec.losses });
    // The teacher holds the teacher weights (init copies the model), then the student gets its own.
    importTorchState(model, read(`mhim-${name}.teacher.safetensors`).tensors, 'teacher');
    const create = mhimPlugin.create as (options: unknown, ctx: unknown) => Strategy & { modules: Record<string, ModuleLike> };
    const strategy = create(MhimOptions.parse(spec.strategy), { model, numClasses: spec.numClasses, rng: new Rng(0), logger: silentLogger });
    strategy.init?.(model);
    importTorchState(model, read(`mhim-${name}.student.safetensors`).tensors, 'student');
    const grn = strategy.modules['grn'];
    if (grn) {
      for (const [key, entry] of grn.namedTensors()) {
        const record = t(`grn.${key}`);
        const torchValue = tf.tensor(toFloat32(record), [...record.shape]);
        // milkit layout = torch layout permuted back (perm maps milkit → torch; for a 2-D transpose it is its own inverse).
        entry.variable.assign(entry.torch.perm ? tf.transpose(torchValue, [...entry.torch.perm]) : torchValue);
        torchValue.dispose();
      }
    }
    const xRecord = t('x');
    const x = tf.tensor2d(toFloat32(xRecord), xRecord.shape as [number, number]);
    const int = (key: string): tf.Tensor => tf.tensor1d(Array.from(t(key).data as Int32Array), 'int32');
    const injected: Record<string, tf.Tensor> = { 'mhim.random': int('perm.random'), 'mhim.high': int('perm.high'), ...(caseFile.tensors['perm.grn'] ? { 'mhim.grn': int('perm.grn') } : {}) };
    const step: StrategyStep = {
      model, bag: { slideId: name, features: x, label: spec.label }, label: spec.label, numClasses: spec.numClasses,
      io: { training: true, rng: new Rng(1), injected }, isTraining: () => true, epoch: 0, stepInEpoch: 0, globalStep: 0, stepsPerEpoch: 1, totalEpochs: 1,
    };
    const entries = torchEntries(model).filter(({ entry }) => entry.trainable);
    const grnEntries = grn ? grn.namedTensors().filter(([key]) => key !== 'global_tokens') : [];
    let consistency = Number.NaN;
    const { value, grads } = tf.variableGrads(() => {
      const out = strategy.forward?.(step) as ModelOutput;
      const term = strategy.lossTerms?.(step, out)['consistency'] as tf.Scalar;
      consistency = term.dataSync()[0] as number;
      return tf.add(model.losses(out, spec.label, spec.numClasses).total, term) as tf.Scalar;
    }, [...entries.map(({ entry }) => entry.variable), ...grnEntries.map(([, entry]) => entry.variable)]);
    const metrics = strategy.stepMetrics?.(step, undefined) ?? {};
    for (const [key, count] of Object.entries(spec.counts)) expect(metrics[key], `${name} ${key}`).toBe(count);
    expectClose([value.dataSync()[0] as number], toFloat32(t('train.loss')), `${name} loss`);
    expectClose([consistency], toFloat32(t('train.consistency')), `${name} consistency`);
    const expectedKeys = Object.keys(caseFile.tensors).filter((k) => k.startsWith('grad.') && !k.startsWith('grad.grn.')).map((k) => k.slice(5)).sort();
    const compared: string[] = [];
    for (const { torchKey, entry } of entries) {
      const grad = grads[entry.variable.name];
      if (!grad) continue;
      const record = caseFile.tensors[`grad.${torchKey}`];
      if (!record) {
        // torch has no grad where the parameter is off the path; ours may hold exact zeros there.
        expect(Math.max(...Array.from(grad.dataSync()).map(Math.abs)), `${name} ${torchKey}: gradient off the torch path`).toBe(0);
        continue;
      }
      const laidOut = entry.torch.perm ? tf.transpose(grad, [...entry.torch.perm]) : grad;
      expectGradClose(laidOut.dataSync(), toFloat32(record), `${name} grad ${torchKey}`, 1e-4);
      compared.push(torchKey);
    }
    expect(compared.sort(), `${name}: every torch gradient compared`).toEqual(expectedKeys);
    for (const [key, entry] of grnEntries) {
      const grad = grads[entry.variable.name];
      const record = t(`grad.grn.${key}`);
      const laidOut = grad && entry.torch.perm ? tf.transpose(grad, [...entry.torch.perm]) : grad;
      expectGradClose(laidOut?.dataSync() ?? [], toFloat32(record), `${name} grad grn.${key}`, 1e-4);
    }
    tf.dispose([value, ...Object.values(grads), x, ...Object.values(injected)]);
    strategy.dispose?.();
    for (const module of Object.values(strategy.modules)) module.dispose();
    model.dispose();
  });
});
