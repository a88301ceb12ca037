// Runs the tracker contract over every built-in tracker, golden case required. Each gets a fresh store read back
// without milkit's tracking code: mlflow-file a temp mlruns folder parsed by test/helpers/mlruns-parser.ts,
// mlflow-rest an in-process fake MLflow server (test/helpers/fake-mlflow-server.ts) inspected directly.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { trackerContract, type StoredRun, type TrackerHarness } from '../../src/testing/contracts/index.js';
import { FakeMlflowServer } from '../helpers/fake-mlflow-server.js';
import { parseMlruns } from '../helpers/mlruns-parser.js';
import { tempWorkspace } from '../helpers/tracking-kit.js';
import { builtinDefinitions, goldenDirOf } from './builtins.js';

function fileHarness(): TrackerHarness {
  const cwd = tempWorkspace('milkit-tracker-contract-');
  return {
    options: { root: 'mlruns' },
    cwd,
    readRun: async (runId) => {
      for (const experiment of parseMlruns(path.join(cwd, 'mlruns'))) {
        const run = experiment.runs.find((r) => r.runId === runId);
        if (!run) continue;
        const metrics = Object.fromEntries(Object.entries(run.metrics).map(([key, points]) => [key, points.map(({ step, value, timestamp }) => ({ step, value, timestamp }))]));
        return { experimentName: experiment.name, runName: String(run.meta['run_name'] ?? run.tags['mlflow.runName'] ?? ''), status: run.status, params: run.params, tags: run.tags, metrics, artifacts: run.artifacts } satisfies StoredRun;
      }
      return undefined;
    },
    close: async () => rmSync(cwd, { recursive: true, force: true }),
  };
}

async function restHarness(): Promise<TrackerHarness> {
  const server = await new FakeMlflowServer().start();
  return {
    options: { uri: server.uri, retries: 0 },
    cwd: process.cwd(),
    readRun: async (runId) => {
      const run = server.runs.get(runId);
      if (!run) return undefined;
      const metrics: Record<string, Array<{ step: number; value: number; timestamp: number }>> = {};
      for (const { key, step, value, timestamp } of run.metrics) (metrics[key] ??= []).push({ step, value, timestamp });
      const marker = `/${runId}/artifacts/`;
      const artifacts = [...server.artifacts.keys()].filter((k) => k.includes(marker)).map((k) => k.slice(k.indexOf(marker) + marker.length));
      return {
        experimentName: server.experiments.get(run.experimentId)?.name ?? '',
        runName: run.runName,
        status: run.status,
        params: Object.fromEntries(run.params),
        tags: Object.fromEntries(run.tags),
        metrics,
        artifacts,
      } satisfies StoredRun;
    },
    close: () => server.stop(),
  };
}

const HARNESSES: Readonly<Record<string, () => Promise<TrackerHarness>>> = {
  'mlflow-file': async () => fileHarness(),
  'mlflow-rest': restHarness,
};

trackerContract(await builtinDefinitions('tracker'), {
  goldenDir: goldenDirOf('tracker'),
  requireGolden: true,
  harnessFor: (name) => {
    const make = HARNESSES[name];
    if (!make) throw new Error(`tracker/${name}: add a store harness to test/contracts/tracker.contract.test.ts`);
    return make();
  },
});
