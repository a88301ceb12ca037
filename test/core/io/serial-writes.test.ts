// Concurrent writes of one record through serialWrites: a slow first write cannot land over a later one, every write
// sees the state as it is when it runs, and one failed write does not stop the writes queued behind it.
import { mkdtemp, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { serialWrites } from '../../../src/core/io/serial-writes.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('serialWrites', () => {
  it('the newest state is on disk after concurrent writes whose first one is the slowest', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'milkit-serial-')), 'list.csv');
    const state = { rows: ['pending', 'pending'] };
    let calls = 0;
    // temp + rename, like writeFileDurably; the first write dawdles between taking the state and renaming.
    const writeList = async (): Promise<void> => {
      const text = state.rows.join(',');
      const delay = calls === 0 ? 60 : 0;
      const temp = `${file}.${calls}.tmp`;
      calls += 1;
      await writeFile(temp, text);
      await sleep(delay);
      await rename(temp, file);
    };
    const save = serialWrites(writeList);
    state.rows[0] = 'done';
    const first = save();
    state.rows[1] = 'done';
    const second = save();
    await Promise.all([first, second]);
    expect(await readFile(file, 'utf8')).toBe('done,done');
    // The same race without the queue: the older list lands last (what the extract run saw once).
    state.rows = ['done', 'pending'];
    calls = 0;
    const older = writeList();
    state.rows = ['done', 'done'];
    await Promise.all([older, writeList()]);
    expect(await readFile(file, 'utf8')).toBe('done,pending');
  });

  it('a failed write rejects its caller only; the next write still runs', async () => {
    const log: string[] = [];
    let fail = true;
    const save = serialWrites(async () => {
      if (fail) {
        fail = false;
        throw new Error('disk full');
      }
      log.push('written');
    });
    const failed = save();
    const next = save();
    await expect(failed).rejects.toThrow('disk full');
    await expect(next).resolves.toBeUndefined();
    expect(log).toEqual(['written']);
  });
});
