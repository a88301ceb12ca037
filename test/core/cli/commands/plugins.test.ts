// `milkit --version`, `milkit plugins <kind>` (singular or plural) and `milkit plugins describe <name>`, including
// user plugins named in an experiment's `plugins:` (--config).
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PLUGIN_KINDS, type PluginKind } from '../../../../src/registry/index.js';
import { parseKind, pluralOfKind } from '../../../../src/core/cli/commands/plugins.js';
import { REPO, runCli, tempDir } from '../../../e2e/helpers.js';

describe('milkit --version', () => {
  it("prints package.json's version and exits 0", async () => {
    const { version } = JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    const run = await runCli(['--version'], REPO);
    expect(run.code).toBe(0);
    expect(run.out.trim()).toBe(version);
  });
});

describe('plugin kinds as typed', () => {
  it('accepts every kind singular and plural, in any case', () => {
    expect(['aggregator', 'loss', 'prescreener', 'metric'].map((kind) => pluralOfKind(kind as PluginKind))).toEqual(['aggregators', 'losses', 'prescreeners', 'metrics']);
    expect(pluralOfKind('strategy' as PluginKind)).toBe('strategies');
    for (const kind of PLUGIN_KINDS) {
      expect(parseKind(kind)).toBe(kind);
      expect(parseKind(pluralOfKind(kind).toUpperCase())).toBe(kind);
    }
    expect(parseKind('aggregatorz')).toBeUndefined();
  });
});

describe('milkit plugins', () => {
  it('lists the same plugins for a kind singular and plural', async () => {
    const singular = await runCli(['plugins', 'aggregator', '--brief'], REPO);
    const plural = await runCli(['plugins', 'aggregators', '--brief'], REPO);
    expect(singular.code).toBe(0);
    expect(plural.out).toBe(singular.out);
    expect(singular.out).toMatch(/^aggregator \(\d+\)\n {2}abmil {14}attention-based MIL pooling/);
  });

  it('rejects an unknown kind with a suggestion', async () => {
    const run = await runCli(['plugins', 'losss'], REPO);
    expect(run.code).toBe(3);
    expect(run.err).toMatch(/unknown plugin kind "losss"\. Did you mean "loss"\?/);
  });

  it('describes a plugin by bare name, by id and by plural-kind id alike', async () => {
    const bare = await runCli(['plugins', 'describe', 'abmil'], REPO);
    expect(bare.code).toBe(0);
    expect(bare.out.split('\n')[0]).toBe('aggregator/abmil: attention-based MIL pooling (gated or plain attention over a ReLU projection)');
    expect(bare.out).toMatch(/paper: Ilse, Tomczak, Welling/);
    expect(bare.out).toMatch(/capabilities: \{/);
    expect((await runCli(['plugins', 'describe', 'aggregator/abmil'], REPO)).out).toBe(bare.out);
    expect((await runCli(['plugins', 'describe', 'aggregators/abmil'], REPO)).out).toBe(bare.out);
  });

  it('suggests the closest name for an unknown plugin', async () => {
    const run = await runCli(['plugins', 'describe', 'abmill'], REPO);
    expect(run.code).toBe(3);
    expect(run.err).toMatch(/no plugin is named "abmill"\. Did you mean "abmil"\?/);
  });

  describe("with an experiment's plugins: list (--config)", () => {
    let dir: string;
    beforeAll(async () => {
      dir = await tempDir('milkit-plugins-cli-');
      await mkdir(path.join(dir, 'my-plugins'));
      const milkitUrl = new URL('../../../../src/index.ts', import.meta.url).href;
      // One aggregator and one loss, both called acme:twin, to show that a bare name must then be qualified.
      await writeFile(path.join(dir, 'my-plugins/index.ts'), `
        import { z } from 'zod';
        import { definePlugin } from '${milkitUrl}';
        const none = z.strictObject({ scale: z.number().default(2).describe('how much') });
        export default { meta: { namespace: 'acme' }, plugins: [
          definePlugin({ kind: 'aggregator', name: 'acme:twin', summary: 'an aggregator twin', options: none, capabilities: {}, create: () => { throw new Error('not built here'); } }),
          definePlugin({ kind: 'loss', name: 'acme:twin', summary: 'a loss twin', options: none, capabilities: {}, create: () => { throw new Error('not built here'); } }),
          definePlugin({ kind: 'loss', name: 'acme:only-loss', summary: 'the one loss', options: none, capabilities: {}, create: () => { throw new Error('not built here'); } }),
        ] };
      `);
      await writeFile(path.join(dir, 'exp.yaml'), ['name: mine', 'plugins: [./my-plugins/index.ts]', 'data:', '  dataset: { name: synthetic-camelyon }', ''].join('\n'));
    });

    it('describes a user plugin only when its experiment is given', async () => {
      const without = await runCli(['plugins', 'describe', 'acme:only-loss'], dir);
      expect(without.code).toBe(3);
      expect(without.err).toMatch(/no plugin is named "acme:only-loss"/);
      const withConfig = await runCli(['plugins', 'describe', 'acme:only-loss', '--config', 'exp.yaml'], dir);
      expect(withConfig.err).toBe('');
      expect(withConfig.code).toBe(0);
      expect(withConfig.out).toMatch(/^loss\/acme:only-loss: the one loss\n {2}acme:only-loss {5}the one loss {2}\[\.\/my-plugins\/index\.ts\]\n {6}scale: number = 2 — how much/);
      // --config before the subcommand works too.
      expect((await runCli(['plugins', '--config', 'exp.yaml', 'describe', 'acme:only-loss'], dir)).out).toBe(withConfig.out);
    });

    it('lists user plugins next to the built-ins of their kind', async () => {
      const run = await runCli(['plugins', 'losses', '--brief', '--config', 'exp.yaml'], dir);
      expect(run.code).toBe(0);
      expect(run.out).toMatch(/\n {2}acme:only-loss {5}the one loss {2}\[\.\/my-plugins\/index\.ts\]/);
      expect(run.out).toMatch(/\n {2}cross-entropy /);
    });

    it('asks for the kind when a bare name matches plugins of two kinds', async () => {
      const run = await runCli(['plugins', 'describe', 'acme:twin', '--config', 'exp.yaml'], dir);
      expect(run.code).toBe(3);
      expect(run.err).toMatch(/"acme:twin" names 2 plugins: aggregator\/acme:twin, loss\/acme:twin\. Give the kind too/);
      const qualified = await runCli(['plugins', 'describe', 'loss/acme:twin', '--config', 'exp.yaml'], dir);
      expect(qualified.out.split('\n')[0]).toBe('loss/acme:twin: a loss twin');
    });
  });
});
