import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { BackendError } from '../../../src/core/errors.js';
import { MemoryLogger, silentLogger } from '../../../src/core/logger.js';
import { backendPlan, describeRuntime, findBackends, initRuntime, loadNativeBlas, runtimeTags, type RuntimeInfo } from '../../../src/core/runtime/index.js';
import { RuntimeSection } from '../../../src/core/runtime/schema.js';

const blasHere = (await loadNativeBlas()).available;
const installedOnly = (...pkgs: string[]) => (pkg: string): boolean => pkgs.includes(pkg);
const WASM = '@tensorflow/tfjs-backend-wasm';

describe('backend choice', () => {
  it('orders tensorflow-gpu > tensorflow > wasm > cpu under auto', () => {
    const all = findBackends(installedOnly('@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node', WASM));
    expect(backendPlan('auto', all).map((c) => c.name)).toEqual(['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']);
  });

  it('falls back to wasm, then cpu, when the tfjs-node packages are missing', () => {
    expect(backendPlan('auto', findBackends(installedOnly(WASM))).map((c) => c.name)).toEqual(['wasm', 'cpu']);
    expect(backendPlan('auto', findBackends(installedOnly())).map((c) => c.name)).toEqual(['cpu']);
  });

  it('takes the cpu build of tensorflow when only @tensorflow/tfjs-node is installed', () => {
    expect(backendPlan('tensorflow', findBackends(installedOnly('@tensorflow/tfjs-node', WASM))).map((c) => c.name)).toEqual(['tensorflow']);
  });

  it('names a forced backend that is missing, why, and what to do', () => {
    const candidates = findBackends(installedOnly(WASM));
    expect(() => backendPlan('tensorflow', candidates)).toThrow(BackendError);
    try {
      backendPlan('tensorflow', candidates);
    } catch (error) {
      expect((error as BackendError).code).toBe('backend-unavailable');
      expect((error as BackendError).render()).toBe(
        'runtime.backend: backend "tensorflow" is not available: @tensorflow/tfjs-node-gpu not installed; @tensorflow/tfjs-node not installed. ' +
          'To use it, install it with `npm install @tensorflow/tfjs-node` (or @tensorflow/tfjs-node-gpu with CUDA; both download libtensorflow from storage.googleapis.com); ' +
          'or set runtime.backend to auto (best available), wasm or cpu.',
      );
    }
    expect(() => backendPlan('wasm', findBackends(installedOnly()))).toThrow(/backend "wasm" is not available: @tensorflow\/tfjs-backend-wasm is not installed/);
  });
});

describe('initRuntime', () => {
  const section = (over: Partial<RuntimeSection> = {}): RuntimeSection => RuntimeSection.parse(over);

  it('picks wasm here under auto and says why in one line', async () => {
    const logger = new MemoryLogger();
    const info = await initRuntime(section(), { logger });
    expect(tf.getBackend()).toBe('wasm');
    expect(info.backend).toBe('wasm');
    expect(info.available).toEqual(['wasm', 'cpu']);
    expect(info.reason).toBe('auto: @tensorflow/tfjs-node-gpu not installed; @tensorflow/tfjs-node not installed → wasm is the best available');
    expect(info.wasm).toEqual({ simd: true, multithread: false, threads: 1 });
    expect(logger.lines).toHaveLength(1);
    expect(logger.lines[0]?.message).toBe(describeRuntime(info));
    expect(logger.lines[0]?.message).toMatch(/^backend: wasm \[SIMD on, 1 thread\]: auto: .* · BLAS (on|off)/);
  });

  it('is idempotent: the same settings return the same info and log nothing', async () => {
    const first = await initRuntime(section(), { logger: silentLogger });
    const logger = new MemoryLogger();
    const second = await initRuntime(section(), { logger });
    expect(second).toBe(first);
    expect(logger.lines).toHaveLength(0);
  });

  it('re-applies when someone switched the backend behind its back', async () => {
    const first = await initRuntime(section(), { logger: silentLogger });
    await tf.setBackend('cpu');
    const again = await initRuntime(section(), { logger: silentLogger });
    expect(again).not.toBe(first);
    expect(tf.getBackend()).toBe('wasm');
  });

  it('honours a forced cpu backend with tfjs\'s own matMul gradient', async () => {
    const info = await initRuntime(section({ backend: 'cpu' }), { logger: silentLogger });
    expect(tf.getBackend()).toBe('cpu');
    expect(info.matmulGrad).toBe('stock');
    expect(info.blas).toEqual({ active: false, reason: 'only used with the wasm backend' });
    expect(info.kernelOverrides).toEqual([]);
  });

  it('rejects runtime.blas: on with the cpu backend', async () => {
    const failure = initRuntime(section({ backend: 'cpu', blas: 'on' }), { logger: silentLogger });
    await expect(failure).rejects.toBeInstanceOf(BackendError);
    await expect(failure.catch((error: BackendError) => `[${error.code}] ${error.render()}`)).resolves.toBe(
      '[blas-needs-wasm] runtime.blas: "on" needs the wasm backend (the BLAS kernels replace wasm matmuls), but the backend is cpu. ' +
        'Set runtime.backend: wasm (or auto), or runtime.blas: auto|off.',
    );
  });

  it('rejects runtime.blas: on when no library loads, naming the install command', async () => {
    const failure = initRuntime(section({ backend: 'wasm', blas: 'on' }), { logger: silentLogger, blasCandidates: ['libmilkit-missing.so'] });
    await expect(failure).rejects.toBeInstanceOf(BackendError);
    await expect(failure).rejects.toMatchObject({ code: 'blas-unavailable', where: { key: 'runtime.blas' } });
    await expect(failure.catch((error: BackendError) => error.render())).resolves.toBe(
      'runtime.blas: "on", but no native BLAS could be loaded: no usable BLAS library (not found: libmilkit-missing.so). ' +
        'Install OpenBLAS (`apt-get install libopenblas0-pthread` on Debian/Ubuntu), or set runtime.blas: auto|off.',
    );
  });

  it('falls back to stock kernels and the explicit-transpose gradient with runtime.blas: off', async () => {
    const info = await initRuntime(section({ backend: 'wasm', blas: 'off' }), { logger: silentLogger });
    expect(info.blas).toEqual({ active: false, reason: 'runtime.blas: off' });
    expect(info.matmulGrad).toBe('explicit-transpose');
    expect(info.kernelOverrides).toEqual(['BatchMatMul', '_FusedMatMul']);
    expect(runtimeTags(info)).toEqual({
      'milkit.backend': 'wasm',
      'milkit.backend.device': 'cpu',
      'milkit.tfjs': '4.22.0',
      'milkit.blas': 'off',
      'milkit.blas.reason': 'runtime.blas: off',
      'milkit.matmulGrad': 'explicit-transpose',
      'milkit.kernels': 'BatchMatMul,_FusedMatMul',
    });
  });

  it.skipIf(!blasHere)('uses runtime.blasThreads, else cores ÷ workers, and tags the run with it', async () => {
    const pinned: RuntimeInfo = await initRuntime(section({ backend: 'wasm', blasThreads: 1 }), { logger: silentLogger });
    expect(pinned.blas.threads).toBe(1);
    expect(pinned.blas.reason).toMatch(/^auto: loaded \S+, 1 thread \(runtime\.blasThreads\)$/);
    const shared = await initRuntime(section({ backend: 'wasm' }), { logger: silentLogger, workers: 2 });
    expect(shared.blas.threads).toBe(Math.max(1, Math.floor(availableParallelism() / 2)));
    const tags = runtimeTags(shared);
    expect(tags['milkit.blas']).toBe('on');
    expect(tags['milkit.blas.threads']).toBe(String(shared.blas.threads));
    expect(tags['milkit.blas.library']).toBe(shared.blas.library);
    // Slice and UnsortedSegmentSum: the small-N kernels (src/core/runtime/small-n-kernels.ts), installed with the BLAS extras.
    expect(tags['milkit.kernels']).toBe('BatchMatMul,Cast,DepthwiseConv2dNative,Exp,Identity,MilkitDepthwiseFilterGrad,MilkitReluGrad,MilkitSigmoidGrad,MilkitTanhGrad,Slice,Sum,Tanh,UnsortedSegmentSum,_FusedMatMul');
    expect(tags['milkit.matmulGrad']).toBe('stock');
  });
});
