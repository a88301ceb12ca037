// The import boundary (`npm run boundaries`; test/package/boundaries.test.ts runs it):
// core (src/) never imports the built-in plugins; a plugin imports only what a user's plugin could — the public
// entry points `milkit`, `milkit/nn`, `milkit/testing` by package name — plus helper files of its own family
// (plugins/<kind>/_shared/), npm packages and node builtins; no import cycles anywhere.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'core-imports-no-plugins',
      comment: 'src/ must not import plugins/: core learns about plugins only through the manifest the bin hands it.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^plugins/' },
    },
    {
      name: 'shipped-code-imports-no-tests',
      comment: 'test/ is not in the package: src/ and plugins/ (milkit/testing included) must not import from it.',
      severity: 'error',
      from: { path: '^(src|plugins)/' },
      to: { path: '^test/' },
    },
    {
      name: 'plugins-use-public-entry-points',
      comment: "A plugin imports the framework as 'milkit', 'milkit/nn' or 'milkit/testing', as a user's plugin would; files under src/ are not part of the package.",
      severity: 'error',
      from: { path: '^plugins/' },
      to: { path: '^src/', pathNot: '^src/(index|nn/index|testing/index)\\.ts$' },
    },
    {
      name: 'plugins-import-entry-points-by-name',
      comment: "The public entry points by package name ('milkit'), never by a relative path into src/ (which breaks once compiled or installed).",
      severity: 'error',
      from: { path: '^plugins/' },
      to: { path: '^src/', dependencyTypes: ['local'] },
    },
    {
      name: 'plugins-share-only-within-their-family',
      comment: 'A plugin file may import helper files of its own family (plugins/<kind>/_shared/) and nothing else under plugins/.',
      severity: 'error',
      from: { path: '^plugins/([^/]+)/' },
      to: { path: '^plugins/', pathNot: '^plugins/$1/_shared/' },
    },
    {
      name: 'no-unresolvable-imports',
      comment: 'An import that does not resolve (a deep path the package exports do not allow, a missing file or package).',
      severity: 'error',
      from: { path: '^(src|plugins)/' },
      to: { couldNotResolve: true },
    },
    {
      name: 'no-dev-dependencies-at-run-time',
      comment: 'Shipped code may not need a devDependency at run time (milkit/testing may import vitest, an optional peer).',
      severity: 'error',
      from: { path: '^(src|plugins)/', pathNot: '^src/testing/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-cycles',
      comment: 'No module may import itself through others at run time (a cycle of `import type` only is erased by the compiler).',
      severity: 'error',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      // The package's own name resolves to its sources, as for tsc and vitest.
      conditionNames: ['milkit-source', 'import', 'node', 'default'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'],
    },
    moduleSystems: ['es6', 'cjs'],
  },
};
