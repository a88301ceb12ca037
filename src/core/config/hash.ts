// The config hash (docs/config.md, "The config hash"): sha256 of the canonical JSON of the resolved config with
// every value equal to its default removed, plus the hash-policy version. Leaving defaults out is what lets a
// milkit release add an option whose default keeps the old behaviour without changing any existing hash, so
// finished runs stay resumable and comparable; changing a default is a deliberate MILKIT_HASH_VERSION bump.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { PLUGIN_SLOTS } from './plugin-slots.js';
import { ExperimentSchema } from './schema.js';
import { canonicalJson, deepEqual, isMapping, type ConfigMapping } from './tree.js';
import { unwrap } from './zod-issues.js';

/**
 * Version of the hashing policy, hashed with the config. Bump it when a default changes meaning (a config that
 * omits the key would then train differently) or when this module hashes differently; every hash changes once.
 */
export const MILKIT_HASH_VERSION = 2;

/**
 * Top-level sections that say where results go, not what they are. They are left out of the config hash, so
 * moving the outputs or switching tracking off keeps run folders' hashes, sweep job ids and `--resume` valid.
 */
export const HASH_EXCLUDED_SECTIONS: readonly string[] = ['output', 'tracking'];

export interface HashSchemas {
  /** Schema of the experiment (tests pass an extended one to play a future release). */
  readonly experiment?: z.ZodType;
  /**
   * The options schema of the plugin in the slot at a dotted key (`model.aggregator`, `model.losses.ce`), so the
   * plugin's own defaults leave the hash too; undefined keeps every option of that slot.
   */
  pluginOptions(slotKey: string): z.ZodType | undefined;
}

/** Marks "this key has no default": a value there is always hashed. */
const NO_DEFAULT = Symbol('no default');
type Reference = unknown;

/** What the config hash covers: the config without the excluded sections and without default values. */
export function hashInput(config: Readonly<Record<string, unknown>>, schemas: HashSchemas): ConfigMapping {
  const experiment = schemas.experiment ?? ExperimentSchema;
  const kept: ConfigMapping = Object.fromEntries(Object.entries(config).filter(([key]) => !HASH_EXCLUDED_SECTIONS.includes(key)));
  return stripMapping(kept, experiment, NO_DEFAULT, [], schemas);
}

/** sha256 of `{ milkitHashVersion, config: hashInput(config) }` as canonical (sorted-key) JSON. */
export function hashConfig(config: Readonly<Record<string, unknown>>, schemas: HashSchemas): string {
  const payload = { milkitHashVersion: MILKIT_HASH_VERSION, config: hashInput(config, schemas) };
  return createHash('sha256').update(canonicalJson(payload)).digest('hex');
}

/** The value a key takes when it is absent (`.default`, `.prefault`, `undefined` for `.optional`), else NO_DEFAULT. */
function defaultOf(schema: z.ZodType | undefined): Reference {
  if (schema === undefined) return NO_DEFAULT;
  const parsed = schema.safeParse(undefined);
  return parsed.success ? parsed.data : NO_DEFAULT;
}

function shapeOf(schema: z.ZodType | undefined): Readonly<Record<string, z.ZodType>> | undefined {
  const inner = unwrap(schema);
  return inner instanceof z.ZodObject ? (inner.shape as Record<string, z.ZodType>) : undefined;
}

function childSchema(schema: z.ZodType | undefined, key: string): z.ZodType | undefined {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject) return (inner.shape as Record<string, z.ZodType>)[key];
  if (inner instanceof z.ZodRecord) return inner.valueType as z.ZodType;
  return undefined;
}

/** A plugin slot's key: `model.aggregator`, or an entry of a record slot (`model.losses.ce`). */
function isSlotKey(path: readonly string[]): boolean {
  const dotted = path.join('.');
  return PLUGIN_SLOTS.some((slot) => (slot.record ? path.length > 1 && path.slice(0, -1).join('.') === slot.key : dotted === slot.key));
}

/**
 * The children of a mapping that differ from their reference: the parent's default at that key when the parent
 * has one (a `.prefault({...})` section's own values), else the child schema's default. A key the reference has
 * but the value lacks is hashed as null, so leaving it out never looks like keeping its default.
 */
function stripMapping(value: ConfigMapping, schema: z.ZodType | undefined, reference: Reference, path: readonly string[], schemas: HashSchemas): ConfigMapping {
  const out: ConfigMapping = {};
  for (const [key, child] of Object.entries(value)) {
    if (child === undefined) continue;
    const fieldSchema = childSchema(schema, key);
    const fieldReference = isMapping(reference) && Object.hasOwn(reference, key) ? reference[key] : defaultOf(fieldSchema);
    const stripped = stripValue(child, fieldSchema, fieldReference, [...path, key], schemas);
    if (stripped !== NO_DEFAULT) out[key] = stripped;
  }
  if (isMapping(reference)) {
    for (const [key, referenceValue] of Object.entries(reference)) {
      if (referenceValue !== undefined && value[key] === undefined) out[key] = null;
    }
  }
  return out;
}

/** A value without its default parts; NO_DEFAULT here means "drop the key, it equals its default". */
function stripValue(value: unknown, schema: z.ZodType | undefined, reference: Reference, path: readonly string[], schemas: HashSchemas): unknown {
  if (schemas !== NO_SLOTS && isSlotKey(path) && isMapping(value) && typeof value.name === 'string') {
    const slotOptions = schemas.pluginOptions(path.join('.'));
    const stripped = stripSlot(value, schema, slotOptions);
    // A slot left at its default plugin with default options (model.classifier = linear) leaves the hash.
    const isDefault = isMapping(reference) && reference.name === value.name && deepEqual(stripped, stripSlot(reference, schema, slotOptions));
    return isDefault ? NO_DEFAULT : stripped;
  }
  if (reference !== NO_DEFAULT && deepEqual(value, reference)) return NO_DEFAULT;
  if (!isMapping(value)) return value;
  if (unwrap(schema) instanceof z.ZodRecord) {
    // A record is hashed whole: dropping an entry equal to a default entry would make {ce, inst} hash as {inst}.
    const entries = (record: ConfigMapping): ConfigMapping => Object.fromEntries(Object.entries(record).map(([key, entry]) => {
      const entryPath = [...path, key];
      const isSlot = schemas !== NO_SLOTS && isSlotKey(entryPath) && isMapping(entry);
      return [key, isSlot ? stripSlot(entry, childSchema(schema, key), schemas.pluginOptions(entryPath.join('.'))) : entry];
    }));
    const stripped = entries(value);
    return isMapping(reference) && deepEqual(stripped, entries(reference)) ? NO_DEFAULT : stripped;
  }
  const stripped = stripMapping(value, schema, reference, path, schemas);
  // Every key equals the reference's (absent ones were marked above): the whole section is at its default.
  return Object.keys(stripped).length === 0 && isMapping(reference) ? NO_DEFAULT : stripped;
}

/**
 * `{name, ...options}` keeping the name (the plugin's identity) and every option that differs from the plugin's
 * default; slot-level keys such as a loss's `weight` are compared with the experiment schema's default.
 */
function stripSlot(slot: ConfigMapping, slotSchema: z.ZodType | undefined, pluginOptions: z.ZodType | undefined): ConfigMapping {
  const slotShape = shapeOf(slotSchema);
  const optionShape = shapeOf(pluginOptions);
  const out: ConfigMapping = { name: slot.name };
  for (const [key, value] of Object.entries(slot)) {
    if (key === 'name' || value === undefined) continue;
    const fieldSchema = slotShape?.[key] ?? optionShape?.[key];
    const stripped = stripValue(value, fieldSchema, defaultOf(fieldSchema), [key], NO_SLOTS);
    if (stripped !== NO_DEFAULT) out[key] = stripped;
  }
  return out;
}

/** Inside a slot's options there are no further plugin slots. */
const NO_SLOTS: HashSchemas = { pluginOptions: () => undefined };
