import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../../plugins/index.js';
import type { CliIo } from '../../../../src/core/cli/app.js';
import { main } from '../../../../src/core/cli/main.js';
import { readSafetensors, type TensorRecord } from '../../../../src/core/nn/safetensors.js';
import { FIXTURES, loadFixture } from '../../../helpers/zoo.js';

const cwd = mkdtempSync(join(tmpdir(), 'milkit-weights-'));
beforeAll(async () => {
  await tf.setBackend('cpu');
});
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

function capture(): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t), stdoutIsTTY: false };
}

async function milkit(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = capture();
  const code = await main(args, { manifest: builtinManifest(), io, cwd, env: {} });
  return { code, stdout: io.stdout.join('\n'), stderr: io.stderr.join('\n') };
}

const bytes = (r: TensorRecord): Buffer => Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength);

describe('milkit weights', () => {
  it('inspects a state_dict: keys, dtypes, shapes', async () => {
    const { code, stdout } = await milkit(['weights', 'inspect', join(FIXTURES, 'clam-sb.weights.safetensors')]);
    expect(code).toBe(0);
    expect(stdout).toContain('15 tensors, 337 values');
    expect(stdout).toMatch(/attention_net\.3\.attention_c\.weight\s+F32\s+\[1, 6\]/);
    expect(stdout).toMatch(/instance_loss_fn\.labels\s+I64\s+\[2\]/);
  });

  it('imports a PyTorch CLAM-SB state_dict and exports it back with identical tensors', async () => {
    const torchFile = join(FIXTURES, 'clam-sb.weights.safetensors');
    const imported = await milkit([
      'weights', 'import', torchFile, '-o', 'clam.milkit.safetensors', '--aggregator', 'clam-sb',
      '--aggregator-options', '{"hiddenDim": 10, "attnDim": 6, "kSample": 3}', '--input-dim', '12', '--num-classes', '2',
    ]);
    expect(imported.code, imported.stderr).toBe(0);
    const native = readSafetensors(new Uint8Array(readFileSync(join(cwd, 'clam.milkit.safetensors'))));
    expect(Object.keys(native.tensors)).toContain('aggregator.attention_net.0.weight');
    expect(native.tensors['aggregator.attention_net.0.weight']?.shape).toEqual([12, 10]); // milkit layout [in, out]
    const inspected = await milkit(['weights', 'inspect', 'clam.milkit.safetensors']);
    expect(inspected.stdout).toContain('(milkit weights)');
    expect(inspected.stdout).toContain('"name":"clam-sb"');

    const exported = await milkit(['weights', 'export', 'clam.milkit.safetensors', '-o', 'clam.pt.safetensors']);
    expect(exported.code, exported.stderr).toBe(0);
    const back = readSafetensors(new Uint8Array(readFileSync(join(cwd, 'clam.pt.safetensors')))).tensors;
    const original = loadFixture('clam-sb').weights;
    expect(Object.keys(back).sort()).toEqual(Object.keys(original).sort());
    for (const [key, record] of Object.entries(original)) {
      expect(back[key]?.dtype, key).toBe(record.dtype);
      expect(bytes(back[key] as TensorRecord).equals(bytes(record)), key).toBe(true);
    }
  });

  it('names every key that does not fit when the options are wrong', async () => {
    const { code, stderr } = await milkit([
      'weights', 'import', join(FIXTURES, 'transmil.weights.safetensors'), '-o', 'x.safetensors', '--aggregator', 'transmil',
      '--aggregator-options', '{"embedDim": 16, "heads": 2, "landmarks": 4, "residualKernel": 5}', '--input-dim', '12', '--num-classes', '2',
    ]);
    expect(code).toBe(4);
    expect(stderr).toContain('[state-dict-mismatch]');
    expect(stderr).toContain('mis-shaped 2: layer1.attn.res_conv.weight: got F32 [2, 1, 33, 1], expected float [2, 1, 5, 1]; layer2.attn.res_conv.weight');
    expect(stderr).toContain('milkit weights inspect');
  });

  it('refuses to export a file that is not milkit weights, and asks for the dims on import', async () => {
    const notMilkit = await milkit(['weights', 'export', join(FIXTURES, 'abmil-gated.weights.safetensors'), '-o', 'y.safetensors']);
    expect(notMilkit.code).toBe(4);
    expect(notMilkit.stderr).toContain('[not-milkit-weights]');
    const noDims = await milkit(['weights', 'import', join(FIXTURES, 'abmil-gated.weights.safetensors'), '-o', 'z.safetensors', '--aggregator', 'abmil']);
    expect(noDims.code).toBe(2);
    expect(noDims.stderr).toContain('--input-dim: expected a positive integer, got nothing');
  });

  it('reports a file that is not safetensors', async () => {
    writeFileSync(join(cwd, 'junk.safetensors'), 'hello');
    const { code, stderr } = await milkit(['weights', 'inspect', 'junk.safetensors']);
    expect(code).toBe(4);
    expect(stderr).toContain('junk.safetensors: not a valid safetensors file');
  });
});
