// System tags: name, user, source, and git commit/branch/repo read from .git (loose refs, packed refs,
// detached HEAD, worktree pointer files), with credentials stripped from the remote URL.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readGitInfo, stripUrlCredentials, systemTags } from '../../../src/core/tracking/index.js';
import { tempWorkspace } from '../../helpers/tracking-kit.js';

const SHA = '0123456789abcdef0123456789abcdef01234567';
const OTHER = 'fedcba9876543210fedcba9876543210fedcba98';
let dir: string;
beforeEach(() => {
  dir = tempWorkspace('milkit-git-');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function gitRepo(root: string, head: string): string {
  const git = path.join(root, '.git');
  mkdirSync(path.join(git, 'refs', 'heads'), { recursive: true });
  writeFileSync(path.join(git, 'HEAD'), `${head}\n`);
  writeFileSync(path.join(git, 'config'), '[core]\n\tbare = false\n[remote "origin"]\n\turl = https://user:ghp_secret123@github.com/lab/mil.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n');
  return git;
}

describe('systemTags', () => {
  it('reads commit, branch and a credential-free repo URL from a loose ref, from a subfolder', () => {
    const git = gitRepo(dir, 'ref: refs/heads/main');
    writeFileSync(path.join(git, 'refs', 'heads', 'main'), `${SHA}\n`);
    const sub = path.join(dir, 'experiments', 'a');
    mkdirSync(sub, { recursive: true });
    const tags = systemTags({ runName: 'r1', cwd: sub, note: 'overrides: train.lr=1e-4' });
    expect(tags).toMatchObject({
      'mlflow.runName': 'r1',
      'mlflow.source.type': 'LOCAL',
      'mlflow.source.git.commit': SHA,
      'mlflow.source.git.branch': 'main',
      'mlflow.source.git.repoURL': 'https://github.com/lab/mil.git',
      'mlflow.note.content': 'overrides: train.lr=1e-4',
    });
    expect(tags['mlflow.user']).toBe(os.userInfo().username);
    expect(JSON.stringify(tags)).not.toContain('ghp_secret123');
  });

  it('reads packed refs, detached heads and worktree pointers; nothing outside a checkout', () => {
    const git = gitRepo(dir, 'ref: refs/heads/dev');
    writeFileSync(path.join(git, 'packed-refs'), `# pack-refs with: peeled fully-peeled sorted\n${OTHER} refs/heads/dev\n`);
    expect(readGitInfo(dir)).toMatchObject({ commit: OTHER, branch: 'dev' });
    writeFileSync(path.join(git, 'HEAD'), `${SHA}\n`);
    expect(readGitInfo(dir)).toEqual({ commit: SHA, repoUrl: 'https://github.com/lab/mil.git' });
    const worktree = path.join(dir, 'wt');
    const wtGit = path.join(git, 'worktrees', 'wt');
    mkdirSync(worktree, { recursive: true });
    mkdirSync(wtGit, { recursive: true });
    writeFileSync(path.join(worktree, '.git'), `gitdir: ${wtGit}\n`);
    writeFileSync(path.join(wtGit, 'HEAD'), 'ref: refs/heads/dev\n');
    writeFileSync(path.join(wtGit, 'commondir'), '../..\n');
    expect(readGitInfo(worktree)).toMatchObject({ commit: OTHER, branch: 'dev' });
    const outside = tempWorkspace('milkit-nogit-');
    try {
      const tags = systemTags({ runName: 'r', cwd: outside });
      expect(Object.keys(tags).sort()).toEqual(['mlflow.runName', 'mlflow.source.name', 'mlflow.source.type', 'mlflow.user']);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('strips credentials from URLs', () => {
    expect(stripUrlCredentials('https://u:p@host:5000/x')).toBe('https://host:5000/x');
    expect(stripUrlCredentials('http://host')).toBe('http://host');
    expect(stripUrlCredentials('git@github.com:lab/mil.git')).toBe('git@github.com:lab/mil.git');
  });
});
