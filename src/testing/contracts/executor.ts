// Executor contract: a batch of trivial jobs run by a scripted stand-in for `milkit worker` (both its one-job and
// its --serve protocol), checking one outcome per job in batch order, `succeeded` exactly when the result file
// exists, a failed job's own error message, `busy` for a job locked elsewhere, onDone once per job, and an empty
// batch. The golden case is the batch's actions and the outcomes every executor must report for them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import type { AnyPluginDefinition } from '../../registry/define-plugin.js';
import { WORKER_EXIT_BUSY, WORKER_REPORT_PREFIX, type Executor, type ExecutorBatch, type ExecutorContext, type ExecutorJob, type JobOutcome, type JobStatus } from '../../registry/contracts/executor.js';
import { readGolden, type GoldenFile, type GoldenReport } from './golden.js';
import { goldenPath, missingGolden, type SuiteOptions } from './shared.js';

/** What the scripted worker does with a job. */
export type ScriptedAction = 'ok' | 'fail' | 'busy';

export interface ExecutorGoldenCase {
  readonly actions: readonly ScriptedAction[];
}

export interface ExecutorGoldenExpected {
  readonly statuses: readonly JobStatus[];
  /** Substring each failed job's error must contain, by batch position. */
  readonly errors: Readonly<Record<string, string>>;
}

export type ExecutorGolden = GoldenFile<ExecutorGoldenCase, ExecutorGoldenExpected>;

/**
 * The scripted worker (plain Node ESM, written next to the manifest so no build step is involved):
 *   node worker.mjs --manifest M --index I [--blas-threads T]   one job, exit 0 / 1 / 75 (busy)
 *   node worker.mjs --manifest M --serve [--blas-threads T]     indices on stdin, one report line each on stderr
 * `ok` writes the result file, `fail` writes error.json with "job <i> diverged", `busy` does nothing.
 */
const WORKER_SOURCE = `import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
const PREFIX = ${JSON.stringify(WORKER_REPORT_PREFIX)};
const { values } = parseArgs({ options: { manifest: { type: 'string' }, index: { type: 'string' }, serve: { type: 'boolean' }, 'blas-threads': { type: 'string' } } });
const manifest = JSON.parse(readFileSync(values.manifest, 'utf8'));
const put = (file, text) => { mkdirSync(path.dirname(file), { recursive: true }); writeFileSync(file, text); };
function runJob(index) {
  const job = manifest.jobs[index];
  process.stdout.write('contract worker runs job ' + index + '\\n');
  if (job.action === 'fail') { put(job.errorPath, JSON.stringify({ message: 'job ' + index + ' diverged' })); return 'failed'; }
  if (job.action === 'busy') return 'busy';
  put(job.resultPath, JSON.stringify({ id: job.id, fold: 0, metrics: {}, secondsPerSlide: 0, epochs: 1 }));
  return 'succeeded';
}
if (values.serve) {
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === '') continue;
    const index = Number(line);
    const status = runJob(index);
    process.stderr.write(PREFIX + JSON.stringify({ index, status }) + '\\n');
    if (status === 'failed') process.exit(1);
  }
} else {
  const status = runJob(Number(values.index));
  process.exit(status === 'failed' ? 1 : status === 'busy' ? ${WORKER_EXIT_BUSY} : 0);
}
`;

/** Where and how an executor runs for the suite (e.g. a fake scheduler on PATH through `env`). */
export interface ExecutorHarness {
  readonly options: Readonly<Record<string, unknown>>;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly cores: number;
  close(): Promise<void>;
}

export function createExecutor(definition: AnyPluginDefinition, harness: ExecutorHarness): Executor {
  const ctx: ExecutorContext = { logger: silentLogger, cwd: harness.cwd, cores: harness.cores, env: harness.env };
  return (definition.create as (options: unknown, ctx: ExecutorContext) => Executor)(definition.options.parse(harness.options), ctx);
}

/** A batch whose job i does `actions[i]`, in a fresh state folder (removed by `cleanup`). */
export function scriptedBatch(actions: readonly ScriptedAction[], cwd: string): { batch: ExecutorBatch; cleanup: () => void } {
  const stateDir = mkdtempSync(join(tmpdir(), 'milkit-executor-contract-'));
  const jobs: ExecutorJob[] = actions.map((_, index) => ({
    index,
    id: `contract${index}`.padEnd(16, '0'),
    label: `contract job ${index}`,
    resultPath: join(stateDir, 'jobs', String(index), 'result.json'),
    errorPath: join(stateDir, 'jobs', String(index), 'error.json'),
    logPath: join(stateDir, 'jobs', String(index), 'worker.log'),
  }));
  const manifestPath = join(stateDir, 'manifest.json');
  writeFileSync(manifestPath, JSON.stringify({ jobs: jobs.map((job, i) => ({ ...job, action: actions[i] })) }));
  const workerPath = join(stateDir, 'contract-worker.mjs');
  writeFileSync(workerPath, WORKER_SOURCE);
  return {
    batch: { name: 'contract', stateDir, manifestPath, jobs, worker: { command: process.execPath, args: [workerPath] }, cwd },
    cleanup: () => rmSync(stateDir, { recursive: true, force: true }),
  };
}

/** Runs the golden batch and compares the outcomes; also checks onDone and the result-file rule. */
export async function checkExecutorGolden(definition: AnyPluginDefinition, golden: ExecutorGolden, harness: ExecutorHarness): Promise<GoldenReport> {
  const { batch, cleanup } = scriptedBatch(golden.case.actions, harness.cwd);
  const mismatches: string[] = [];
  try {
    const done: JobOutcome[] = [];
    const outcomes = await createExecutor(definition, harness).run(batch, { onDone: (o) => done.push(o) });
    const statuses = outcomes.map((o) => o.status);
    if (JSON.stringify(statuses) !== JSON.stringify(golden.expected.statuses)) mismatches.push(`statuses: ${JSON.stringify(statuses)}, expected ${JSON.stringify(golden.expected.statuses)}`);
    if (JSON.stringify(outcomes.map((o) => [o.index, o.id])) !== JSON.stringify(batch.jobs.map((j) => [j.index, j.id]))) mismatches.push('outcomes: not one per job in batch order');
    if (JSON.stringify(done.map((o) => o.index).sort((a, b) => a - b)) !== JSON.stringify(batch.jobs.map((j) => j.index))) mismatches.push(`onDone: called for [${done.map((o) => o.index).join(', ')}], expected once per job`);
    for (const [i, outcome] of outcomes.entries()) {
      const job = batch.jobs[i] as ExecutorJob;
      if ((outcome.status === 'succeeded') !== existsSync(job.resultPath)) mismatches.push(`job ${i}: status ${outcome.status} but the result file ${existsSync(job.resultPath) ? 'exists' : 'is missing'}`);
      const want = golden.expected.errors[String(i)];
      if (want !== undefined && !(outcome.error ?? '').includes(want)) mismatches.push(`job ${i}: error ${JSON.stringify(outcome.error)} does not contain ${JSON.stringify(want)}`);
    }
    return { plugin: `executor/${definition.name}`, mismatches };
  } finally {
    cleanup();
  }
}

export interface ExecutorSuiteOptions extends SuiteOptions {
  readonly harnessFor: (name: string) => Promise<ExecutorHarness>;
}

export function executorContract(definitions: readonly AnyPluginDefinition[], suite: ExecutorSuiteOptions): void {
  describe.each(definitions.map((d) => [d.name, d] as const))('executor/%s contract', (name, definition) => {
    const withHarness = async (body: (harness: ExecutorHarness) => Promise<void>): Promise<void> => {
      const harness = await suite.harnessFor(name);
      try {
        await body(harness);
      } finally {
        await harness.close();
      }
    };

    it('parses its defaults, and the parsed options survive a JSON round trip', () => {
      const parsed = definition.options.safeParse({});
      expect(parsed.success, 'options.parse({}) succeeds').toBe(true);
      expect(definition.options.parse(JSON.parse(JSON.stringify(parsed.data)))).toEqual(parsed.data);
    });

    it('reports at least one slot and returns nothing for an empty batch', async () => {
      await withHarness(async (harness) => {
        const executor = createExecutor(definition, harness);
        expect(executor.slots).toBeGreaterThanOrEqual(1);
        const { batch, cleanup } = scriptedBatch([], harness.cwd);
        expect(await executor.run(batch)).toEqual([]);
        cleanup();
      });
    });

    it('runs a batch of trivial jobs to success, one outcome per job in order', async () => {
      await withHarness(async (harness) => {
        const { batch, cleanup } = scriptedBatch(['ok', 'ok', 'ok'], harness.cwd);
        const outcomes = await createExecutor(definition, harness).run(batch);
        expect(outcomes.map((o) => [o.index, o.status])).toEqual([[0, 'succeeded'], [1, 'succeeded'], [2, 'succeeded']]);
        for (const job of batch.jobs) expect(existsSync(job.resultPath), `${job.label}: result written`).toBe(true);
        cleanup();
      });
    });

    const golden = goldenPath(suite, name);
    it.skipIf(!golden && !suite.requireGolden)('matches its golden case', async () => {
      if (!golden) throw new Error(missingGolden(suite, 'executor', name));
      await withHarness(async (harness) => {
        expect((await checkExecutorGolden(definition, readGolden<ExecutorGoldenCase, ExecutorGoldenExpected>(golden, 'executor'), harness)).mismatches, golden).toEqual([]);
      });
    });
  });
}
