// The memory budget end to end: a cv whose bags exceed runtime.memoryLimit stops before computing them with one
// error naming the aggregator, N, the estimate and the limit (exit 7); under a sufficient limit the same run trains.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { QUICKSTART, TINY, runCli, tempDir } from '../e2e/helpers.js';

describe('memory budget in a run', () => {
  it('refuses bags over the limit before compute and trains them under it', async () => {
    const cwd = await tempDir('milkit-memory-');
    const common = ['cv', QUICKSTART, ...TINY, 'tracking.enabled=false', 'eval.bootstrap=0', 'runtime.memoryCheckFrom=8', `output.dir=${path.join(cwd, 'out')}`];
    const over = await runCli([...common, 'runtime.memoryLimit=1KB'], cwd);
    expect(over.code, over.err).toBe(7);
    expect(over.err).toContain('memory-budget-exceeded');
    expect(over.err).toMatch(/a training step of \S+ on N = \d+ instances needs about/);
    expect(over.err).toContain('runtime.memoryLimit');
    expect(over.err).toContain('data.maxInstances');
    expect(over.err).not.toMatch(/\n\s+at /); // no stack trace without --debug
    const under = await runCli([...common, 'runtime.memoryLimit=2GB', '--force'], cwd);
    expect(under.code, under.err).toBe(0);
  });
});
