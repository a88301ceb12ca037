// The package as users get it, away from this repository: `npm pack` (its `prepare` builds dist/), the tarball
// installed into an empty folder (dependencies from the npm cache) running the quickstart, and a plugin package
// outside the repository that depends on milkit by path, type-checks against the published declarations and
// runs its own aggregator and loss through `milkit run`. Slow (an npm install): everything lives in this file.
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, TINY } from '../e2e/helpers.js';

// An npm install and several CLI processes: 3–5.5 min measured on a shared 2-core machine at load 12–19.
const SLOW = 600_000;
const { version } = JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as { version: string };

/** The environment of a user's shell: the CLI runs the compiled package, not the sources the tests use. */
function userEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.MILKIT_SOURCE;
  delete env.NODE_OPTIONS;
  delete env.MLFLOW_TRACKING_URI;
  return env;
}

function inFolder(cwd: string) {
  return { cwd, env: userEnv(), extendEnv: false, reject: false, all: true } as const;
}

describe('the published package', () => {
  const temps: string[] = [];
  let tarball = '';

  beforeAll(async () => {
    const packDir = await mkdtemp(path.join(tmpdir(), 'milkit-pack-'));
    temps.push(packDir);
    const pack = await execa('npm', ['pack', '--pack-destination', packDir, '--no-audit', '--no-fund'], inFolder(REPO));
    expect(pack.exitCode, pack.all).toBe(0);
    const files = (await readdir(packDir)).filter((f) => f.endsWith('.tgz'));
    expect(files).toEqual([`milkit-${version}.tgz`]);
    tarball = path.join(packDir, files[0] as string);
  }, SLOW);

  afterAll(async () => {
    await Promise.all(temps.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  // Independent, and mostly waiting on npm and child processes: run side by side.
  it.concurrent('installs from the tarball into an empty folder and runs the quickstart there', async ({ expect }) => {
    const app = await mkdtemp(path.join(tmpdir(), 'milkit-app-'));
    temps.push(app);
    // As the README tells users: the installing project denies onnxruntime-node's NuGet postinstall itself (a
    // dependency's own allowScripts does not apply to the project that installs it).
    await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'lab', private: true, type: 'module', allowScripts: { 'onnxruntime-node': false } }));
    const install = await execa('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], inFolder(app));
    expect(install.exitCode, install.all).toBe(0);

    // Compiled code, the bin and the examples ship; sources and tests do not.
    const installed = path.join(app, 'node_modules', 'milkit');
    for (const shipped of ['bin/milkit.mjs', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/nn/index.js', 'dist/src/testing/index.js', 'dist/plugins/aggregators/abmil.js', 'experiments/quickstart.yaml']) {
      expect(existsSync(path.join(installed, shipped)), shipped).toBe(true);
    }
    for (const absent of ['src', 'test', 'plugins']) expect(existsSync(path.join(installed, absent)), absent).toBe(false);

    const versionRun = await execa('npx', ['--no-install', 'milkit', '--version'], inFolder(app));
    expect(versionRun.stdout.trim()).toBe(version);

    // The three entry points resolve by name from the user's folder, to the compiled files.
    const probe = await execa(process.execPath, ['--input-type=module', '-e', [
      "const { definePlugin, z } = await import('milkit');",
      "const { Linear, tf } = await import('milkit/nn');",
      "console.log(JSON.stringify({ entries: ['milkit', 'milkit/nn', 'milkit/testing'].map((s) => import.meta.resolve(s)), definePlugin: typeof definePlugin, z: typeof z.object, Linear: typeof Linear, tf: typeof tf.matMul }));",
    ].join('\n')], inFolder(app));
    expect(probe.exitCode, probe.all).toBe(0);
    const probed = JSON.parse(probe.stdout) as { entries: string[]; definePlugin: string; z: string; Linear: string; tf: string };
    expect(probed.entries.map((url) => url.slice(url.indexOf('/node_modules/')))).toEqual([
      '/node_modules/milkit/dist/src/index.js', '/node_modules/milkit/dist/src/nn/index.js', '/node_modules/milkit/dist/src/testing/index.js',
    ]);
    expect([probed.definePlugin, probed.z, probed.Linear, probed.tf]).toEqual(['function', 'function', 'function', 'function']);

    // The README's first command, on a copy of the shipped quickstart, shrunk to seconds.
    await cp(path.join(installed, 'experiments'), path.join(app, 'experiments'), { recursive: true });
    const run = await execa('npx', ['--no-install', 'milkit', 'run', 'experiments/quickstart.yaml', ...TINY, 'output.dir=outputs'], inFolder(app));
    expect(run.exitCode, run.all).toBe(0);
    expect(run.stdout).toMatch(/summary over 2 fold\(s\)/);
    const runDir = run.stdout.match(/^outputs: (.+)$/m)?.[1];
    expect(runDir?.startsWith(path.join(app, 'outputs'))).toBe(true);
    const summary = JSON.parse(await readFile(path.join(runDir as string, 'summary.json'), 'utf8')) as { folds: Array<{ ok: boolean }>; summary: { auc?: { n: number; mean: number } } };
    expect(summary.folds.map((fold) => fold.ok)).toEqual([true, true]);
    expect(summary.summary.auc?.n).toBe(2);
    expect(summary.summary.auc?.mean).toBeGreaterThanOrEqual(0);

    // Sweep workers (`milkit worker --serve`) start from the same compiled bin: there are no sources here.
    const sweep = await execa('npx', ['--no-install', 'milkit', 'sweep', 'experiments/quickstart.yaml', ...TINY.filter((o) => !o.startsWith('train.epochs=')), 'train.epochs=1', 'output.dir=outputs', 'model/aggregator=mean-pool,max-pool', '--workers', '1'], inFolder(app));
    expect(sweep.exitCode, sweep.all).toBe(0);
    expect(sweep.stdout).toMatch(/\| mean-pool \| 2\/2 \|/);
    expect(sweep.stdout).toMatch(/\| max-pool \| 2\/2 \|/);
    expect(sweep.stdout).toMatch(/2 cells, 4 jobs: 0 already finished, 4 finished now, 0 failed/);
  }, SLOW);

  it.concurrent('runs an aggregator and a loss from a plugin package outside the repository through its config', async ({ expect }) => {
    const pkg = await mkdtemp(path.join(tmpdir(), 'acme-milkit-'));
    temps.push(pkg);
    await writeFile(path.join(pkg, 'package.json'), JSON.stringify({ name: 'acme-milkit', private: true, type: 'module', dependencies: { milkit: `file:${REPO}` } }, null, 2));
    // What `npm install` makes of a file: dependency: a link to the folder, and its bin.
    await mkdir(path.join(pkg, 'node_modules', '.bin'), { recursive: true });
    await symlink(REPO, path.join(pkg, 'node_modules', 'milkit'), 'dir');
    await symlink('../milkit/bin/milkit.mjs', path.join(pkg, 'node_modules', '.bin', 'milkit'));
    // Only the public entry points: options through milkit's zod, tensors through milkit's tfjs.
    await writeFile(path.join(pkg, 'plugins.ts'), `
import { definePlugin, Module, z, type Aggregator, type AggregatorOutput, type Bag, type Loss, type LossTarget, type ModelContext, type ModelOutput } from 'milkit';
import { Linear, tf } from 'milkit/nn';

const SumPoolOptions = z.strictObject({ width: z.int().positive().default(8).describe('E: embedding width') });

class SumPool extends Module implements Aggregator {
  readonly embeddingDim: number;
  private readonly fc: Linear;
  constructor(options: z.output<typeof SumPoolOptions>, ctx: ModelContext) {
    super();
    this.embeddingDim = options.width;
    this.fc = this.addModule('fc', new Linear(ctx.inputDim, options.width, ctx.rng));
  }
  forward(bag: Bag): AggregatorOutput {
    return tf.tidy(() => ({ embedding: tf.sum(tf.relu(this.fc.forward(bag.features)), 0, true) as tf.Tensor2D }));
  }
}

const ScaledCeOptions = z.strictObject({ scale: z.number().min(0).default(1).describe('factor on the cross-entropy') });

class ScaledCrossEntropy implements Loss {
  constructor(private readonly scale: number) {}
  compute(output: ModelOutput, target: LossTarget): Record<string, tf.Scalar> {
    return { '': tf.tidy(() => tf.mul(tf.neg(tf.sum(tf.mul(tf.oneHot([target.label], target.numClasses).toFloat(), tf.logSoftmax(output.logits)))), this.scale) as tf.Scalar) };
  }
}

export default {
  meta: { namespace: 'acme' },
  plugins: [
    definePlugin({ kind: 'aggregator', name: 'acme:sum-pool', summary: 'ReLU projection then sum', options: SumPoolOptions, capabilities: { permutationInvariant: true }, create: (options, ctx) => new SumPool(options, ctx) }),
    definePlugin({ kind: 'loss', name: 'acme:scaled-ce', summary: 'cross-entropy times a factor', options: ScaledCeOptions, capabilities: { requires: [] }, create: (options) => new ScaledCrossEntropy(options.scale) }),
  ],
};
`);
    await writeFile(path.join(pkg, 'tsconfig.json'), JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, exactOptionalPropertyTypes: true, noEmit: true, skipLibCheck: true, types: [] }, files: ['plugins.ts'] }));
    await writeFile(path.join(pkg, 'exp.yaml'), [
      'name: acme',
      'plugins: [./plugins.ts]',
      'data:',
      '  dataset: { name: synthetic-camelyon }',
      'model:',
      "  aggregator: { name: 'acme:sum-pool', width: 6 }",
      '  losses:',
      "    ce: { name: 'acme:scaled-ce', scale: 0 }",
      'split: { mode: kfold, folds: 2 }',
      '',
    ].join('\n'));

    // The plugin type-checks against the published declarations (dist/**/*.d.ts), found by package name.
    const typecheck = await execa(process.execPath, [path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], inFolder(pkg));
    expect(typecheck.exitCode, typecheck.all).toBe(0);

    const described = await execa('npx', ['--no-install', 'milkit', 'plugins', 'describe', 'acme:scaled-ce', '--config', 'exp.yaml'], inFolder(pkg));
    expect(described.exitCode, described.all).toBe(0);
    expect(described.stdout).toMatch(/^loss\/acme:scaled-ce: cross-entropy times a factor\n.*\[\.\/plugins\.ts\]\n {6}scale: number ≥0 = 1 — factor on the cross-entropy/);

    const run = await execa('npx', ['--no-install', 'milkit', 'run', 'exp.yaml', ...TINY, 'output.dir=outputs'], inFolder(pkg));
    expect(run.exitCode, run.all).toBe(0);
    // scale 0: the user's loss is what training minimises, so every logged loss is exactly zero.
    const losses = [...run.stderr.matchAll(/train\/loss (\S+)/g)].map((m) => Number(m[1]));
    expect(losses.length).toBeGreaterThan(0);
    expect(losses.every((value) => value === 0)).toBe(true);
    const runDir = run.stdout.match(/^outputs: (.+)$/m)?.[1] as string;
    expect(await readFile(path.join(runDir, 'config.resolved.yaml'), 'utf8')).toMatch(/name: acme:sum-pool\n\s+width: 6/);
  }, SLOW);
});
