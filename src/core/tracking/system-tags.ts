// MLflow's system tags for a run (docs/methods/mlflow.md#system-tags): name, user, source, git commit/branch/repo when the
// working directory is a git checkout (read from .git directly: no git binary needed), and the note.
import { existsSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MLFLOW_TAGS } from './tags.js';

export interface GitInfo {
  readonly commit: string;
  readonly branch?: string;
  /** `origin`'s URL without credentials. */
  readonly repoUrl?: string;
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** The git directory of the checkout containing `start` (a `.git` folder, or the `gitdir:` of a worktree file). */
function findGitDir(start: string): string | undefined {
  let dir = path.resolve(start);
  for (;;) {
    const candidate = path.join(dir, '.git');
    if (existsSync(candidate)) {
      if (statSync(candidate).isDirectory()) return candidate;
      const pointer = /^gitdir:\s*(.+)\s*$/m.exec(readText(candidate) ?? '');
      if (pointer?.[1]) return path.resolve(dir, pointer[1]);
      return undefined;
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function resolveRef(gitDir: string, commonDir: string, ref: string): string | undefined {
  for (const base of [gitDir, commonDir]) {
    const loose = readText(path.join(base, ref))?.trim();
    if (loose && /^[0-9a-f]{40,64}$/.test(loose)) return loose;
  }
  for (const line of (readText(path.join(commonDir, 'packed-refs')) ?? '').split('\n')) {
    const [sha, name] = line.trim().split(' ');
    if (name === ref && sha && /^[0-9a-f]{40,64}$/.test(sha)) return sha;
  }
  return undefined;
}

/** Removes `user:password@` from a remote URL, so a token in a clone URL never becomes a tag. */
export function stripUrlCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1');
}

/** Commit, branch and origin URL of the checkout containing `cwd`; undefined outside a checkout. */
export function readGitInfo(cwd: string): GitInfo | undefined {
  const gitDir = findGitDir(cwd);
  if (!gitDir) return undefined;
  const commonPointer = readText(path.join(gitDir, 'commondir'))?.trim();
  const commonDir = commonPointer ? path.resolve(gitDir, commonPointer) : gitDir;
  const head = readText(path.join(gitDir, 'HEAD'))?.trim();
  if (!head) return undefined;
  let commit: string | undefined;
  let branch: string | undefined;
  const symbolic = /^ref:\s*(\S+)$/.exec(head);
  if (symbolic?.[1]) {
    commit = resolveRef(gitDir, commonDir, symbolic[1]);
    branch = symbolic[1].replace(/^refs\/heads\//, '');
  } else if (/^[0-9a-f]{40,64}$/.test(head)) {
    commit = head;
  }
  if (!commit) return undefined;
  const config = readText(path.join(commonDir, 'config')) ?? '';
  const origin = /\[remote "origin"\][^[]*?\n\s*url\s*=\s*(\S+)/.exec(config)?.[1];
  return { commit, ...(branch ? { branch } : {}), ...(origin ? { repoUrl: stripUrlCredentials(origin) } : {}) };
}

function currentUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? process.env.LOGNAME ?? 'unknown';
  }
}

function sourceName(cwd: string): string {
  const script = process.argv[1];
  if (!script || /milkit(\.m?[jt]s)?$/.test(script)) return 'milkit';
  return path.relative(cwd, script) || script;
}

/** Standard system tags for a run (mlflow.runName, user, source, git commit/branch/repo when in a checkout, note). */
export function systemTags(opts: { runName: string; cwd: string; note?: string }): Record<string, string> {
  const tags: Record<string, string> = {
    [MLFLOW_TAGS.runName]: opts.runName,
    [MLFLOW_TAGS.user]: currentUser(),
    [MLFLOW_TAGS.sourceName]: sourceName(opts.cwd),
    [MLFLOW_TAGS.sourceType]: 'LOCAL',
  };
  const git = readGitInfo(opts.cwd);
  if (git) {
    tags[MLFLOW_TAGS.gitCommit] = git.commit;
    if (git.branch) tags[MLFLOW_TAGS.gitBranch] = git.branch;
    if (git.repoUrl) tags[MLFLOW_TAGS.gitRepoUrl] = git.repoUrl;
  }
  if (opts.note !== undefined && opts.note !== '') tags[MLFLOW_TAGS.note] = opts.note;
  return tags;
}
