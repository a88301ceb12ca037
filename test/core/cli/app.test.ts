import { describe, expect, it } from 'vitest';
import { loadActionCode } from '../../../src/core/cli/app.js';
import { MilkitError } from '../../../src/core/errors.js';

describe('loadActionCode', () => {
  it('returns what the loader gives', async () => {
    await expect(loadActionCode('run', async () => ({ answer: 42 }))).resolves.toEqual({ answer: 42 });
  });

  it('reports a module that fails to load as the command failing to load, keeping the cause', async () => {
    const cause = new Error("Cannot find module '../../engine/run.js'");
    const error = await loadActionCode('runs list', () => Promise.reject(cause)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MilkitError);
    expect(error).toMatchObject({ code: 'command-unavailable', message: 'the "runs list" command failed to load.', exitCode: 1, cause });
    expect((error as MilkitError).hint).toContain('--debug');
  });
});
