// A BatchMatMul gradient built from explicit transposes and non-transposed matmuls. The stock gradient feeds
// transposed operands to BatchMatMul, which the wasm backend runs 13-17x slower (docs/runtime.md#native-blas-for-the-wasm-backend-full-speed).
// It also sums over broadcast batch dims, which the stock gradient leaves to fail on a shape check.
import * as tf from '@tensorflow/tfjs';

type GradConfig = ReturnType<typeof tf.getGradient>;

/** The last two axes swapped; a real copy, so the matmul that follows reads contiguous rows. */
function swapLastAxes(x: tf.Tensor): tf.Tensor {
  const perm = x.shape.map((_, i) => i);
  const last = perm.length - 1;
  perm[last] = last - 1;
  perm[last - 1] = last;
  return tf.transpose(x, perm);
}

/**
 * `x` broadcast to the batch dims `batch` (a real copy, and only when they differ). The stock BatchMatMul kernels
 * broadcast batch dims by flat index modulo, which is wrong unless the smaller side's batch is a suffix of the other
 * (e.g. [2,1]×[2,3]); the gradient's own matmuls must not depend on that.
 */
function toBatch(x: tf.Tensor, batch: readonly number[]): tf.Tensor {
  const own = x.shape.slice(0, -2);
  if (own.length === batch.length && own.every((d, i) => d === batch[i])) return x;
  return tf.broadcastTo(x, [...batch, ...x.shape.slice(-2)]);
}

/** Sums a gradient over the batch axes its input was broadcast along, then restores the input's shape. */
function reduceToShape(grad: tf.Tensor, shape: readonly number[]): tf.Tensor {
  if (grad.shape.length === shape.length && grad.shape.every((d, i) => d === shape[i])) return grad;
  const batchIn = shape.slice(0, -2);
  const batchOut = grad.shape.slice(0, -2);
  const axes = tf.backend_util.getReductionAxes(batchIn, batchOut);
  const summed = axes.length > 0 ? tf.sum(grad, axes) : grad;
  return tf.reshape(summed, [...shape]);
}

/** Gradient config for `BatchMatMul` that never asks BatchMatMul for a transposed operand. */
export const explicitTransposeMatMulGrad: GradConfig = {
  kernelName: 'BatchMatMul',
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved, attrs) => {
    const [savedA, savedB] = saved as [tf.Tensor, tf.Tensor];
    const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const dyT = Array.isArray(dy) ? (dy[0] as tf.Tensor) : dy;
    // dy carries the broadcast batch dims of the output; bring both operands to them.
    const batch = dyT.shape.slice(0, -2);
    const a = toBatch(savedA, batch);
    const b = toBatch(savedB, batch);
    let gradA: () => tf.Tensor;
    let gradB: () => tf.Tensor;
    if (!transposeA && !transposeB) {
      // C = A B: dA = dC Bᵀ, dB = Aᵀ dC
      gradA = () => tf.matMul(dyT, swapLastAxes(b));
      gradB = () => tf.matMul(swapLastAxes(a), dyT);
    } else if (!transposeA && transposeB) {
      // C = A Bᵀ: dA = dC B, dB = dCᵀ A
      gradA = () => tf.matMul(dyT, b);
      gradB = () => tf.matMul(swapLastAxes(dyT), a);
    } else if (transposeA && !transposeB) {
      // C = Aᵀ B: dA = B dCᵀ, dB = A dC
      gradA = () => tf.matMul(b, swapLastAxes(dyT));
      gradB = () => tf.matMul(a, dyT);
    } else {
      // C = Aᵀ Bᵀ: dA = (dC B)ᵀ, dB = (A dC)ᵀ
      gradA = () => swapLastAxes(tf.matMul(dyT, b));
      gradB = () => swapLastAxes(tf.matMul(a, dyT));
    }
    return {
      a: () => reduceToShape(gradA(), savedA.shape),
      b: () => reduceToShape(gradB(), savedB.shape),
    };
  },
};

let stockGrad: GradConfig | undefined;

/** Which BatchMatMul gradient is registered now. */
export function activeMatMulGrad(): 'explicit-transpose' | 'stock' {
  return tf.getGradient('BatchMatMul') === explicitTransposeMatMulGrad ? 'explicit-transpose' : 'stock';
}

/** Registers the explicit-transpose gradient (idempotent); the stock one is kept for `restoreStockMatMulGrad`. */
export function installExplicitTransposeMatMulGrad(): void {
  const current = tf.getGradient('BatchMatMul');
  if (current === explicitTransposeMatMulGrad) return;
  stockGrad ??= current;
  tf.registerGradient(explicitTransposeMatMulGrad);
}

/** Puts tfjs's own BatchMatMul gradient back (idempotent). */
export function restoreStockMatMulGrad(): void {
  if (stockGrad && tf.getGradient('BatchMatMul') === explicitTransposeMatMulGrad) tf.registerGradient(stockGrad);
}
