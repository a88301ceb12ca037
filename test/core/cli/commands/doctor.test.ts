import { describe, expect, it } from 'vitest';
import { main } from '../../../../src/core/cli/main.js';
import type { CliIo } from '../../../../src/core/cli/app.js';
import { loadNativeBlas } from '../../../../src/core/runtime/index.js';

const blasHere = (await loadNativeBlas({ env: {} })).available;

function capture(): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t), stdoutIsTTY: false };
}

async function doctor(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const io = capture();
  const code = await main(['doctor', ...args], { manifest: {}, io, env });
  return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
}

describe('milkit doctor', () => {
  it('names Node, the chosen backend and why, wasm threads, BLAS and the optional libraries', async () => {
    const { code, out } = await doctor([]);
    expect(code).toBe(0);
    expect(out).toContain(`node             ${process.version}`);
    expect(out).toMatch(/chosen {11}wasm — auto: .*wasm is the best available/);
    expect(out).toMatch(/wasm {13}SIMD yes, threads 1/);
    expect(out).toMatch(blasHere ? /BLAS kernels {5}active: \S+, \d+ threads?/ : /BLAS kernels {5}not active — /);
    for (const name of ['OpenBLAS', 'OpenSlide', 'python3-torch']) expect(out).toContain(`    ${name}`);
  });

  it('says why BLAS is off when the library is disabled, and still lists it as a system library', async () => {
    const { code, out } = await doctor(['--json'], { MILKIT_BLAS_LIBRARY: 'none' });
    expect(code).toBe(0);
    const report = JSON.parse(out) as { runtime: { backend: string; blas: { active: boolean; reason: string }; matmulGrad: string }; libraries: Array<{ name: string; found: boolean }> };
    expect(report.runtime.backend).toBe('wasm');
    expect(report.runtime.blas).toEqual({ active: false, reason: 'disabled by MILKIT_BLAS_LIBRARY=none' });
    expect(report.runtime.matmulGrad).toBe('explicit-transpose');
    expect(report.libraries.find((l) => l.name === 'OpenBLAS')?.found).toBe(blasHere);
  });

  it('rejects a bad option with the key path', async () => {
    const { code, err } = await doctor(['--blas', 'maybe']);
    expect(code).toBe(2);
    expect(err).toBe('error [invalid-option]: runtime.blas: expected one of "auto", "on", "off", got "maybe" (milkit doctor options)');
  });
});
