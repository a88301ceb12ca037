// The composition root: real services by default, and every one replaceable — here through the CLI's main(),
// the way the CLI builds it once per process.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtinManifest } from '../../plugins/index.js';
import { main } from '../../src/core/cli/main.js';
import { silentLogger } from '../../src/core/logger.js';
import { createServices, nodeFileSystem, systemClock, type FileSystem, type Services } from '../../src/core/services.js';
import type { MetricPoint, StartRunSpec, Tracker } from '../../src/registry/index.js';
import { QUICKSTART, TINY, tempDir } from '../e2e/helpers.js';

async function cli(args: string[], cwd: string, services: Partial<Omit<Services, 'manifest' | 'logger'>>): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const previous = process.exitCode;
  process.exitCode = undefined;
  const code = await main(args, { manifest: builtinManifest(), cwd, env: {}, services, io: { out: (t) => out.push(t), err: (t) => err.push(t), stdoutIsTTY: false } });
  process.exitCode = previous;
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** A tracker that keeps everything in memory. */
class RecordingTracker implements Tracker {
  readonly runs: Array<StartRunSpec & { id: string; status?: string }> = [];
  readonly metrics: MetricPoint[] = [];
  async startRun(spec: StartRunSpec): Promise<string> {
    const id = `run-${this.runs.length}`;
    this.runs.push({ ...spec, id });
    return id;
  }
  async logParams(): Promise<void> {}
  async logMetrics(_runId: string, metrics: readonly MetricPoint[]): Promise<void> {
    this.metrics.push(...metrics);
  }
  async setTags(): Promise<void> {}
  async logArtifact(): Promise<void> {}
  async endRun(runId: string, status: string): Promise<void> {
    const run = this.runs.find((r) => r.id === runId);
    if (run) run.status = status;
  }
  async flush(): Promise<void> {}
}

describe('createServices', () => {
  it('wires the real services, and takes any of them from overrides', () => {
    const manifest = builtinManifest();
    const real = createServices({ manifest, logger: silentLogger });
    expect(real.fs).toBe(nodeFileSystem);
    expect(real.clock).toBe(systemClock);
    expect(real.createRegistry().names('tracker')).toEqual(['mlflow-file', 'mlflow-rest']);
    expect(real.createRegistry()).not.toBe(real.createRegistry());
    const clock = { now: () => 42 };
    expect(createServices({ manifest, logger: silentLogger }, { clock }).clock.now()).toBe(42);
  });

  it('runs the CLI with a tracker swapped in through the root: no local store is written', async () => {
    const cwd = await tempDir();
    const tracker = new RecordingTracker();
    const sections: unknown[] = [];
    const result = await cli(['run', QUICKSTART, ...TINY], cwd, {
      createTracker: async (section) => {
        sections.push(section);
        return tracker;
      },
    });
    expect(result.code, result.err).toBe(0);
    expect(sections).toHaveLength(1);
    expect(tracker.runs.map((r) => [r.runName.replace(/-[0-9a-f]{8}$/, '-<hash>'), r.status])).toEqual([['quickstart-<hash>', 'FINISHED'], ['fold-0', 'FINISHED'], ['fold-1', 'FINISHED']]);
    expect(tracker.metrics.some((m) => m.key === 'train/loss')).toBe(true);
    // Preflight probed (created) the store folder; nothing was written into it.
    expect(readdirSync(path.join(cwd, 'mlruns'))).toEqual([]);
  });

  it('runs the CLI on a full disk (ENOSPC injected through the root): one error naming the folder, nothing tracked', async () => {
    const cwd = await tempDir();
    let trackers = 0;
    const fullDisk: FileSystem = {
      ...nodeFileSystem,
      writeFile: async (file) => {
        throw Object.assign(new Error(`ENOSPC: no space left on device, write '${file}'`), { code: 'ENOSPC' });
      },
    };
    const result = await cli(['cv', QUICKSTART, ...TINY], cwd, {
      fs: fullDisk,
      createTracker: async () => {
        trackers += 1;
        return new RecordingTracker();
      },
    });
    expect(result.code).toBe(2);
    expect(result.err).toContain('error [preflight-failed]: 2 problems in');
    expect(result.err).toContain(`output.dir: cannot write to ${path.join(cwd, 'outputs', 'quickstart')}`);
    expect(result.err).toContain(`tracking.uri: cannot write to ${path.join(cwd, 'mlruns')}: the disk is full (ENOSPC)`);
    expect(trackers).toBe(0);
  });
});
