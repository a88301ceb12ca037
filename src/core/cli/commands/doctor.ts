// `milkit doctor`: what this machine offers milkit — Node, tfjs backends (installed, chosen and why), wasm SIMD and
// threads, native BLAS, optional system libraries (OpenBLAS, OpenSlide, Debian python3-torch for reference values).
import { cpus, availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { silentLogger } from '../../logger.js';
import type { CliApp } from '../app.js';

interface SystemLibrary {
  readonly name: string;
  readonly found: boolean;
  readonly detail: string;
}

interface KoffiLike {
  load(path: string): { func(signature: string): (...args: unknown[]) => unknown };
}

async function probeOpenSlide(): Promise<SystemLibrary> {
  const install = 'not found (slide reading via OpenSlide: `apt-get install libopenslide0`)';
  let koffi: KoffiLike;
  try {
    const imported = (await import('koffi')) as { default?: KoffiLike } & Partial<KoffiLike>;
    koffi = imported.default ?? (imported as KoffiLike);
  } catch (error) {
    return { name: 'OpenSlide', found: false, detail: `koffi cannot be loaded: ${error instanceof Error ? error.message : String(error)}` };
  }
  for (const candidate of ['libopenslide.so.1', 'libopenslide.so.0', 'libopenslide.so']) {
    try {
      const version = koffi.load(candidate).func('const char *openslide_get_version(void)');
      return { name: 'OpenSlide', found: true, detail: `${candidate} (${String(version())})` };
    } catch {
      // try the next name
    }
  }
  return { name: 'OpenSlide', found: false, detail: install };
}

/** Versions of torch/h5py/sklearn as Debian's /usr/bin/python3 sees them (the reference generators use it). */
async function probePython(): Promise<SystemLibrary[]> {
  const python = '/usr/bin/python3';
  const script =
    'import importlib, json\nout = {}\nfor m in ("torch", "h5py", "sklearn"):\n' +
    '    try:\n        out[m] = importlib.import_module(m).__version__\n    except Exception as e:\n        out[m] = None\nprint(json.dumps(out))';
  const packages: Array<[string, string]> = [['torch', 'python3-torch'], ['h5py', 'python3-h5py'], ['sklearn', 'python3-sklearn']];
  try {
    const { execa } = await import('execa');
    const { stdout } = await execa(python, ['-c', script], { timeout: 60_000 });
    const versions = JSON.parse(stdout) as Record<string, string | null>;
    return packages.map(([module, pkg]) => {
      const version = versions[module];
      return version
        ? { name: pkg, found: true, detail: `${module} ${version} (${python})` }
        : { name: pkg, found: false, detail: `not importable by ${python} (reference checks only: \`apt-get install ${pkg}\`)` };
    });
  } catch (error) {
    const why = error instanceof Error ? error.message.split('\n')[0] ?? '' : String(error);
    return packages.map(([, pkg]) => ({ name: pkg, found: false, detail: `${python} did not run (${why})` }));
  }
}

const BACKENDS = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;
const BLAS_MODES = ['auto', 'on', 'off'] as const;

export function register(program: Command, app: CliApp): void {
  program
    .command('doctor')
    .description('show Node, tfjs backends (available, chosen and why), wasm threads, native BLAS and optional system libraries')
    .option('--backend <name>', `backend to try, as runtime.backend (${BACKENDS.join('|')})`, 'auto')
    .option('--blas <mode>', `native BLAS, as runtime.blas (${BLAS_MODES.join('|')})`, 'auto')
    .option('--blas-threads <n>', 'OpenBLAS threads, as runtime.blasThreads')
    .option('--json', 'machine-readable output')
    .action(async (opts: { backend: string; blas: string; blasThreads?: string; json?: boolean }) => {
      // Loaded here so `milkit --help` does not pull in tfjs.
      const { RuntimeSection } = await import('../../runtime/schema.js');
      const { findBackends, initRuntime, loadNativeBlas } = await import('../../runtime/index.js');
      const { parseOrThrow } = await import('../../config/zod-issues.js');
      const blasThreads = opts.blasThreads === undefined ? undefined : Number(opts.blasThreads);
      if (blasThreads !== undefined && !(Number.isInteger(blasThreads) && blasThreads > 0)) {
        throw new ConfigError('invalid-cli-value', `--blas-threads expects a whole number ≥ 1, got "${opts.blasThreads}".`, { hint: 'Example: --blas-threads 2.' });
      }
      const section = parseOrThrow(RuntimeSection, { backend: opts.backend, blas: opts.blas, ...(blasThreads ? { blasThreads } : {}) }, { file: 'milkit doctor options', key: 'runtime' });

      const candidates = findBackends();
      const info = await initRuntime(section, { logger: silentLogger, env: app.env });
      // OpenBLAS as a system library, independent of whether the runtime uses it (it may be off or another backend).
      const blasProbe = await loadNativeBlas({ env: {} });
      const libraries: SystemLibrary[] = [
        blasProbe.available
          ? { name: 'OpenBLAS', found: true, detail: `${blasProbe.blas.library} (${blasProbe.blas.config})` }
          : { name: 'OpenBLAS', found: false, detail: `${blasProbe.reason}; for torch-class speed: \`apt-get install libopenblas0-pthread\`` },
        await probeOpenSlide(),
        ...(await probePython()),
      ];
      const cpuModel = cpus()[0]?.model ?? 'unknown';
      const report = {
        node: process.version,
        platform: `${process.platform} ${process.arch}`,
        cpu: { cores: availableParallelism(), model: cpuModel },
        tfjs: info.tfjsVersion,
        backends: candidates.map((c) => ({ name: c.name, installed: c.installed, note: c.note })),
        runtime: info,
        libraries,
      };
      if (opts.json) {
        app.io.out(JSON.stringify(report, null, 2));
        return;
      }
      const row = (label: string, value: string): string => `  ${label.padEnd(16)} ${value}`;
      const lines = [
        'milkit doctor',
        row('node', `${process.version} (${report.platform})`),
        row('cpu', `${report.cpu.cores} cores, ${cpuModel}`),
        row('tfjs', info.tfjsVersion),
        '  backends (best first)',
        ...candidates.map((c) => `    ${c.name.padEnd(17)}${c.installed ? 'available' : c.note}${c.name === 'tensorflow-gpu' || c.name === 'tensorflow' ? (c.installed ? '' : ' (optional; its install downloads libtensorflow, skipped when that fails)') : ''}`),
        row('chosen', `${info.backend}${info.backend === 'tensorflow' ? ` (${info.device})` : ''} — ${info.reason}`),
        ...(info.wasm
          ? [row('wasm', `SIMD ${info.wasm.simd ? 'yes' : 'no'}, threads ${info.wasm.threads}${info.wasm.multithread ? '' : ' (tfjs-backend-wasm has no threads in Node)'}`)]
          : []),
        row('BLAS kernels', info.blas.active
          ? `active: ${info.blas.library}, ${info.blas.threads ?? '?'} thread${info.blas.threads === 1 ? '' : 's'} — ${info.blas.reason}`
          : `not active — ${info.blas.reason}`),
        row('kernels', info.kernelOverrides.length ? `milkit overrides ${info.kernelOverrides.join(', ')}` : 'stock'),
        row('matMul gradient', info.matmulGrad),
        '  system libraries (optional)',
        ...libraries.map((l) => `    ${l.name.padEnd(17)}${l.found ? '' : 'missing: '}${l.detail}`),
      ];
      app.io.out(lines.join('\n'));
    });
}
