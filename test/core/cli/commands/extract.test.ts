// `milkit extract` input errors, in-process: each is one message naming what to fix, with its exit code, and
// nothing is written to the output folder.
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../../e2e/helpers.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('milkit extract: bad input', () => {
  it('refuses an onnx extractor without a model, and a missing model file, before writing anything (exit 2)', async () => {
    const cwd = await tempDir('milkit-extract-cli-');
    dirs.push(cwd);
    await mkdir(path.join(cwd, 'slides'));
    await writeFile(path.join(cwd, 'slides', 'a.svs'), 'not read: the extractor fails first');
    const unset = await runCli(['extract', 'slides', '--out', 'out', '--extractor', 'onnx'], cwd);
    expect(unset.code).toBe(2);
    expect(unset.err).toMatch(/extractor\.model is not set/);
    const missing = await runCli(['extract', 'slides', '--out', 'out', '--extractor', 'onnx', '--extractor-set', 'model=encoders/none.onnx'], cwd);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/extractor\.model: model file not found/);
    expect(missing.err).toContain(path.join(cwd, 'encoders/none.onnx'));
    expect(existsSync(path.join(cwd, 'out', 'process_list.csv'))).toBe(false);
  });

  it('names a missing input and a slide table without the needed columns', async () => {
    const cwd = await tempDir('milkit-extract-cli-');
    dirs.push(cwd);
    const missing = await runCli(['extract', 'nowhere', '--out', 'out'], cwd);
    expect([missing.code, missing.err]).toEqual([2, expect.stringMatching(/slide file, folder or slide table not found/)]);
    await writeFile(path.join(cwd, 'table.csv'), 'slide_id,label\na,1\n');
    const table = await runCli(['extract', 'table.csv', '--out', 'out'], cwd);
    expect([table.code, table.err]).toEqual([2, expect.stringMatching(/needs a slide_id column and a slide_file/)]);
  });
});
