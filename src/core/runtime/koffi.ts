// The part of koffi (the FFI package) milkit uses, typed once for every native binding (OpenBLAS, OpenSlide), and
// its loading: the package is imported on first use so that machines without a binding never pay for it.

export interface KoffiFunction {
  (...args: unknown[]): unknown;
}

export interface KoffiLibrary {
  func(definition: string): KoffiFunction;
}

export interface KoffiModule {
  load(path: string): KoffiLibrary;
  decode(value: unknown, offset: number, type: string): unknown;
  sizeof(type: string): number;
}

/** koffi's module object, whichever way the package exposes it to ESM (default export or namespace). */
export async function importKoffi(): Promise<KoffiModule> {
  const imported = (await import('koffi')) as { default?: KoffiModule } & Partial<KoffiModule>;
  return imported.default ?? (imported as KoffiModule);
}
