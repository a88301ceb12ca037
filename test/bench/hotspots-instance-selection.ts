// CLAM's instance selection (top-k and bottom-k rows of h [N, E] by attention, through an instance classifier),
// forward and backward, in one process: the kernel version (TopK on the attention row, a one-hot [2k, N] selection
// matrix under constantOf, matMul with h) against the host version of plugins/aggregators/_shared/instance-clustering.ts
// (host top-k, gatherRows), alternating, CPU time per call (min and median over rounds) and kernel calls.
// Environment: SELECTION_N (default 1000), SELECTION_ROUNDS (default 15).
import * as tf from '@tensorflow/tfjs';
import { instanceClusteringExtras } from '../../plugins/aggregators/_shared/instance-clustering.js';
import { constantOf, selectionMatrix } from '../../src/core/nn/no-grad.js';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { median } from './shared.js';

await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
const n = Number(process.env['SELECTION_N'] ?? 1000);
const rounds = Number(process.env['SELECTION_ROUNDS'] ?? 15);
const k = 8;
const h = tf.variable(tf.randomNormal([n, 512], 0, 1, 'float32', 3));
const logits = tf.variable(tf.randomNormal([1, n], 0, 1, 'float32', 4));
const w = tf.variable(tf.randomNormal([512, 2], 0, 0.05, 'float32', 5));

function kernelVersion(): tf.Scalar {
  const attention = tf.softmax(logits) as tf.Tensor2D;
  const select = constantOf((a) => {
    const scores = tf.reshape(tf.slice(a, [0, 0], [1, n]), [n]) as tf.Tensor1D;
    const picked = tf.concat([tf.topk(scores, k).indices, tf.topk(tf.neg(scores), k).indices]);
    return selectionMatrix(picked as tf.Tensor1D, n);
  }, attention) as tf.Tensor2D;
  return tf.sum(tf.matMul(tf.matMul(select, h), w));
}
function hostVersion(): tf.Scalar {
  const attention = tf.softmax(logits) as tf.Tensor2D;
  const extras = instanceClusteringExtras(attention, h as unknown as tf.Tensor2D, 1, (_c, rows) => tf.matMul(rows, w) as tf.Tensor2D, { kSample: k, subtyping: false, numClasses: 2 });
  return tf.sum(extras['instanceLogits']!);
}
const variants = { kernels: kernelVersion, host: hostVersion };
const step = (f: () => tf.Scalar): void => {
  const { value, grads } = tf.variableGrads(f, [h, logits, w]);
  value.dataSync();
  tf.dispose([value, ...Object.values(grads)]);
};
const lines: string[] = [];
for (const [name, f] of Object.entries(variants)) {
  step(f);
  const info = await tf.profile(() => step(f));
  lines.push(`${name}: ${info.kernels.length} kernel calls`);
}
const cpu: Record<string, number[]> = { kernels: [], host: [] };
for (let r = 0; r < rounds; r += 1) {
  for (const name of r % 2 ? ['host', 'kernels'] : ['kernels', 'host']) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < 10; i += 1) step(variants[name as keyof typeof variants]);
    const c = process.cpuUsage(c0);
    cpu[name]!.push((c.user + c.system) / 10_000);
  }
}
for (const [name, list] of Object.entries(cpu)) lines.push(`${name}: cpu per forward + backward min ${Math.min(...list).toFixed(2)} / median ${median(list).toFixed(2)} ms`);
process.stdout.write(`N = ${n}\n${lines.join('\n')}\n`);
