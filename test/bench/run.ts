// `npm run bench [-- <name>...]`: runs every test/bench/<name>.bench.ts and writes its section of BENCHMARKS.md.
//
// Module contract (add a file, nothing else to register):
//   export async function run(ctx: BenchContext): Promise<BenchResult>
//   - `ctx.log(line)` prints progress to stderr; `ctx.quick` asks for a short smoke run (`--quick` or BENCH_QUICK=1);
//     `ctx.python` is Debian's /usr/bin/python3 (torch, h5py, sklearn); `ctx.root` is the repository root.
//   - return `{ markdown }`: the whole body of the module's section (tables, notes, the command that produced it).
//   - each module runs in its own Node process (tfjs backends, kernels and BLAS threads are process-global), so a
//     module may call initRuntime/setBackend freely. Timing belongs here, never in unit tests.
// BENCHMARKS.md keeps one section per module between `<!-- bench:<name> -->` and `<!-- /bench:<name> -->`;
// a run replaces only the sections of the modules it ran, so partial runs keep the other numbers.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface BenchContext {
  readonly root: string;
  readonly python: string;
  readonly quick: boolean;
  log(line: string): void;
}

export interface BenchResult {
  readonly markdown: string;
}

type BenchModule = { run?: (ctx: BenchContext) => Promise<BenchResult> };

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const benchmarksFile = join(root, 'BENCHMARKS.md');

const HEADER = `# Benchmarks

Produced by \`npm run bench\` (\`test/bench/run.ts\`): each \`test/bench/<name>.bench.ts\` writes the section between
its \`<!-- bench:<name> -->\` markers. Re-run one section with \`npm run bench -- <name>\`.
`;

function machine(): string {
  const model = cpus()[0]?.model ?? 'unknown CPU';
  const load = loadavg().map((l) => l.toFixed(2)).join(' / ');
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    // not a git checkout
  }
  return `${availableParallelism()} cores (${model}), Node ${process.version}, commit ${commit}, load average at start ${load} (1/5/15 min)`;
}

/** Replaces (or appends) the `name` section of `text`. */
export function replaceSection(text: string, name: string, body: string): string {
  const open = `<!-- bench:${name} -->`;
  const close = `<!-- /bench:${name} -->`;
  const block = `${open}\n${body.trim()}\n${close}`;
  const start = text.indexOf(open);
  const end = text.indexOf(close);
  if (start >= 0 && end > start) return text.slice(0, start) + block + text.slice(end + close.length);
  return `${text.trimEnd()}\n\n${block}\n`;
}

async function runChild(file: string): Promise<void> {
  const module = (await import(pathToFileURL(file).href)) as BenchModule;
  if (typeof module.run !== 'function') throw new Error(`${file} does not export run(ctx)`);
  const ctx: BenchContext = {
    root,
    python: '/usr/bin/python3',
    quick: process.env['BENCH_QUICK'] === '1',
    log: (line) => process.stderr.write(`[${basename(file, '.bench.ts')}] ${line}\n`),
  };
  const result = await module.run(ctx);
  const out = process.env['MILKIT_BENCH_OUT'];
  if (!out) throw new Error('MILKIT_BENCH_OUT not set');
  writeFileSync(out, JSON.stringify(result));
}

function spawnChild(file: string, out: string): Promise<number> {
  return new Promise((resolveExit, reject) => {
    // The bench modules import src/ directly; `milkit-source` makes the plugins' `import 'milkit'` reach the same
    // sources (not a possibly stale dist/), so one module graph serves both.
    const child = spawn(process.execPath, ['--conditions=milkit-source', '--import', 'tsx', fileURLToPath(import.meta.url), '--child', file], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, MILKIT_BENCH_OUT: out },
    });
    child.on('error', reject);
    child.on('exit', (code) => resolveExit(code ?? 1));
  });
}

async function runAll(filters: readonly string[]): Promise<number> {
  const files = readdirSync(here)
    .filter((f) => f.endsWith('.bench.ts'))
    .filter((f) => filters.length === 0 || filters.includes(basename(f, '.bench.ts')))
    .sort();
  if (files.length === 0) {
    process.stderr.write(`no bench modules match ${filters.join(', ')}\n`);
    return 1;
  }
  const scratch = mkdtempSync(join(tmpdir(), 'milkit-bench-'));
  let failures = 0;
  try {
    for (const file of files) {
      const name = basename(file, '.bench.ts');
      const out = join(scratch, `${name}.json`);
      const startedOn = machine();
      const started = Date.now();
      process.stderr.write(`bench ${name}: running (${startedOn})\n`);
      const code = await spawnChild(join(here, file), out);
      if (code !== 0 || !existsSync(out)) {
        process.stderr.write(`bench ${name}: failed with exit code ${code}; its section is left as it was\n`);
        failures += 1;
        continue;
      }
      const result = JSON.parse(readFileSync(out, 'utf8')) as BenchResult;
      const minutes = ((Date.now() - started) / 60_000).toFixed(1);
      const body = `${result.markdown.trim()}\n\n_Machine: ${startedOn}. Took ${minutes} min; run on ${new Date().toISOString().slice(0, 10)}._`;
      const current = existsSync(benchmarksFile) ? readFileSync(benchmarksFile, 'utf8') : HEADER;
      writeFileSync(benchmarksFile, replaceSection(current, name, body));
      process.stderr.write(`bench ${name}: done in ${minutes} min, BENCHMARKS.md updated\n`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return failures === 0 ? 0 : 1;
}

const args = process.argv.slice(2);
// `npm run bench -- zoo --quick`: the modules' short smoke runs (same as BENCH_QUICK=1; children inherit it).
if (args.includes('--quick')) process.env['BENCH_QUICK'] = '1';
if (args[0] === '--child' && args[1]) {
  await runChild(args[1]);
} else if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await runAll(args.filter((a) => a !== '--quick'));
}
