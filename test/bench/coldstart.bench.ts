// Cold start of the CLI: a fresh `node bin/milkit.mjs <args>` process per measurement, the compiled package
// (dist/, what `npx milkit` runs after `npm ci`) against the TypeScript sources through tsx (MILKIT_SOURCE=1,
// which is how every command started before the build existed). Node's own start-up is the floor.
// hyperfine (Debian package) when installed — it also reports CPU time —, else a spawn loop (wall time only).
// hyperfine -N splits commands at spaces, so no argument may contain one.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchContext, BenchResult } from './run.js';
import { median } from './shared.js';

interface Case {
  readonly label: string;
  readonly args: readonly string[];
  readonly source: boolean;
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
  const cases: Case[] = [
    { label: '`milkit --help`', args: ['--help'], source: false },
    { label: '`milkit --help`', args: ['--help'], source: true },
    { label: '`milkit --version` (answered by the bin, no module graph)', args: ['--version'], source: false },
    { label: '`milkit plugins --brief` (imports every built-in plugin)', args: ['plugins', '--brief'], source: false },
    { label: '`milkit plugins --brief` (imports every built-in plugin)', args: ['plugins', '--brief'], source: true },
  ];
  const node = measure(ctx.root, [process.execPath, '-e', '0'], false, runs);
  // What a command module pays when it imports tfjs at load time (every command does today, via the engine).
  const tfjs = measure(ctx.root, [process.execPath, '--import', '@tensorflow/tfjs', '-e', '0'], false, runs);
  const rows: string[] = [];
  const results = new Map<string, Timing>();
  for (const c of cases) {
    ctx.log(`${c.label} from ${c.source ? 'sources' : 'dist'}`);
    const timing = measure(ctx.root, [process.execPath, bin, ...c.args], c.source, runs);
    results.set(`${c.args.join(' ')}|${c.source}`, timing);
    const cpu = timing.cpuMs === undefined ? '' : ` | ${timing.cpuMs.toFixed(0)}`;
    rows.push(`| ${c.label} | ${c.source ? 'sources through tsx (`MILKIT_SOURCE=1`, the old bin)' : 'compiled `dist/`'} | ${timing.medianMs.toFixed(0)} | ${timing.minMs.toFixed(0)}${cpu} |`);
  }
  const nodeCpu = node.cpuMs === undefined ? '' : ` | ${node.cpuMs.toFixed(0)}`;
  const help = results.get('--help|false') as Timing;
  const helpSource = results.get('--help|true') as Timing;
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
      `**\`milkit --help\` from the compiled package: ${help.medianMs.toFixed(0)} ms median (${(helpSource.medianMs / help.medianMs).toFixed(1)}× faster than the sources through tsx, ${helpSource.medianMs.toFixed(0)} ms). Target ≤ ${TARGET_MS} ms: ${help.medianMs <= TARGET_MS ? 'met' : 'not met'}.**`,
      '',
      'Where the time goes: `--help` builds the whole commander program, and every command module imports its engine, config and tracking code at load time, which pulls in tfjs (the row above) and zod. Reaching the target means command modules that register their options without importing what their actions need (dynamic `import()` inside the action); `--version` alone is answered by the bin before any of that loads.',
      '',
      'Command: `npm run bench -- coldstart` (`BENCH_QUICK=1`: 3 runs per row).',
    ].join('\n'),
  };
}
