// The run-folder lock's takeover rules, process by process: a lock whose taker was killed between taking it and
// recording itself still names that taker through its claim, so a resume on this host takes it over at once
// instead of refusing until the lock goes stale; a live claimant or holder is never displaced.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockRunFolder } from '../../../src/core/engine/run-folder.js';
import { consoleLogger } from '../../../src/core/logger.js';

function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

async function folder(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'milkit-lock-unit-'));
}

function capture(): { lines: string[]; logger: ReturnType<typeof consoleLogger> } {
  const lines: string[] = [];
  return { lines, logger: consoleLogger('warn', (line) => lines.push(line)) };
}

const claim = (pid: number, host = hostname()): string => JSON.stringify({ pid, host, startedAt: new Date().toISOString(), command: 'cv' });

describe('run-folder lock takeover', () => {
  it('takes over a lock whose taker died before recording itself, naming it from its claim', async () => {
    const dir = await folder();
    const pid = deadPid();
    await mkdir(path.join(dir, '.milkit.lock'));
    await writeFile(path.join(dir, `.milkit.lock.claim.${hostname()}.${pid}.json`), claim(pid));
    const { lines, logger } = capture();
    const release = await lockRunFolder(dir, logger, 'cv resumed');
    expect(lines.join('\n')).toContain(`was left by pid ${pid}, which is gone; taking it over`);
    const holder = JSON.parse(await readFile(path.join(dir, '.milkit.lock.json'), 'utf8')) as { pid: number; command: string };
    expect(holder).toMatchObject({ pid: process.pid, command: 'cv resumed' });
    // The dead claim is cleared and this process's claim became the holder record.
    expect((await readdir(dir)).filter((name) => name.includes('claim'))).toEqual([]);
    await release();
    expect(existsSync(path.join(dir, '.milkit.lock'))).toBe(false);
    expect(existsSync(path.join(dir, '.milkit.lock.json'))).toBe(false);
  });

  it('takes over a lock that names nobody at all (a taker from before claims were written)', async () => {
    const dir = await folder();
    await mkdir(path.join(dir, '.milkit.lock'));
    const { lines, logger } = capture();
    const release = await lockRunFolder(dir, logger);
    expect(lines.join('\n')).toContain('was left by a process, which is gone');
    await release();
  });

  it('refuses while a live claimant of this host holds the lock without a holder record yet, naming its pid', async () => {
    const dir = await folder();
    await mkdir(path.join(dir, '.milkit.lock'));
    await writeFile(path.join(dir, `.milkit.lock.claim.${hostname()}.${process.ppid}.json`), claim(process.ppid));
    const { logger } = capture();
    await expect(lockRunFolder(dir, logger)).rejects.toThrow(`is in use by pid ${process.ppid} on ${hostname()}`);
    // The refused attempt leaves no claim of its own behind.
    expect((await readdir(dir)).filter((name) => name.includes(`.${process.pid}.json`))).toEqual([]);
  });

  it('refuses a claimant of another host until its lock goes stale', async () => {
    const dir = await folder();
    await mkdir(path.join(dir, '.milkit.lock'));
    await writeFile(path.join(dir, '.milkit.lock.claim.elsewhere.1.json'), claim(1, 'elsewhere'));
    const { logger } = capture();
    await expect(lockRunFolder(dir, logger)).rejects.toThrow('is in use by pid 1 on elsewhere');
  });

  it('a second lock in this process on a held folder is refused, and release keeps a later holder record', async () => {
    const dir = await folder();
    const { logger } = capture();
    const release = await lockRunFolder(dir, logger, 'first');
    await expect(lockRunFolder(dir, logger, 'second')).rejects.toThrow(`is in use by pid ${process.pid}`);
    await release();
    const again = await lockRunFolder(dir, logger, 'third');
    expect(JSON.parse(await readFile(path.join(dir, '.milkit.lock.json'), 'utf8'))).toMatchObject({ command: 'third' });
    await again();
  });
});
