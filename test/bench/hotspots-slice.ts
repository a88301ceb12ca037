// tf.slice on wasm: the stock kernel (reads the whole input back first) against the small-N Slice kernel
// (src/core/runtime/small-n-kernels.ts), alternating in one process, CPU per call for a block of rows and a column
// block out of [N, 512]. Environment: SLICE_ROUNDS (default 9).
import * as tf from '@tensorflow/tfjs';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { installSmallNKernels, restoreSmallNKernels } from '../../src/core/runtime/small-n-kernels.js';
import { median } from './shared.js';

await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
const rounds = Number(process.env['SLICE_ROUNDS'] ?? 9);
for (const n of [1000, 8000]) {
  const x = tf.randomNormal([n, 512]);
  const patterns: Record<string, [number[], number[]]> = { '16 rows': [[100, 0], [16, -1]], '1 column block of 64': [[0, 64], [-1, 64]] };
  for (const [label, [begin, size]] of Object.entries(patterns)) {
    const cpu: Record<'stock' | 'heap', number[]> = { stock: [], heap: [] };
    for (let r = 0; r < rounds; r += 1) {
      for (const side of (r % 2 ? ['heap', 'stock'] : ['stock', 'heap']) as Array<'stock' | 'heap'>) {
        if (side === 'stock') restoreSmallNKernels();
        else installSmallNKernels();
        const c0 = process.cpuUsage();
        for (let i = 0; i < 50; i += 1) tf.slice(x, begin, size).dispose();
        const c = process.cpuUsage(c0);
        cpu[side].push((c.user + c.system) / 50_000);
      }
    }
    process.stdout.write(`[${n}, 512] ${label}: stock ${Math.min(...cpu.stock).toFixed(3)} / ${median(cpu.stock).toFixed(3)} ms, heap copy ${Math.min(...cpu.heap).toFixed(3)} / ${median(cpu.heap).toFixed(3)} ms (cpu per call, min / median)\n`);
  }
  x.dispose();
}
installSmallNKernels();
