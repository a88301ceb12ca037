// The import boundary check (.dependency-cruiser.cjs) passes on the repository and fails, naming the rule, when
// a forbidden import is injected into a temporary copy of src/ and plugins/.
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DEPCRUISE = path.join(REPO, 'node_modules', '.bin', 'depcruise');

function cruise(root: string) {
  return execa(DEPCRUISE, ['src', 'plugins', '--config', '.dependency-cruiser.cjs'], { cwd: root, reject: false, all: true });
}

async function prepend(file: string, line: string): Promise<void> {
  await writeFile(file, `${line}\n${await readFile(file, 'utf8')}`);
}

describe('import boundary (dependency-cruiser)', () => {
  const temps: string[] = [];
  afterAll(async () => {
    await Promise.all(temps.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it('passes on the repository', async () => {
    const result = await cruise(REPO);
    expect(result.all).toMatch(/no dependency violations found/);
    expect(result.exitCode).toBe(0);
  });

  it('fails on each kind of forbidden import, naming the rule and the file', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'milkit-boundary-'));
    temps.push(root);
    for (const entry of ['src', 'plugins', 'package.json', 'tsconfig.json', '.dependency-cruiser.cjs']) {
      await cp(path.join(REPO, entry), path.join(root, entry), { recursive: true });
    }
    await symlink(path.join(REPO, 'node_modules'), path.join(root, 'node_modules'), 'dir');
    const control = await cruise(root);
    expect(control.exitCode, control.all).toBe(0);

    // A plugin reaching into src/ by path, even for something the public entry points export.
    await prepend(path.join(root, 'plugins/aggregators/mean-pool.ts'), "import { Linear } from '../../src/core/nn/layers.js';");
    // Core importing a built-in plugin.
    await prepend(path.join(root, 'src/core/engine/trainer.ts'), "import '../../../plugins/metrics/auc.js';");
    // A loss borrowing the aggregators' family helper.
    await prepend(path.join(root, 'plugins/losses/cross-entropy.ts'), "import '../aggregators/_shared/clam.js';");
    // A deep import the package exports do not allow.
    await prepend(path.join(root, 'plugins/classifiers/linear.ts'), "import 'milkit/src/core/nn/layers.js';");
    // Shipped code depending on a test helper (test/ is not in the package).
    await prepend(path.join(root, 'src/testing/index.ts'), "import '../../test/helpers/registry.js';");
    await mkdir(path.join(root, 'test/helpers'), { recursive: true });
    await cp(path.join(REPO, 'test/helpers/registry.ts'), path.join(root, 'test/helpers/registry.ts'));
    // A run-time cycle: errors.ts ← logger.ts (below) and logger.ts ← errors.ts.
    await prepend(path.join(root, 'src/core/errors.ts'), "import './logger.js';");
    await prepend(path.join(root, 'src/core/logger.ts'), "import './errors.js';");

    const result = await cruise(root);
    expect(result.exitCode).not.toBe(0);
    expect(result.all).toMatch(/plugins-use-public-entry-points: plugins\/aggregators\/mean-pool\.ts → src\/core\/nn\/layers\.ts/);
    expect(result.all).toMatch(/plugins-import-entry-points-by-name: plugins\/aggregators\/mean-pool\.ts/);
    expect(result.all).toMatch(/core-imports-no-plugins: src\/core\/engine\/trainer\.ts → plugins\/metrics\/auc\.ts/);
    expect(result.all).toMatch(/plugins-share-only-within-their-family: plugins\/losses\/cross-entropy\.ts → plugins\/aggregators\/_shared\/clam\.ts/);
    expect(result.all).toMatch(/no-unresolvable-imports: plugins\/classifiers\/linear\.ts → milkit\/src\/core\/nn\/layers\.js/);
    expect(result.all).toMatch(/shipped-code-imports-no-tests: src\/testing\/index\.ts → test\/helpers\/registry\.ts/);
    expect(result.all).toMatch(/no-cycles: src\/core\/(errors|logger)\.ts/);
  });
});
