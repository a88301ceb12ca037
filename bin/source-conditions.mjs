// Module-resolution hook for running milkit from its TypeScript sources (MILKIT_SOURCE=1): adds the
// `milkit-source` export condition, so `import ... from 'milkit'` in the built-in plugins (and in user plugins
// resolved through this package) reaches src/*.ts instead of the compiled dist/.
export async function resolve(specifier, context, nextResolve) {
  const conditions = context.conditions.includes('milkit-source') ? context.conditions : [...context.conditions, 'milkit-source'];
  return nextResolve(specifier, { ...context, conditions });
}
