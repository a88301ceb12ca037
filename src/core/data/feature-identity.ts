// What a feature file says about how it was made: the HDF5 root attributes (and those of its `coords` dataset,
// where CLAM keeps patch_size and patch_level) of a CLAM/TRIDENT/`milkit extract` h5 file. `milkit predict`
// compares the extractor attributes of a new cohort with the training cohort's, so features of another encoder
// are refused even at equal width (docs/predict.md#checks-before-any-compute).
import { existsSync } from 'node:fs';
import path from 'node:path';

/** Attribute name → value as text (numbers and arrays JSON-encoded). */
export type FeatureFileAttributes = Readonly<Record<string, string>>;

export interface FeatureFileIdentity {
  readonly file: string;
  /** Root attributes. */
  readonly root: FeatureFileAttributes;
  /** Attributes of the `coords` dataset (CLAM: patch_size, patch_level), when it exists. */
  readonly coords: FeatureFileAttributes;
}

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'bigint') return value.toString();
  if (ArrayBuffer.isView(value)) return JSON.stringify(Array.from(value as unknown as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? Number(v) : v)));
  return JSON.stringify(value);
}

function attributesOf(attrs: Readonly<Record<string, { value: unknown }>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, attribute] of Object.entries(attrs)) {
    try {
      out[name] = text(attribute.value);
    } catch {
      // An attribute of a type h5wasm cannot decode says nothing we could compare.
    }
  }
  return out;
}

/** The attributes of an h5 feature file; undefined for other formats or files that cannot be opened. */
export async function readFeatureFileIdentity(file: string): Promise<FeatureFileIdentity | undefined> {
  if (path.extname(file).toLowerCase() !== '.h5' || !existsSync(file)) return undefined;
  const h5 = (await import('h5wasm/node')).default;
  await h5.ready;
  let f: InstanceType<typeof h5.File>;
  try {
    f = new h5.File(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const root = attributesOf(f.attrs as unknown as Record<string, { value: unknown }>);
    const coordsNode = f.keys().includes('coords') ? f.get('coords') : undefined;
    const coords = coordsNode && 'attrs' in coordsNode ? attributesOf(coordsNode.attrs as unknown as Record<string, { value: unknown }>) : {};
    return { file, root, coords };
  } finally {
    f.close();
  }
}

/** Attributes that name the feature extractor (encoder name, weights, input size, normalisation). */
export function extractorAttributes(identity: FeatureFileIdentity): Record<string, string> {
  return Object.fromEntries(Object.entries(identity.root).filter(([name]) => /extractor|encoder|backbone/i.test(name)));
}

/** Extractor attributes both files have and that differ: `[name, a, b]`. */
export function extractorDifferences(a: FeatureFileIdentity, b: FeatureFileIdentity): Array<readonly [string, string, string]> {
  const left = extractorAttributes(a);
  const right = extractorAttributes(b);
  return Object.keys(left).filter((name) => name in right && left[name] !== right[name]).map((name) => [name, left[name] as string, right[name] as string] as const);
}

/** Level-0 patch size recorded by CLAM/TRIDENT (`coords` attrs patch_size at patch_level 0, or with a downsample) or at the root. */
export function recordedPatchSize(identity: FeatureFileIdentity): number | undefined {
  const size = Number(identity.coords.patch_size ?? identity.root.patch_size_level0 ?? identity.root.patch_size);
  if (!Number.isFinite(size) || size <= 0) return undefined;
  const level = Number(identity.coords.patch_level ?? 0);
  const downsample = Number(identity.coords.downsample ?? identity.root.downsample);
  if (identity.root.patch_size_level0 !== undefined) return size;
  if (Number.isFinite(downsample) && downsample > 0) return size * downsample;
  // Level downsamples differ by scanner (2× or 4× per level), so a level > 0 without its downsample stays unknown.
  return Number.isFinite(level) && level > 0 ? undefined : size;
}
