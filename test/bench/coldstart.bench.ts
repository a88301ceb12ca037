// Cold start of the CLI: a fresh `node bin/milkit.mjs <args>` process per measurement, the compiled package
// (dist/, what `npx milkit` runs after `npm ci`) against the TypeScript sources through tsx (MILKIT_SOURCE=1,
// which is how every command started before the build existed). Node's own start-up is the floor.
// hyperfine (Debian package) when installed — it also reports CPU time —, else a spawn loop (wall time only).
// hyperfine -N splits commands at spaces, so no argument may contain one.
// MILKIT_COLDSTART_BASELINE=<folder> adds rows for another build of the package (a folder holding its bin/,
// dist/, package.json and a node_modules link), named by MILKIT_COLDSTART_BASELINE_LABEL: before/after in one run.
// The section also lists what `--help` loads, recorded by test/core/cli/record-module-loads.mjs.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchContext, BenchResult } from './run.js';
import { median } from './shared.js';

interface Case {
  readonly label: string;
  readonly args: readonly string[];
  readonly source: boolean;
  /** Package folder whose bin runs (default: this checkout). */
  readonly packageRoot?: string;
  /** The "code run" column. */
  readonly code?: string;
}

interface Timing {
  readonly medianMs: number;
  readonly minMs: number;
  /** user + system CPU, ms (hyperfine only). */
  readonly cpuMs?: number;
}

const TARGET_MS = 500;

function hasHyperfine(): boolean {
  return spawnSync('hyperfine', ['--version']).status === 0;
}

function envFor(source: boolean): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.MILKIT_SOURCE;
  delete env.NODE_OPTIONS;
  return source ? { ...env, MILKIT_SOURCE: '1' } : env;
}

function withHyperfine(root: string, command: readonly string[], source: boolean, runs: number): Timing {
  const scratch = mkdtempSync(join(tmpdir(), 'milkit-coldstart-'));
  try {
    const out = join(scratch, 'result.json');
    // -N: no intermediate shell, so the numbers are node's alone.
    execFileSync('hyperfine', ['-N', '--warmup', '1', '--runs', String(runs), '--export-json', out, command.join(' ')], { cwd: root, env: envFor(source), stdio: 'ignore' });
    const result = (JSON.parse(readFileSync(out, 'utf8')) as { results: Array<{ times: number[]; user: number; system: number }> }).results[0];
    if (!result) throw new Error('hyperfine wrote no result');
    return { medianMs: median(result.times) * 1000, minMs: Math.min(...result.times) * 1000, cpuMs: (result.user + result.system) * 1000 };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** What a fresh `node bin/milkit.mjs <args>` (compiled) resolves: installed packages, and files of this package. */
function loadedModules(root: string, args: readonly string[]): { packages: string[]; ownFiles: string[] } {
  const scratch = mkdtempSync(join(tmpdir(), 'milkit-coldstart-modules-'));
  try {
    const record = join(scratch, 'modules.txt');
    execFileSync(process.execPath, ['--import', join(root, 'test/core/cli/record-module-loads.mjs'), join(root, 'bin', 'milkit.mjs'), ...args], {
      cwd: root, env: { ...envFor(false), MILKIT_RECORD_MODULES: record }, stdio: 'ignore',
    });
    const modules = [...new Set(readFileSync(record, 'utf8').split('\n').filter(Boolean))];
    const packages = new Set<string>();
    const ownFiles = new Set<string>();
    for (const module of modules) {
      const installed = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(module);
      if (installed?.[1]) packages.add(installed[1]);
      else if (module.startsWith(`file://${root}/`) && !module.endsWith('package.json')) ownFiles.add(module.slice(`file://${root}/`.length));
    }
    return { packages: [...packages].sort(), ownFiles: [...ownFiles].sort() };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function withSpawnLoop(root: string, command: readonly string[], source: boolean, runs: number): Timing {
  const times: number[] = [];
  for (let i = 0; i <= runs; i += 1) {
    const started = process.hrtime.bigint();
    const child = spawnSync(command[0] as string, command.slice(1), { cwd: root, env: envFor(source), stdio: 'ignore' });
    if (child.status !== 0) throw new Error(`${command.join(' ')} exited with ${child.status}`);
    if (i > 0) times.push(Number(process.hrtime.bigint() - started) / 1e6); // the first run warms the file cache
  }
  return { medianMs: median(times), minMs: Math.min(...times) };
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  ctx.log('building dist/ (tsc -p tsconfig.build.json)');
  execFileSync(process.execPath, [join(ctx.root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ctx.root, stdio: 'inherit' });
  const runs = ctx.quick ? 3 : 10;
  const loadAtStart = loadavg()[0] ?? 0;
  const hyperfine = hasHyperfine();
  const measure = hyperfine ? withHyperfine : withSpawnLoop;
  const bin = join(ctx.root, 'bin', 'milkit.mjs');
  const baseline = process.env.MILKIT_COLDSTART_BASELINE;
  if (baseline !== undefined && !existsSync(join(baseline, 'bin', 'milkit.mjs'))) throw new Error(`MILKIT_COLDSTART_BASELINE=${baseline} holds no bin/milkit.mjs`);
  const baselineCode = `compiled \`dist/\` of ${process.env.MILKIT_COLDSTART_BASELINE_LABEL ?? baseline ?? ''}`;
  const cases: Case[] = [
    ...(baseline === undefined ? [] : [{ label: '`milkit --help`', args: ['--help'], source: false, packageRoot: baseline, code: baselineCode }]),
    { label: '`milkit --help`', args: ['--help'], source: false },
    { label: '`milkit --help`', args: ['--help'], source: true },
    { label: '`milkit --version` (answered by the bin, no module graph)', args: ['--version'], source: false },
    ...(baseline === undefined ? [] : [{ label: '`milkit plugins --brief` (imports every built-in plugin)', args: ['plugins', '--brief'], source: false, packageRoot: baseline, code: baselineCode }]),
    { label: '`milkit plugins --brief` (imports every built-in plugin)', args: ['plugins', '--brief'], source: false },
    { label: '`milkit plugins --brief` (imports every built-in plugin)', args: ['plugins', '--brief'], source: true },
  ];
  const node = measure(ctx.root, [process.execPath, '-e', '0'], false, runs);
  // What a command module pays when it imports tfjs at load time (every command does today, via the engine).
  const tfjs = measure(ctx.root, [process.execPath, '--import', '@tensorflow/tfjs', '-e', '0'], false, runs);
  const rows: string[] = [];
  const results = new Map<string, Timing>();
  for (const c of cases) {
    ctx.log(`${c.label} from ${c.packageRoot ?? (c.source ? 'sources' : 'dist')}`);
    const timing = measure(c.packageRoot ?? ctx.root, [process.execPath, c.packageRoot ? join(c.packageRoot, 'bin', 'milkit.mjs') : bin, ...c.args], c.source, runs);
    results.set(`${c.args.join(' ')}|${c.source}|${c.packageRoot ?? ''}`, timing);
    const cpu = timing.cpuMs === undefined ? '' : ` | ${timing.cpuMs.toFixed(0)}`;
    rows.push(`| ${c.label} | ${c.code ?? (c.source ? 'sources through tsx (`MILKIT_SOURCE=1`)' : 'compiled `dist/`')} | ${timing.medianMs.toFixed(0)} | ${timing.minMs.toFixed(0)}${cpu} |`);
  }
  const helpLoads = loadedModules(ctx.root, ['--help']);
  const nodeCpu = node.cpuMs === undefined ? '' : ` | ${node.cpuMs.toFixed(0)}`;
  const help = results.get('--help|false|') as Timing;
  const helpSource = results.get('--help|true|') as Timing;
  const helpBefore = baseline === undefined ? undefined : results.get(`--help|false|${baseline}`);
  const cpuOf = (timing: Timing): string => (timing.cpuMs === undefined ? '' : `, ${timing.cpuMs.toFixed(0)} ms CPU`);
  const cpuHeader = hyperfine ? ' | CPU ms (user + sys, mean) |' : ' |';
  const cpuRule = hyperfine ? '---|---|---|---|---|' : '---|---|---|---|';
  return {
    markdown: [
      '## CLI cold start: compiled package vs TypeScript sources',
      '',
      `Each row starts a fresh \`node bin/milkit.mjs …\` process ${runs} times after one warm-up run (so the file cache is warm; "cold" means a new process with nothing loaded). Measured with ${hyperfine ? 'hyperfine (`-N`, no shell)' : 'a spawn loop (wall time only)'}.`,
      '',
      `| command | code run | median ms | min ms${cpuHeader}`,
      `|${cpuRule}`,
      `| \`node -e 0\` (Node's own start-up: the floor) | — | ${node.medianMs.toFixed(0)} | ${node.minMs.toFixed(0)}${nodeCpu} |`,
      `| \`import('@tensorflow/tfjs')\` alone | — | ${tfjs.medianMs.toFixed(0)} | ${tfjs.minMs.toFixed(0)}${tfjs.cpuMs === undefined ? '' : ` | ${tfjs.cpuMs.toFixed(0)}`} |`,
      ...rows,
      '',
      ...(loadAtStart > availableParallelism()
        ? [`_1-minute load average ${loadAtStart.toFixed(1)} on ${availableParallelism()} cores when this started: wall times include waiting for a core (even \`node -e 0\`), so compare the CPU column, which waiting does not inflate._`, '']
        : []),
      `**\`milkit --help\` from the compiled package: ${help.medianMs.toFixed(0)} ms median${cpuOf(help)} (${(helpSource.medianMs / help.medianMs).toFixed(1)}× faster than the sources through tsx, ${helpSource.medianMs.toFixed(0)} ms${helpBefore ? `; ${process.env.MILKIT_COLDSTART_BASELINE_LABEL ?? 'the baseline'}: ${helpBefore.medianMs.toFixed(0)} ms${cpuOf(helpBefore)}` : ''}). Target ≤ ${TARGET_MS} ms: ${help.medianMs <= TARGET_MS ? 'met' : 'not met'}${help.cpuMs !== undefined && help.medianMs > TARGET_MS ? ` (CPU time: ${help.cpuMs <= TARGET_MS ? 'met' : 'not met'})` : ''}.**`,
      '',
      'Why `--help` is cheap: command modules register their options with commander and import what their actions need (config, engine, tracking, tfjs, zod, yaml, sharp) with `import()` inside the action; the process services (plugin registry, trackers) are built in a commander `preAction` hook, so they too load only when an action runs. `--version` alone is answered by the bin before any module graph loads.',
      '',
      `What \`milkit --help\` loads (compiled, recorded with test/core/cli/record-module-loads.mjs): packages ${helpLoads.packages.map((name) => `\`${name}\``).join(', ') || 'none'}; ${helpLoads.ownFiles.length} files of milkit: ${helpLoads.ownFiles.map((file) => `\`${file}\``).join(', ')}. test/core/cli/help-imports.test.ts fails if tfjs, zod, yaml, sharp, h5wasm, koffi, vega, axios or execa load for \`--help\`.`,
      '',
      '`milkit plugins --brief` still imports every built-in plugin file to read its summary, and the plugin files import tfjs and zod at their top; making it fast needs plugin summaries readable without their implementation (a change to plugins/ and the registry, not to the CLI).',
      '',
      `Command: \`npm run bench -- coldstart\` (\`BENCH_QUICK=1\`: 3 runs per row)${baseline === undefined ? '' : '; the baseline rows come from `MILKIT_COLDSTART_BASELINE=<folder>` (a copy of that commit\'s bin/, dist/ and package.json with a node_modules link) and `MILKIT_COLDSTART_BASELINE_LABEL`'}.`,
    ].join('\n'),
  };
}
