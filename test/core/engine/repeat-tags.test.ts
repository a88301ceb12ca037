// Repeated CV in MLflow: every fold run of a split with repeats carries its repeat and its fold within the repeat
// as tags (milkit.repeat, milkit.fold_in_repeat), so runs can be grouped by repeat; without repeats neither tag is set.
import { describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { main } from '../../../src/core/cli/main.js';
import type { StartRunSpec, Tracker } from '../../../src/registry/index.js';
import { QUICKSTART, TINY, tempDir } from '../../e2e/helpers.js';

class RecordingTracker implements Tracker {
  readonly runs: StartRunSpec[] = [];
  async startRun(spec: StartRunSpec): Promise<string> {
    this.runs.push(spec);
    return `run-${this.runs.length - 1}`;
  }
  async logParams(): Promise<void> {}
  async logMetrics(): Promise<void> {}
  async setTags(): Promise<void> {}
  async logArtifact(): Promise<void> {}
  async endRun(): Promise<void> {}
  async flush(): Promise<void> {}
}

async function foldTags(overrides: string[]): Promise<Array<Record<string, string>>> {
  const cwd = await tempDir('milkit-repeat-tags-');
  const tracker = new RecordingTracker();
  const previous = process.exitCode;
  const err: string[] = [];
  const code = await main(['cv', QUICKSTART, ...TINY, 'eval.bootstrap=0', ...overrides], {
    manifest: builtinManifest(), cwd, env: {}, services: { createTracker: async () => tracker },
    io: { out: () => undefined, err: (t) => err.push(t), stdoutIsTTY: false },
  });
  process.exitCode = previous;
  expect(code, err.join('\n')).toBe(0);
  return tracker.runs.filter((r) => r.tags?.['milkit.level'] === 'fold').map((r) => ({ ...r.tags }));
}

describe('fold runs of repeated cross-validation', () => {
  it('are tagged with their repeat and their fold within the repeat', async () => {
    const tags = await foldTags(['split.repeats=2']);
    expect(tags.map((t) => [t['milkit.fold'], t['milkit.repeat'], t['milkit.fold_in_repeat']])).toEqual([
      ['0', '0', '0'], ['1', '0', '1'], ['2', '1', '0'], ['3', '1', '1'],
    ]);
  });

  it('carry no repeat tags without repeats', async () => {
    const tags = await foldTags([]);
    expect(tags.map((t) => t['milkit.fold'])).toEqual(['0', '1']);
    for (const t of tags) {
      expect(t).not.toHaveProperty('milkit.repeat');
      expect(t).not.toHaveProperty('milkit.fold_in_repeat');
    }
  });
});
