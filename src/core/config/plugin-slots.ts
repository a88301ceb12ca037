// Where plugins sit in an experiment: the one table load.ts (resolution), json-schema.ts (editor schema)
// and composition (a slot's config group offers every registered plugin as an option) read.
import type { PluginKind } from '../../registry/kinds.js';

export interface PluginSlot {
  /** Dotted key of the slot (`model.aggregator`); for a record slot, the key of the record. */
  readonly key: string;
  readonly kind: PluginKind;
  /** `model.losses`: a mapping of named slots, each `{ name, weight, ...options }`. */
  readonly record: boolean;
}

export const PLUGIN_SLOTS: readonly PluginSlot[] = [
  { key: 'model.aggregator', kind: 'aggregator', record: false },
  { key: 'model.classifier', kind: 'classifier', record: false },
  { key: 'model.prescreener', kind: 'prescreener', record: false },
  { key: 'model.encoder', kind: 'encoder', record: false },
  { key: 'model.losses', kind: 'loss', record: true },
  { key: 'data.dataset', kind: 'dataset', record: false },
];

/** The config groups whose options are plugin names (`model/aggregator`; record slots as `model/losses/<name>`). */
export const PLUGIN_SLOT_GROUPS: readonly string[] = PLUGIN_SLOTS.map((slot) => `${slot.key.split('.').join('/')}${slot.record ? '/<name>' : ''}`);

/** `eval.metrics`: a list of metric plugin names. */
export const METRICS_KEY = 'eval.metrics';

/** The plugin kind whose names are implied options of a config group (`model/aggregator`, `model/losses/ce`). */
export function slotKindOfGroup(group: string): PluginKind | undefined {
  const dotted = group.split('/').join('.');
  for (const slot of PLUGIN_SLOTS) {
    if (!slot.record && dotted === slot.key) return slot.kind;
    if (slot.record && dotted.startsWith(`${slot.key}.`) && !dotted.slice(slot.key.length + 1).includes('.')) return slot.kind;
  }
  return undefined;
}
