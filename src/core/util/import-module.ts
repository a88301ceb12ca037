// Imports a user's module (config, project settings, plugin) by file URL. TypeScript files need a loader:
// running the sources, tsx (CLI) or vite (vitest) is already in place; running the compiled package, tsx is
// registered on the first .ts import only, so commands that load no TypeScript (`--help`, YAML experiments with
// built-in plugins) do not pay for it (it doubles a cold `milkit --help`, BENCHMARKS.md).

const RUNNING_COMPILED = import.meta.url.endsWith('.js');
let typeScriptLoader: Promise<void> | undefined;

function needsTypeScriptLoader(url: string): boolean {
  return RUNNING_COMPILED && /\.(?:[cm]?ts|tsx)$/.test(new URL(url).pathname);
}

/** `import(url)`, registering the TypeScript loader first when the file is TypeScript and none is active. */
export async function importModule(url: string): Promise<Record<string, unknown>> {
  if (needsTypeScriptLoader(url)) {
    typeScriptLoader ??= import('tsx/esm/api').then(({ register }) => {
      register();
    });
    await typeScriptLoader;
  }
  return (await import(url)) as Record<string, unknown>;
}
