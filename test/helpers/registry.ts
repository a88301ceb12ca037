// A registry over the real built-in manifest, for tests (test code may import plugins; src/ may not).
import { builtinManifest } from '../../plugins/index.js';
import { Registry } from '../../src/registry/index.js';

export function builtinRegistry(): Registry {
  return new Registry(builtinManifest());
}
