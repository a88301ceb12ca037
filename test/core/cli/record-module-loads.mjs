// `node --import ./record-module-loads.mjs …`: appends every module the process loads to the file named by
// MILKIT_RECORD_MODULES, one per line (file: URLs for ES modules, absolute paths for CommonJS `require`s), so a
// test can tell what a command loaded. ES modules are recorded at resolution, not loading, because tsx loads
// TypeScript files itself without passing them down the hook chain.
import { appendFileSync } from 'node:fs';
import Module, { register } from 'node:module';

const target = process.env.MILKIT_RECORD_MODULES;

if (target) {
  const hooks = `
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  appendFileSync(${JSON.stringify(target)}, resolved.url + '\\n');
  return resolved;
}
`;
  register(`data:text/javascript,${encodeURIComponent(hooks)}`, import.meta.url);

  // require() inside CommonJS packages (tfjs's node entry is CommonJS) does not pass the ES hooks in Node 20.
  const load = Module._load;
  Module._load = function recordingLoad(request, parent, isMain) {
    try {
      appendFileSync(target, `${Module._resolveFilename(request, parent, isMain)}\n`);
    } catch {
      // A request that does not resolve fails in the real load below, with Node's own message.
    }
    return load.apply(this, [request, parent, isMain]);
  };
}
