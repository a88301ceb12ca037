// Nyström self-attention as TransMIL configures it (nystrom-attention package; docs/methods/transmil.md#nystrom-attention):
// left zero-padding to a multiple of the landmark count, segment-mean landmarks, iterative Moore-Penrose
// pseudo-inverse, depthwise value-residual conv, and a switch for the package's two output row alignments.
import * as tf from '@tensorflow/tfjs';
import type { ForwardIO } from '../../registry/contracts/model.js';
import type { Rng } from '../runtime/random.js';
import { landmarkLogSumExp, landmarkSoftmaxProduct, rowSoftmaxProduct, SOFTMAX_BLOCK_ROWS } from './chunked-softmax.js';
import { checkpointed } from './checkpoint.js';
import { sequenceConvSame } from './depthwise-conv.js';
import { initWeight, type InitScheme } from './init.js';
import { Linear, dropout } from './layers.js';
import { Module } from './module.js';

/**
 * Which rows survive the un-padding: `pinned-0.0.9` keeps the FIRST L rows (the version TransMIL pins; rows
 * are shifted by the left padding), `fixed` keeps the LAST L rows (0.0.10+, aligned).
 */
export type NystromAlignment = 'pinned-0.0.9' | 'fixed';

export interface NystromOptions {
  readonly dim: number;
  readonly heads: number;
  readonly dimHead: number;
  /** m: landmarks. */
  readonly landmarks: number;
  readonly pinvIterations: number;
  /** Kernel of the value-residual conv along the sequence (0 = no residual). */
  readonly residualKernel: number;
  /** Dropout after the output projection while training. */
  readonly dropout: number;
  readonly alignment: NystromAlignment;
  readonly init: InitScheme;
}

/**
 * Side outputs of one Nyström call for one query row (TransMIL's class token): the row of the attention matrix
 * (K1 K2⁺) K3 per head, and optionally each head's attention-weighted values Σ… per token before summation,
 * merged and passed through the output projection (MHIM-MIL v2's class-aware instance features).
 */
export interface NystromObserver {
  /** Query row in the un-padded sequence. */
  readonly row: number;
  /** Also compute the per-token weighted values a_{h,n} v_{h,n}, heads merged, through to_out (with its dropout). */
  readonly weightedValues: boolean;
  /** Receives [heads, L] attention of the row over every token, and [L, dim] weighted values when asked. */
  take(attention: tf.Tensor2D, weighted: tf.Tensor2D | undefined): void;
}

/** Iterative Moore-Penrose pseudo-inverse of a batch of square matrices x [B, m, m] (docs/methods/transmil.md#nystrom-attention). */
export function moorePenrosePinv(x: tf.Tensor3D, iterations: number): tf.Tensor3D {
  return tf.tidy(() => {
    const m = x.shape[1];
    const absX = tf.abs(x); // [B, m, m]
    const rowSums = tf.sum(absX, -1); // [B, m]
    const colSums = tf.sum(absX, -2); // [B, m]
    // Global maxima over all batches and heads together (not per matrix).
    const scale = tf.mul(tf.max(rowSums), tf.max(colSums)); // scalar
    let z = tf.div(tf.transpose(x, [0, 2, 1]), scale) as tf.Tensor3D; // [B, m, m]  Z0 = xᵀ / scale
    const eye = tf.eye(m).expandDims(0); // [1, m, m]
    for (let i = 0; i < iterations; i += 1) {
      const xz = tf.matMul(x, z); // [B, m, m]
      const inner = tf.sub(tf.mul(eye, 7), xz); // 7I - xz
      const middle = tf.sub(tf.mul(eye, 15), tf.matMul(xz, inner)); // 15I - xz(7I - xz)
      const outer = tf.sub(tf.mul(eye, 13), tf.matMul(xz, middle)); // 13I - xz(15I - xz(7I - xz))
      z = tf.mul(tf.matMul(z, outer), 0.25) as tf.Tensor3D; // Z ← ¼ Z (…)
    }
    return z;
  });
}

/** Nyström attention over one sequence x [L, dim] → [L, dim] (torch keys to_qkv, to_out.0, res_conv). */
export class NystromAttention extends Module {
  // Read by the row-chunked TransLayer (chunked-translayer.ts), which recomputes this block in pieces.
  readonly toQkv: Linear;
  readonly toOut: Linear;
  readonly resConv: tf.Variable | undefined;

  constructor(readonly options: NystromOptions, rng: Rng) {
    super();
    const inner = options.heads * options.dimHead;
    this.toQkv = this.addModule('to_qkv', new Linear(options.dim, 3 * inner, rng.fork('to_qkv'), { bias: false, init: options.init }));
    this.toOut = this.addModule('to_out.0', new Linear(inner, options.dim, rng.fork('to_out.0'), { init: options.init }));
    if (options.residualKernel > 0) {
      // torch Conv2d(heads, heads, (k, 1), groups=heads, bias=False): weight [heads, 1, k, 1]; here [k, 1, heads, 1].
      const torchWeight = initWeight(options.init, [options.heads, 1, options.residualKernel, 1], rng.fork('res_conv'));
      this.resConv = this.addParameter('res_conv.weight', tf.tidy(() => tf.transpose(torchWeight, [2, 3, 0, 1])), { perm: [2, 3, 0, 1] });
      torchWeight.dispose();
    }
  }

  forward(x: tf.Tensor2D, io: ForwardIO, observer?: NystromObserver): tf.Tensor2D {
    return tf.tidy(() => {
      const { heads, dimHead, landmarks: m, pinvIterations, alignment } = this.options;
      const length = x.shape[0]; // L
      const pad = (m - (length % m)) % m;
      const total = length + pad; // L' = m·l
      const segment = Math.ceil(length / m); // l
      const inner = heads * dimHead;
      // Nested tidies free each stage's [L', ·] intermediates as soon as the next stage has its inputs: in a
      // checkpointed layer's forward nothing is on the tape, so this is the forward's whole peak at large N.
      const [q, k, v] = tf.tidy(() => {
        const padded = pad > 0 ? (tf.concat([tf.zeros([pad, x.shape[1]]), x], 0) as tf.Tensor2D) : x; // [L', dim]  zeros on the LEFT
        const qkv = this.toQkv.forward(padded); // [L', 3·inner]
        const split = (offset: number): tf.Tensor3D =>
          tf.transpose(tf.reshape(tf.slice(qkv, [0, offset], [total, inner]), [total, heads, dimHead]), [1, 0, 2]) as tf.Tensor3D; // [h, L', d]
        return [tf.mul(split(0), dimHead ** -0.5) as tf.Tensor3D, split(inner), split(2 * inner)]; // [h, L', d] each; queries scaled
      });
      const [qLand, kLandT, attn2Inv] = tf.tidy(() => {
        const landmarksOf = (t: tf.Tensor3D): tf.Tensor3D => tf.div(tf.sum(tf.reshape(t, [heads, m, segment, dimHead]), 2), segment) as tf.Tensor3D; // [h, m, d]  segment means
        const qL = landmarksOf(q);
        const kLT = tf.transpose(landmarksOf(k), [0, 2, 1]) as tf.Tensor3D; // [h, d, m]
        const attn2 = tf.softmax(tf.matMul(qL, kLT)) as tf.Tensor3D; // [h, m, m]
        return [qL, kLT, moorePenrosePinv(attn2, pinvIterations)]; // attn2⁺ [h, m, m]
      });
      // (K1 K2⁺)(K3 V) evaluated as K1 (K2⁺ (K3 V)), K1 = softmax(Q K̃ᵀ) [h, L', m] and K3 = softmax(Q̃ Kᵀ) [h, m, L']
      // taken in blocks of rows with a recomputing backward (chunked-softmax.ts): neither map nor its gradient is
      // ever whole, which is what dominated a layer's memory for large bags (results agree to float rounding).
      const mixedValues = tf.matMul(attn2Inv, landmarkSoftmaxProduct(qLand, k, v)) as tf.Tensor3D; // [h, m, d]  K2⁺ (K3 V)
      let out = rowSoftmaxProduct(q, kLandT, mixedValues); // [h, L', d]
      if (observer) {
        const query = tf.softmax(tf.matMul(tf.slice(q, [0, pad + observer.row, 0], [heads, 1, dimHead]), kLandT)); // [h, 1, m]  the row of K1
        const lse = landmarkLogSumExp(qLand, k); // [h, m, 1]
        const queryMix = tf.matMul(query, attn2Inv); // [h, 1, m]
        // Row of (K1 K2⁺) K3 [h, L'], K3 built block by block from its log-normaliser.
        const rowBlocks: tf.Tensor[] = [];
        for (let start = 0; start < total; start += SOFTMAX_BLOCK_ROWS) {
          const size = Math.min(SOFTMAX_BLOCK_ROWS, total - start);
          rowBlocks.push(tf.tidy(() => tf.matMul(queryMix, tf.exp(tf.sub(tf.matMul(qLand, tf.slice(k, [0, start, 0], [heads, size, dimHead]), false, true), lse))))); // [h, 1, b]
        }
        const row = tf.reshape(rowBlocks.length === 1 ? rowBlocks[0]! : tf.concat(rowBlocks, 2), [heads, total]); // [h, L']
        let weighted: tf.Tensor2D | undefined;
        if (observer.weightedValues) {
          const perToken = tf.mul(tf.expandDims(row, 2), v); // [h, L', d]  a_{h,n} v_{h,n}
          const mergedTokens = tf.reshape(tf.transpose(perToken, [1, 0, 2]), [total, heads * dimHead]) as tf.Tensor2D; // [L', inner]
          weighted = tf.slice(dropout(this.toOut.forward(mergedTokens), this.options.dropout, io.training, io.rng.fork('weighted')) as tf.Tensor2D, [pad, 0], [length, -1]); // [L, dim]
        }
        observer.take(tf.slice(row, [0, pad], [heads, length]) as tf.Tensor2D, weighted);
      }
      if (this.resConv) {
        // Conv2d(h, h, (k, 1), groups=h) on v seen as [h, L', d]: a per-head conv along the sequence.
        // Recomputed in the backward pass: its padded, shifted and stacked copies of v (≈ 13 × [h, L', d]) are
        // never all kept for the gradient, only v itself.
        const resVar = this.resConv;
        const resConv = resVar as tf.Tensor4D;
        const attended = out;
        out = tf.tidy(() => tf.add(attended, checkpointed((values) => sequenceConvSame(values as tf.Tensor3D, resConv), v, [resVar]))); // [h, L', d]
      }
      const start = alignment === 'fixed' ? pad : 0;
      const heads3 = out;
      return tf.tidy(() => {
        const merged = tf.reshape(tf.transpose(heads3, [1, 0, 2]), [total, inner]) as tf.Tensor2D; // [L', inner]  heads merged
        const projected = dropout(this.toOut.forward(merged), this.options.dropout, io.training, io.rng) as tf.Tensor2D; // [L', dim]
        return tf.slice(projected, [start, 0], [length, -1]) as tf.Tensor2D; // [L, dim]
      });
    });
  }
}
