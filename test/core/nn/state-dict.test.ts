import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors, type TensorRecord } from '../../../src/core/nn/safetensors.js';
import { exportNativeState, exportTorchState, importNativeState, importTorchState } from '../../../src/core/nn/state-dict.js';
import { buildModel, loadFixture, modelFromFixture } from '../../helpers/zoo.js';

const PYTHON = '/usr/bin/python3';
const ROUNDTRIP = join(import.meta.dirname, '..', '..', 'reference', 'roundtrip_check.py');
const hasTorch = (() => {
  try {
    execFileSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const ZOO = ['abmil-gated', 'abmil-plain', 'clam-sb', 'clam-sb-subtyping', 'clam-mb', 'clam-mb-binary', 'dsmil', 'dsmil-passing-v', 'dsmil-single-logit', 'transmil', 'transmil-fixed', 'transmil-no-pad', 'dtfd-afs', 'dtfd-maxmins', 'dtfd-maxs'];
const scratch = mkdtempSync(join(tmpdir(), 'milkit-state-dict-'));

beforeAll(async () => {
  await tf.setBackend('cpu');
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function bytesOf(record: TensorRecord): Uint8Array {
  return new Uint8Array(record.data.buffer, record.data.byteOffset, record.data.byteLength);
}

describe('nn/state-dict', () => {
  it.each(ZOO)('round-trips %s: PyTorch safetensors → milkit → safetensors gives identical tensors', async (name) => {
    const fixture = loadFixture(name);
    const model = await modelFromFixture(fixture);
    const exported = readSafetensors(writeSafetensors(await exportTorchState(model))).tensors;
    expect(Object.keys(exported).sort()).toEqual(Object.keys(fixture.weights).sort());
    for (const [key, original] of Object.entries(fixture.weights)) {
      const mine = exported[key] as TensorRecord;
      expect(mine.dtype, key).toBe(original.dtype);
      expect(mine.shape, key).toEqual(original.shape);
      expect(Buffer.compare(bytesOf(mine), bytesOf(original)), `${key} bytes`).toBe(0);
    }
    model.dispose();
  });

  it.runIf(hasTorch).each(['abmil-gated', 'clam-sb', 'clam-mb', 'dsmil', 'transmil', 'dtfd-afs'])('loads back into the PyTorch reference with strict=True, tensors identical (%s)', async (name) => {
    const model = await modelFromFixture(loadFixture(name));
    const file = join(scratch, `${name}.safetensors`);
    writeFileSync(file, writeSafetensors(await exportTorchState(model)));
    const out = execFileSync(PYTHON, [ROUNDTRIP, name, file], { cwd: join(import.meta.dirname, '..', '..', 'reference'), encoding: 'utf8' });
    expect(out).toMatch(/^identical \d+ tensors/);
    model.dispose();
  });

  it('names every missing, unexpected and mis-shaped key in one error, and changes nothing', async () => {
    const fixture = loadFixture('clam-sb');
    const model = await buildModel(fixture.spec);
    const before = (await exportNativeState(model))['aggregator.attention_net.0.weight']?.data.slice();
    const broken: Record<string, TensorRecord> = { ...fixture.weights };
    delete broken['attention_net.3.attention_b.0.bias'];
    broken['attention_net.3.attention_c.weight'] = { dtype: 'F32', shape: [2, 6], data: new Float32Array(12) };
    broken['attention_net.9.extra'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
    expect(() => importTorchState(model, broken, 'ckpt.safetensors')).toThrowErrorMatchingInlineSnapshot(`[DataError: ckpt.safetensors: the PyTorch weights do not fit the model — missing 1: attention_net.3.attention_b.0.bias [6] | unexpected 1: attention_net.9.extra [1] | mis-shaped 1: attention_net.3.attention_c.weight: got F32 [2, 6], expected float [1, 6].]`);
    expect((await exportNativeState(model))['aggregator.attention_net.0.weight']?.data).toEqual(before);
    model.dispose();
  });

  it('accepts checkpoints without optional constant buffers (CLAM with the CE instance loss)', async () => {
    const fixture = loadFixture('clam-sb');
    const model = await buildModel(fixture.spec);
    const withoutBuffer: Record<string, TensorRecord> = { ...fixture.weights };
    delete withoutBuffer['instance_loss_fn.labels'];
    expect(() => importTorchState(model, withoutBuffer, 'ce.safetensors')).not.toThrow();
    model.dispose();
  });

  it('round-trips the native (milkit-key, milkit-layout) form into a fresh model', async () => {
    const fixture = loadFixture('transmil');
    const trained = await modelFromFixture(fixture);
    const native = await exportNativeState(trained);
    expect(Object.keys(native)).toContain('aggregator.layer1.attn.to_qkv.weight');
    expect(native['aggregator.layer1.attn.to_qkv.weight']?.shape).toEqual([16, 48]); // [in, out] in milkit
    const fresh = await buildModel({ ...fixture.spec, seed: 99 });
    importNativeState(fresh, native, 'native.safetensors');
    const again = await exportTorchState(fresh);
    for (const [key, original] of Object.entries(fixture.weights)) expect(Buffer.compare(bytesOf(again[key] as TensorRecord), bytesOf(original)), key).toBe(0);
    trained.dispose();
    fresh.dispose();
  });

  it('has the reference fixtures it round-trips', () => {
    for (const name of ZOO) expect(existsSync(join(import.meta.dirname, '..', '..', 'reference', 'fixtures', `${name}.weights.safetensors`)), name).toBe(true);
  });
});
