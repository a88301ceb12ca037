// Runs the strategy contract over every registered strategy, golden cases required (each built-in ships
// plugins/strategies/<name>.golden.json, written by test/reference/goldens_strategies.py).
import { strategyContract } from '../../src/testing/contracts/index.js';
import type { PluginKind } from '../../src/registry/index.js';
import { builtinRegistry, goldenDirOf } from './builtins.js';

const registry = builtinRegistry();
const kind = 'strategy' as PluginKind;
const definitions = registry.kinds().includes(kind) ? await registry.list(kind) : [];
if (definitions.length === 0) console.warn('\n*** strategy contract SKIPPED: no plugin of kind "strategy" is registered ***\n');

strategyContract(definitions, { registry, goldenDir: goldenDirOf(kind), requireGolden: true });
