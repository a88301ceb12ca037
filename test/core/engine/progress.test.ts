import { describe, expect, it } from 'vitest';
import { createProgress, epochProgress, epochSummary, formatDuration, progressLogger, runProgress } from '../../../src/core/engine/progress.js';
import { MemoryLogger } from '../../../src/core/logger.js';

function capture(isTTY: boolean): { stream: { isTTY: boolean; columns: number; write(text: string): boolean }; text(): string } {
  const chunks: string[] = [];
  return { stream: { isTTY, columns: 120, write: (text: string) => chunks.push(text) > 0 }, text: () => chunks.join('') };
}

describe('progress', () => {
  it('formats durations as s, m+s and h+m', () => {
    expect([formatDuration(0), formatDuration(12.4), formatDuration(245), formatDuration(3720), formatDuration(Number.NaN)]).toEqual(['0s', '12s', '4m05s', '1h02m', '?']);
  });

  it('prints one plain line per update with elapsed time and an ETA from the mean pace', () => {
    const out = capture(false);
    let now = 1000;
    const progress = createProgress({ stream: out.stream, interactive: false, now: () => now });
    const bar = progress.bar('jobs', 4, 'jobs');
    now += 30_000;
    bar.increment('succeeded: a=1 · fold 0');
    now += 30_000;
    bar.increment();
    // 2 of 4 in 60 s: 30 s per job, 2 left → 1m00s.
    now += 60_000;
    bar.update(4, 'all done');
    expect(out.text().split('\n')).toEqual([
      '[jobs] 1/4 jobs 25% | elapsed 30s | eta 1m30s | succeeded: a=1 · fold 0',
      '[jobs] 2/4 jobs 50% | elapsed 1m00s | eta 1m00s',
      '[jobs] 4/4 jobs 100% | elapsed 2m00s | all done',
      '',
    ]);
  });

  it('throttles plain lines but always prints the last update', () => {
    const out = capture(false);
    let now = 0;
    const bar = createProgress({ stream: out.stream, interactive: false, now: () => now, minIntervalMs: 10_000 }).bar('epochs', 5, 'epochs');
    for (let i = 0; i < 5; i += 1) {
      now += 3000;
      bar.increment();
    }
    // Printed at 3 s (first), 15 s (the last) — 6, 9, 12 s fall inside the 10 s window after 3 s.
    expect(out.text().trim().split('\n').map((l) => l.split(' | ')[0])).toEqual(['[epochs] 1/5 epochs 20%', '[epochs] 5/5 epochs 100%']);
  });

  it('draws cli-progress bars with value, total and ETA on a terminal', () => {
    const out = capture(true);
    const progress = createProgress({ stream: out.stream, interactive: true });
    const bar = progress.bar('jobs', 12, 'jobs');
    bar.update(3, 'running');
    progress.stop();
    const text = out.text();
    expect(text).toContain('3/12 jobs');
    expect(text).toContain('25%');
    expect(text).toContain('ETA');
    expect(text).toContain('running');
    // Cursor hidden while drawing and shown again on stop.
    expect(text).toContain('\x1B[?25l');
    expect(text).toContain('\x1B[?25h');
  });

  it('routes logger lines through the progress display', () => {
    const out = capture(false);
    const progress = createProgress({ stream: out.stream, interactive: false });
    const base = new MemoryLogger();
    const logger = progressLogger(progress, base);
    logger.info('hello');
    logger.warn('careful');
    logger.debug('hidden detail');
    expect(out.text()).toBe('hello\nwarn: careful\n');
    expect(base.lines).toEqual([{ level: 'debug', message: 'hidden detail' }]);
  });

  it('turns trainer events into an epochs bar with the headline metrics (plain lines off a terminal)', () => {
    const logger = new MemoryLogger();
    const events = epochProgress({ fold: 2, stdoutIsTTY: false, logger });
    events.onEpochStart?.(0, 3);
    void events.onEpochEnd?.({ epoch: 0, lr: 1e-3, improved: true, metrics: { 'train/loss': 0.69312, 'val/loss': 0.7, 'val/auc': 0.5, other: 1 } });
    events.onEpochStart?.(1, 3);
    void events.onEpochEnd?.({ epoch: 1, lr: 1e-3, improved: false, metrics: { 'train/loss': 0.6, 'val/auc': null } });
    const lines = logger.lines.map((l) => l.message);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\[fold 2\] 1\/3 epochs 33% \| elapsed \d+s \| eta \d+s \| train\/loss 0\.6931 · val\/loss 0\.7000 · val\/auc 0\.5000 · best$/);
    expect(lines[1]).toMatch(/^\[fold 2\] 2\/3 epochs 66% \| .* \| train\/loss 0\.6000$/);
    expect(epochSummary({ epoch: 0, lr: 0, improved: false, metrics: {} })).toBe('');
  });

  it('starts a resumed fold\'s bar at the epoch it resumes from', () => {
    const logger = new MemoryLogger();
    const events = epochProgress({ fold: 0, stdoutIsTTY: false, logger });
    events.onEpochStart?.(3, 10);
    expect(logger.lines.map((l) => l.message)).toEqual([expect.stringMatching(/^\[fold 0\] 3\/10 epochs 30% \| .* \| resumed$/)]);
  });

  it('counts folds on a folds bar alongside each fold\'s epochs bar', () => {
    const out = capture(false);
    let now = 0;
    const progress = createProgress({ stream: out.stream, interactive: false, now: () => now });
    const run = runProgress({ folds: 2, stdoutIsTTY: false, logger: new MemoryLogger(), progress });
    const fold0 = run.forFold(0);
    fold0.onEpochStart?.(0, 1);
    now += 10_000;
    void fold0.onEpochEnd?.({ epoch: 0, lr: 0, improved: true, metrics: {} });
    run.foldDone(0, 'test/auc 0.9100');
    run.stop();
    expect(out.text().trim().split('\n')).toEqual([
      '[fold 0] 1/1 epochs 100% | elapsed 10s | best',
      '[folds] 1/2 folds 50% | elapsed 10s | eta 10s | fold 0 test/auc 0.9100',
    ]);
  });
});
