// Test helper: a single-node Slurm on localhost for the Slurm executor test (local-slurm.sh does the work).
// Never installs anything; when the daemons cannot start, `reason` says why so the test can skip loudly.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import lockfile from 'proper-lockfile';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'local-slurm.sh');

export interface LocalSlurm {
  /** Set when the cluster is not usable: the skip reason. */
  readonly reason?: string;
  /** Temporary folder with slurm.conf, state and daemon logs. */
  readonly dir: string;
  /** Environment for the client commands (SLURM_CONF). */
  readonly env: Readonly<Record<string, string>>;
  stop(): Promise<void>;
}

/**
 * One local cluster at a time on this machine: test files run in parallel, and two clusters starting together
 * could pick the same free port. The lock is held from start to stop (other files wait for it).
 */
async function clusterTurn(): Promise<() => Promise<void>> {
  const anchor = path.join(tmpdir(), 'milkit-local-slurm');
  return lockfile.lock(anchor, { realpath: false, stale: 60_000, update: 10_000, retries: { retries: 600, minTimeout: 1000, maxTimeout: 1000 } });
}

export async function startLocalSlurm(): Promise<LocalSlurm> {
  const release = await clusterTurn();
  const dir = await mkdtemp(path.join(tmpdir(), 'milkit-slurm-'));
  const stop = async (): Promise<void> => {
    await execa('bash', [script, 'stop', dir], { reject: false });
    await release().catch(() => undefined);
  };
  const started = await execa('bash', [script, 'start', dir], { reject: false, timeout: 60_000 });
  const out = String(started.stdout).trim();
  if (started.exitCode !== 0) {
    await stop();
    const reason = out.startsWith('skip: ') ? out.slice(6) : `local-slurm.sh start failed (exit ${String(started.exitCode)}): ${String(started.stderr).trim() || out}`;
    return { reason, dir, env: {}, stop };
  }
  return { dir, env: { SLURM_CONF: path.join(dir, 'slurm.conf') }, stop };
}
