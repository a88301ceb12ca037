// Containers that only shape state_dict paths: torch's nn.ModuleList / nn.Sequential number their children
// ("classifiers.0", "attention_net.3"), and checkpoint exchange needs the same dotted keys.
import { Module } from './module.js';

/** Children registered under their position ("0", "1", ...) or under explicit indices (Sequential gaps). */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: readonly M[];

  constructor(items: readonly M[], indices?: readonly number[]) {
    super();
    if (indices && indices.length !== items.length) throw new RangeError(`ModuleList: ${items.length} modules but ${indices.length} indices`);
    items.forEach((item, position) => this.addModule(String(indices?.[position] ?? position), item));
    this.items = items;
  }

  at(position: number): M {
    const item = this.items[position];
    if (!item) throw new RangeError(`ModuleList: no module at ${position} (length ${this.items.length})`);
    return item;
  }

  get length(): number {
    return this.items.length;
  }
}
