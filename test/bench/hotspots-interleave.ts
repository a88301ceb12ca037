// Interleaved before/after micro-bench of the per-aggregator hot spots: runs test/bench/hotspots-step.ts from two
// source trees (HOTSPOTS_BEFORE = a checkout of the commit before the changes, with this script's step file copied
// in; the current tree is "after") in alternating processes, round after round with the order rotated, and prints
// a markdown table of the median over rounds of each round's median step, plus one tf.profile'd step per tree
// for a few cells. Usage: HOTSPOTS_BEFORE=/path/to/old/tree node --conditions=milkit-source --import tsx test/bench/hotspots-interleave.ts
// Environment: HOTSPOTS_ROUNDS (default 3), HOTSPOTS_PROFILES ("dmin-cka@1000,mean-pool@8000,max-pool-proj@8000").
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './shared.js';

interface TreeConfig {
  readonly label: string;
  readonly root: string;
  readonly env: Record<string, string>;
}

const here = dirname(fileURLToPath(import.meta.url));
const afterRoot = join(here, '..', '..');
const beforeRoot = process.env.HOTSPOTS_BEFORE;
if (!beforeRoot) throw new Error('set HOTSPOTS_BEFORE to a checkout of the tree before the hot-spot changes');
const configs: TreeConfig[] = [
  { label: 'before', root: beforeRoot, env: {} },
  { label: 'after', root: afterRoot, env: {} },
  { label: 'after + fused Adam', root: afterRoot, env: { HOTSPOTS_FUSED: '1' } },
];
const rounds = Number(process.env.HOTSPOTS_ROUNDS ?? 3);

function runStep(config: TreeConfig, extra: Record<string, string>): string {
  const result = spawnSync(process.execPath, ['--conditions=milkit-source', '--import', 'tsx', join(config.root, 'test', 'bench', 'hotspots-step.ts')], {
    cwd: config.root,
    env: { ...process.env, ...config.env, ...extra },
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  if (result.status !== 0) throw new Error(`${config.label}: exit ${result.status}\n${result.stderr.slice(-2000)}`);
  const line = result.stdout.trim().split('\n').at(-1);
  if (!line) throw new Error(`${config.label}: no output`);
  return line;
}

const profiles: string[] = [];
for (const cell of (process.env.HOTSPOTS_PROFILES ?? 'dmin-cka@1000,mean-pool@8000,max-pool-proj@8000').split(',').filter(Boolean)) {
  const [model, n] = cell.split('@') as [string, string];
  for (const config of configs.slice(0, 2)) {
    const reply = JSON.parse(runStep(config, { HOTSPOTS_MODELS: model, HOTSPOTS_SIZES: n, HOTSPOTS_PROFILE: cell })) as { totalMs: number; calls: number; top: string[] };
    profiles.push(`- ${cell}, ${config.label}: ${reply.totalMs.toFixed(0)} ms in ${reply.calls} kernel calls; top: ${reply.top.slice(0, 8).join(', ')}`);
    process.stderr.write(`${profiles.at(-1)}\n`);
  }
}

const perRound = new Map<string, Map<string, number[]>>(); // cell → config → round medians
const loads: number[] = [];
for (let round = 0; round < rounds; round += 1) {
  loads.push(loadavg()[0] ?? 0);
  const order = configs.map((_, i) => configs[(i + round) % configs.length] as TreeConfig);
  for (const config of order) {
    const reply = JSON.parse(runStep(config, {})) as Record<string, number[]>;
    for (const [cell, times] of Object.entries(reply)) {
      const byConfig = perRound.get(cell) ?? new Map<string, number[]>();
      byConfig.set(config.label, [...(byConfig.get(config.label) ?? []), median(times)]);
      perRound.set(cell, byConfig);
    }
    process.stderr.write(`round ${round + 1} ${config.label}: ${JSON.stringify(reply)}\n`);
  }
}

const rows = [...perRound].map(([cell, byConfig]) => {
  const med = (label: string): number => median(byConfig.get(label) ?? []);
  const [model, n] = cell.split('@') as [string, string];
  const before = med('before');
  const cells = configs.map((c) => med(c.label).toFixed(1));
  const ratio = (label: string): string => `${(before / med(label)).toFixed(2)}×`;
  return `| ${model} | ${Number(n).toLocaleString('en-US')} | ${cells.join(' | ')} | ${ratio('after')} | ${ratio('after + fused Adam')} | ${configs.map((c) => (byConfig.get(c.label) ?? []).map((v) => v.toFixed(0)).join('/')).join(' · ')} |`;
});
process.stdout.write(
  [
    `| model | N | ${configs.map((c) => `${c.label} ms`).join(' | ')} | speed-up (after) | speed-up (after + fused) | per-round medians (${configs.map((c) => c.label).join(' · ')}) |`,
    `|---|---|${configs.map(() => '---|').join('')}---|---|---|`,
    ...rows,
    '',
    `Rounds: ${rounds}; 1-minute load average at the start of each round: ${loads.map((l) => l.toFixed(1)).join(', ')}.`,
    '',
    ...profiles,
    '',
  ].join('\n'),
);
