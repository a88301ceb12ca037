// Plain-data helpers for config trees (JSON-like objects): key paths, deep merge with Hydra/OmegaConf
// semantics (mappings merge, lists and scalars are replaced), cloning, equality and canonical JSON.

export type KeySegment = string | number;
export type ConfigMapping = Record<string, unknown>;

export function isMapping(value: unknown): value is ConfigMapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Sets an own enumerable property, also for the key "__proto__" (plain assignment would change the prototype). */
export function setOwn(target: ConfigMapping, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/** `model.aggregator.dropout`, `train.optimizer.betas.0` — the dotted form used in messages and provenance. */
export function joinKey(path: readonly KeySegment[]): string {
  return path.map(String).join('.');
}

export function splitKey(key: string): string[] {
  return key === '' ? [] : key.split('.');
}

/** Deep copy of JSON-like data (functions and class instances are not expected in configs). */
export function cloneTree<T>(value: T): T {
  if (Array.isArray(value)) return value.map((item) => cloneTree(item)) as T;
  if (isMapping(value)) {
    const out: ConfigMapping = {};
    for (const [key, item] of Object.entries(value)) setOwn(out, key, cloneTree(item));
    return out as T;
  }
  return value;
}

/** Index into a list, counting from the end for negative numbers; undefined when out of range. */
function listIndex(list: readonly unknown[], segment: KeySegment): number | undefined {
  const index = typeof segment === 'number' ? segment : /^-?\d+$/.test(segment) ? Number(segment) : Number.NaN;
  if (!Number.isInteger(index)) return undefined;
  const resolved = index < 0 ? list.length + index : index;
  return resolved >= 0 && resolved < list.length ? resolved : undefined;
}

export type Lookup = { readonly found: true; readonly value: unknown } | { readonly found: false; readonly missingAt: number };

/** Follows `path` from `root`; says how far it got when a segment is missing. */
export function lookup(root: unknown, path: readonly KeySegment[]): Lookup {
  let current = root;
  for (let i = 0; i < path.length; i += 1) {
    const segment = path[i] as KeySegment;
    if (Array.isArray(current)) {
      const index = listIndex(current, segment);
      if (index === undefined) return { found: false, missingAt: i };
      current = current[index];
    } else if (isMapping(current) && Object.hasOwn(current, String(segment))) {
      current = current[String(segment)];
    } else {
      return { found: false, missingAt: i };
    }
  }
  return { found: true, value: current };
}

/** Why a value cannot be placed at a path (a scalar or list in the way), or undefined when it can. */
export function blockerOf(root: ConfigMapping, path: readonly KeySegment[]): string | undefined {
  let current: unknown = root;
  for (let i = 0; i < path.length - 1; i += 1) {
    const segment = path[i] as KeySegment;
    let next: unknown;
    if (Array.isArray(current)) {
      const index = listIndex(current, segment);
      if (index === undefined) return `${joinKey(path.slice(0, i + 1))} is out of range (the list has ${current.length} items)`;
      next = current[index];
    } else if (isMapping(current)) {
      next = current[String(segment)];
      if (next === undefined || next === null) return undefined;
    } else {
      return `${joinKey(path.slice(0, i))} is ${describeKind(current)}, not a mapping`;
    }
    current = next;
  }
  if (!isMapping(current) && !Array.isArray(current) && current !== undefined && current !== null) {
    return `${joinKey(path.slice(0, -1))} is ${describeKind(current)}, not a mapping`;
  }
  if (Array.isArray(current) && listIndex(current, path[path.length - 1] as KeySegment) === undefined) {
    return `${joinKey(path)} is out of range (the list has ${current.length} items)`;
  }
  return undefined;
}

function describeKind(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  return `a ${typeof value} (${JSON.stringify(value)})`;
}

/** Sets `value` at `path`, creating mappings on the way; with `mergeMappings`, a mapping merges into an existing one. */
export function setAt(root: ConfigMapping, path: readonly KeySegment[], value: unknown, mergeMappings: boolean): void {
  if (path.length === 0) throw new Error('setAt needs a non-empty path');
  let current: ConfigMapping | unknown[] = root;
  for (let i = 0; i < path.length - 1; i += 1) {
    const segment = path[i] as KeySegment;
    if (Array.isArray(current)) {
      const index = listIndex(current, segment) as number;
      current = current[index] as ConfigMapping | unknown[];
      continue;
    }
    const key = String(segment);
    const next: unknown = current[key];
    if (!isMapping(next) && !Array.isArray(next)) setOwn(current, key, {});
    current = current[key] as ConfigMapping | unknown[];
  }
  const last = path[path.length - 1] as KeySegment;
  if (Array.isArray(current)) {
    const index = listIndex(current, last) as number;
    current[index] = mergeMappings && isMapping(current[index]) && isMapping(value) ? mergeInto(current[index] as ConfigMapping, value) : cloneTree(value);
    return;
  }
  const existing = current[String(last)];
  setOwn(current, String(last), mergeMappings && isMapping(existing) && isMapping(value) ? mergeInto(existing, value) : cloneTree(value));
}

/** Removes the key (or list item) at `path`; returns false when it was not there. */
export function deleteAt(root: ConfigMapping, path: readonly KeySegment[]): boolean {
  const parent = lookup(root, path.slice(0, -1));
  if (!parent.found) return false;
  const last = path[path.length - 1] as KeySegment;
  if (Array.isArray(parent.value)) {
    const index = listIndex(parent.value, last);
    if (index === undefined) return false;
    parent.value.splice(index, 1);
    return true;
  }
  if (isMapping(parent.value) && Object.hasOwn(parent.value, String(last))) {
    delete parent.value[String(last)];
    return true;
  }
  return false;
}

/** OmegaConf-style merge of `source` into `target` (mutates and returns target): mappings merge, the rest is replaced. */
export function mergeInto(target: ConfigMapping, source: ConfigMapping): ConfigMapping {
  for (const [key, value] of Object.entries(source)) {
    const existing = target[key];
    setOwn(target, key, isMapping(existing) && isMapping(value) ? mergeInto(existing, value) : cloneTree(value));
  }
  return target;
}

/** Wraps `content` so it sits at the dotted `packagePath` ('' = the root). */
export function placeAt(packagePath: string, content: ConfigMapping): ConfigMapping {
  let placed: ConfigMapping = content;
  for (const segment of splitKey(packagePath).reverse()) {
    const wrapper: ConfigMapping = {};
    setOwn(wrapper, segment, placed);
    placed = wrapper;
  }
  return placed;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  if (isMapping(a) && isMapping(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && deepEqual(a[key], b[key]));
  }
  return false;
}

/** JSON with object keys sorted at every level (undefined members dropped), so equal configs hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (isMapping(value)) {
    const out: ConfigMapping = {};
    for (const key of Object.keys(value).sort()) {
      if (value[key] !== undefined) setOwn(out, key, sortKeys(value[key]));
    }
    return out;
  }
  return value;
}

/** Freezes every mapping and list reachable from `value`. */
export function deepFreeze<T>(value: T): T {
  if (Array.isArray(value) || isMapping(value)) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}

/** Every key path in a tree (mappings and list items), parents before children. */
export function* walkPaths(value: unknown, prefix: KeySegment[] = []): Generator<KeySegment[]> {
  if (isMapping(value)) {
    for (const [key, item] of Object.entries(value)) {
      const path = [...prefix, key];
      yield path;
      yield* walkPaths(item, path);
    }
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i += 1) {
      const path = [...prefix, i];
      yield path;
      yield* walkPaths(value[i], path);
    }
  }
}
