// TransMIL's TransLayer, x + NystromAttention(LayerNorm(x)), evaluated in blocks of rows with its own gradient, so
// neither its forward nor its backward ever holds the layer's [L, ·] intermediates whole (LayerNorm, the q/k/v
// projection, the attention maps, the merged heads, the output projection). Most of the layer is row-wise; only
// three parts cross rows, and each is small or local (docs/methods/transmil.md#nystrom-attention):
//   - the landmarks (segment means of q and k) and everything built from them, K2⁺ and K2⁺(K3 V): [h, m, ·];
//   - K3 V = softmax(Q̃ Kᵀ) V, a sum over all tokens, taken in two passes over blocks (log-sum-exp, then values);
//   - the value-residual conv, which reads `radius` rows either side of a block.
// The backward pass recomputes k and v (and q) block by block, pulls the upstream gradient through each block's
// row-wise part with a small nested gradient, through the [h, m, ·] part with another, and back through the
// projection and LayerNorm block by block again. Its peak is a few whole [L, 512] tensors (k, v, their gradients)
// instead of the ≈ 12 of a recomputed layer. Same numbers as the plain layer to float rounding.
import * as tf from '@tensorflow/tfjs';
import type { ForwardIO } from '../../registry/contracts/model.js';
import { Rng } from '../runtime/random.js';
import { heapSlice } from './heap-slice.js';
import type { LayerNorm } from './layer-norm.js';
import { dropout, dropoutKeepMask } from './layers.js';
import { moorePenrosePinv, type NystromAttention, type NystromObserver } from './nystrom.js';
import { pinvBackward, pinvWithTape, type PinvTape, tapeFrom, tapeTensors } from './pinv-tape.js';

type GradSave = (tensors: tf.Tensor[]) => void;
type Block = readonly [start: number, end: number];

/**
 * Up to this many (padded) rows the layer keeps, for its backward pass, what it would otherwise compute again: the
 * pseudo-inverse's iterates from the forward pass (48 MB per layer at the default sizes, whatever N; saves 24 of the
 * backward's 72 [h, m, m] products) and, inside the backward pass, K3's share of dk and dv per block from step 3 to
 * step 4 (4 KB per row; saves one [h, m, b] exponential and two products per block). Above it the heap is better
 * spent on rows (at 50,000 instances the step fills most of wasm's 4 GB); the memory budget's TransMIL floor is
 * measured there.
 */
export const KEEP_FOR_BACKWARD_MAX_ROWS = 16_384;

/** Rows per block (before rounding to whole landmark segments). */
export const LAYER_BLOCK_ROWS = 1024;

/**
 * Block size when the caller gives none: a sequence of up to 1.5 blocks runs as one block (at N = 1,000 the padded
 * 1,280 rows would otherwise be split 1,025 + 255, for about 150 more kernel calls and no memory to speak of saved);
 * longer ones in blocks of LAYER_BLOCK_ROWS, so the temporaries stop growing with N (what keeps N = 50,000 in the heap).
 */
export function defaultBlockRows(paddedRows: number): number {
  return paddedRows <= 1.5 * LAYER_BLOCK_ROWS ? paddedRows : LAYER_BLOCK_ROWS;
}

/** Rows [from, to) of the sequence stored as consecutive blocks `parts` ([h, rows, d] each), zeros outside it. */
function rowsOf(parts: readonly tf.Tensor3D[], blocks: readonly Block[], from: number, to: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [heads, , depth] = parts[0]!.shape;
    const pieces: tf.Tensor3D[] = [];
    let cursor = from;
    if (cursor < 0) {
      const count = Math.min(to, 0) - cursor;
      pieces.push(tf.zeros([heads, count, depth]));
      cursor += count;
    }
    blocks.forEach(([start, end], i) => {
      const a = Math.max(cursor, start);
      const b = Math.min(to, end);
      if (a >= b || a !== cursor) return;
      pieces.push(a === start && b === end ? parts[i]! : heapSlice(parts[i]!, [0, a - start, 0], [heads, b - a, depth]));
      cursor = b;
    });
    if (cursor < to) pieces.push(tf.zeros([heads, to - cursor, depth]));
    return pieces.length === 1 ? pieces[0]! : tf.concat(pieces, 1);
  });
}

/**
 * Rows of a block's value window for the residual conv: `radius` rows before the block, and enough after it that the
 * window is a whole number of radius-row pieces with one piece either side of the block's pieces.
 */
function windowLength(blockRows: number, radius: number): number {
  return (Math.ceil(blockRows / radius) + 2) * radius;
}

/**
 * The value-residual conv of one block's `count` rows from its window (windowLength rows, the block starting at
 * row `radius`): out[h, n, d] = Σ_t w[t, h] · window[h, n + t, d], a 2r+1-tap depthwise conv along the rows with
 * the filter [k, 1, h, 1] (torch Conv2d(h, h, (k, 1), groups=h) permuted). Block-Toeplitz like sequenceConvSame
 * (pieces of B = r rows: output piece β reads window pieces β, β+1, β+2), but the three shifted operands are three
 * slices of one transposed copy of the window instead of pads, slices and a concat: on wasm tfjs' Slice (also the
 * gradient of pad) and SplitV (the gradient of concat) copy their whole input first, which made this conv a tenth
 * of a TransMIL step at N = 1,000.
 */
function windowConv(window: tf.Tensor3D, filter: tf.Tensor4D, count: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [heads, rows, depth] = window.shape;
    const taps = filter.shape[0];
    const piece = (taps - 1) / 2; // B = r
    const pieces = rows / piece - 2; // output pieces
    const weights = tf.transpose(tf.reshape(filter, [taps, heads])); // [h, k]
    // T_s[i, j] = w[s·B + j − i] (0 outside the kernel): window piece β + s's contribution to output piece β.
    const toeplitz = [0, 1, 2].map((shift) => {
      const selector = new Float32Array(taps * piece * piece);
      for (let i = 0; i < piece; i += 1) {
        for (let j = 0; j < piece; j += 1) {
          const t = shift * piece + j - i;
          if (t >= 0 && t < taps) selector[t * piece * piece + i * piece + j] = 1;
        }
      }
      return tf.reshape(tf.matMul(weights, tf.tensor2d(selector, [taps, piece * piece])), [heads, piece, piece]); // [h, B, B]
    });
    const byRow = tf.transpose(tf.reshape(window, [heads, pieces + 2, piece, depth]), [0, 2, 1, 3]); // [h, B, pieces + 2, d]
    const terms = toeplitz.map((t, shift) => tf.matMul(t, tf.reshape(heapSlice(byRow, [0, 0, shift, 0], [heads, piece, pieces, depth]), [heads, piece, pieces * depth]))); // [h, B, pieces·d]
    const out = tf.transpose(tf.reshape(tf.addN(terms), [heads, piece, pieces, depth]), [0, 2, 1, 3]); // [h, pieces, B, d]
    return heapSlice(tf.reshape(out, [heads, pieces * piece, depth]), [0, 0, 0], [heads, count, depth]) as tf.Tensor3D; // [h, count, d]
  });
}

/** Rows [from, to) of a [rows, dim] matrix, zeros outside [0, rows). */
function matrixRows(x: tf.Tensor2D, from: number, to: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [rows, dim] = x.shape;
    const a = Math.max(from, 0);
    const b = Math.min(to, rows);
    if (a >= b) return tf.zeros([to - from, dim]);
    const inside = a === 0 && b === rows ? x : heapSlice(x, [a, 0], [b - a, dim]);
    return a > from || b < to ? (tf.concat([tf.zeros([a - from, dim]), inside, tf.zeros([to - b, dim])], 0) as tf.Tensor2D) : inside;
  });
}

/**
 * Gradients of `f()` (seeded with `dy`, or 1 for a scalar) with respect to `xs`, zeros where `f` does not depend
 * on one. Safe inside another backward pass: a nested gradients() call drops the engine's active tape, which the
 * outer pass still needs, so it is put back.
 */
function nestedGrads(f: () => tf.Tensor, xs: readonly tf.Tensor[], dy?: tf.Tensor): tf.Tensor[] {
  const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
  const outerTape = state.activeTape;
  try {
    return tf.tidy(() => {
      const { value, grads } = tf.engine().gradients(f, [...xs], dy, true);
      value.dispose();
      return xs.map((x, i) => grads[i] ?? tf.zerosLike(x));
    });
  } finally {
    state.activeTape = outerTape;
  }
}

/** q, k, v [h, b, d] per block of rows. */
interface ProjectedBlocks {
  q: tf.Tensor3D[];
  k: tf.Tensor3D[];
  v: tf.Tensor3D[];
}

/** The recomputable state of one layer call: q, k, v per block and the [h, m, ·] Nyström quantities. */
interface LayerState extends SmallState, ProjectedBlocks {
  /** K2 and K2⁺'s iterates, when kept for the backward pass (KEEP_FOR_BACKWARD_MAX_ROWS). */
  pinvTape?: PinvTape;
}

/** The [h, m, ·] part of a layer call's state, independent of L in size. */
interface SmallState {
  /** Landmarks q̃ [h, m, d] and k̃ [h, m, d]. */
  qLand: tf.Tensor3D;
  kLand: tf.Tensor3D;
  /** K2⁺ [h, m, m]. */
  attn2Inv: tf.Tensor3D;
  /** log Σ_L exp(q̃ kᵀ) [h, m, 1]: K3's normaliser. */
  lse: tf.Tensor3D;
  /** K3 V [h, m, d]. */
  k3v: tf.Tensor3D;
  /** K2⁺ (K3 V) [h, m, d]. */
  mixed: tf.Tensor3D;
}
const SMALL_KEYS = ['qLand', 'kLand', 'attn2Inv', 'lse', 'k3v', 'mixed'] as const;

/**
 * TransLayer x [L, dim] → x + NystromAttention(LayerNorm(x)) [L, dim], in blocks of about `blockRows` rows
 * (rounded to whole landmark segments), with a backward pass that recomputes blocks. `io.rng` must be the stream
 * the plain layer would give the attention (its first draw is the output dropout's seed); `observer` is served
 * from the forward pass only. `keepProjections` keeps q, k and v of every block from the forward pass for the
 * backward pass (6 KB per row) instead of projecting every block again: it costs no memory at the step's peak only
 * for the last layer before the loss (nothing but the head runs between its forward and backward passes, and its
 * backward pass would allocate the same tensors at once), so a model asks for it there, at any N.
 */
export function chunkedTransLayer(x: tf.Tensor2D, norm: LayerNorm, attn: NystromAttention, io: ForwardIO, observer?: NystromObserver, blockRows?: number, keepForBackward?: boolean, keepProjections = false): tf.Tensor2D {
  const { heads, dimHead, landmarks: m, pinvIterations, alignment, dropout: rate, residualKernel } = attn.options;
  const [length, dim] = x.shape;
  const pad = (m - (length % m)) % m; // zero rows on the LEFT, as the plain layer
  const total = length + pad; // L' = m·l
  const segment = total / m; // l rows per landmark
  const inner = heads * dimHead;
  const radius = attn.resConv ? (residualKernel - 1) / 2 : 0;
  const outStart = alignment === 'fixed' ? pad : 0; // first padded row the layer returns
  // Whole segments per block (landmark sums and their gradients stay per block), and at least `radius` rows so a
  // block's conv window reaches only into its neighbours.
  const rows = segment * Math.max(1, Math.ceil(Math.max(blockRows ?? defaultBlockRows(total), radius, 1) / segment));
  const blocks: Block[] = [];
  for (let start = 0; start < total; start += rows) blocks.push([start, Math.min(start + rows, total)]);
  const inVars: tf.Variable[] = [norm.weight, norm.bias, ...attn.toQkv.trainableVariables()];
  const outVars: tf.Variable[] = [...attn.toOut.trainableVariables(), ...(attn.resConv ? [attn.resConv] : [])];
  // The output dropout's keep mask is drawn whole (the plain layer's draw, bit for bit), from a copy of the stream
  // taken now, so the backward pass draws it again instead of keeping it. It stays 0/1 (bool: a quarter of a float
  // mask) and each block scales its own rows: keep · 1/(1-p), the plain layer's factor, so the same products.
  const rngLabel = io.rng.seedLabel;
  const rngState = io.rng.state();
  const dropoutMask = (): tf.Tensor2D | undefined =>
    io.training && rate > 0 ? (dropoutKeepMask([total, dim], rate, new Rng(rngLabel, rngState)) as tf.Tensor2D) : undefined; // [L', dim] 0/1

  /** q, k, v [h, b, d] of padded rows [a, b) from the x rows `xRows` (the rows at and after `pad`). */
  const project = (xRows: tf.Tensor2D | undefined, zeroRows: number): [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D] => {
    const normed = xRows ? norm.forward(xRows) : undefined;
    const padded = zeroRows > 0 ? (normed ? tf.concat([tf.zeros([zeroRows, dim]), normed], 0) : tf.zeros([zeroRows, dim])) : normed!; // [b, dim]
    const count = padded.shape[0]!;
    const qkv = attn.toQkv.forward(padded as tf.Tensor2D); // [b, 3·inner]
    // One transpose to [3, h, b, d] makes q, k and v contiguous: three cheap slices instead of three column slices
    // (each a strided copy) and three transposes.
    const grouped = tf.transpose(tf.reshape(qkv, [count, 3, heads, dimHead]), [1, 2, 0, 3]); // [3, h, b, d]
    const split = (part: number): tf.Tensor3D => tf.reshape(heapSlice(grouped, [part, 0, 0, 0], [1, heads, count, dimHead]), [heads, count, dimHead]) as tf.Tensor3D; // [h, b, d]
    return [tf.mul(split(0), dimHead ** -0.5) as tf.Tensor3D, split(1), split(2)];
  };
  /**
   * project's gradient for input rows `rowsIn` [r, dim] (no padding rows) from dq, dk, dv [h, r, d]: [dx, then one
   * gradient per inVars entry]. By hand for the head split and to_qkv (the two products of a linear layer's gradient),
   * so the [r, 3·inner] projection is not computed a third time just to be differentiated; LayerNorm, row-wise and
   * cheap, through tfjs' gradient. The same products as tfjs' gradients of those ops.
   */
  const projectBackward = (rowsIn: tf.Tensor2D, dq: tf.Tensor3D, dk: tf.Tensor3D, dv: tf.Tensor3D): tf.Tensor[] => {
    const count = rowsIn.shape[0];
    const dGrouped = tf.stack([tf.mul(dq, dimHead ** -0.5), dk, dv]); // [3, h, r, d]
    const dQkv = tf.reshape(tf.transpose(dGrouped, [2, 0, 1, 3]), [count, 3 * inner]) as tf.Tensor2D; // [r, 3·inner]
    const normed = norm.forward(rowsIn); // [r, dim]
    const dWeight = tf.matMul(normed, dQkv, true, false); // [dim, 3·inner]
    const dNormed = tf.matMul(dQkv, attn.toQkv.weight, false, true) as tf.Tensor2D; // [r, dim]
    const [dx, dGamma, dBeta] = nestedGrads(() => norm.forward(rowsIn), [rowsIn, norm.weight, norm.bias], dNormed);
    const byVariable = new Map<tf.Variable, tf.Tensor>([[norm.weight, dGamma!], [norm.bias, dBeta!], [attn.toQkv.weight, dWeight]]);
    if (attn.toQkv.bias) byVariable.set(attn.toQkv.bias, tf.sum(dQkv, 0));
    return [dx!, ...inVars.map((variable) => byVariable.get(variable) ?? tf.zerosLike(variable))];
  };
  const inputRows = (input: tf.Tensor2D, [start, end]: Block): tf.Tensor2D | undefined => {
    const first = Math.max(start, pad);
    return first < end ? (heapSlice(input, [first - pad, 0], [end - first, dim]) as tf.Tensor2D) : undefined;
  };
  const landmarksOf = (parts: readonly tf.Tensor3D[]): tf.Tensor3D => {
    const sums = parts.map((t) => tf.sum(tf.reshape(t, [heads, t.shape[1] / segment, segment, dimHead]), 2)); // [h, b/l, d]
    return tf.div(sums.length === 1 ? sums[0]! : tf.concat(sums, 1), segment) as tf.Tensor3D; // [h, m, d]
  };
  /** K2⁺ (K3 V) from the landmarks and K3 V: the only part of the layer that mixes landmarks. */
  const mixLandmarks = (qLand: tf.Tensor3D, kLand: tf.Tensor3D, k3v: tf.Tensor3D): tf.Tensor3D =>
    tf.matMul(moorePenrosePinv(tf.softmax(tf.matMul(qLand, kLand, false, true)) as tf.Tensor3D, pinvIterations), k3v) as tf.Tensor3D;

  /** mixLandmarks' gradient by hand from the forward's K2 and pseudo-inverse iterates: [dq̃, dk̃, d(K3 V)]. */
  const mixLandmarksBackward = (state: SmallState, tape: PinvTape, dMixed: tf.Tensor3D): [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D] =>
    tf.tidy(() => {
      const dAttn2Inv = tf.matMul(dMixed, state.k3v, false, true) as tf.Tensor3D; // mixed = K2⁺ (K3 V)
      const dK3v = tf.matMul(state.attn2Inv, dMixed, true, false) as tf.Tensor3D;
      const dAttn2 = pinvBackward(tape, dAttn2Inv, nestedGrads);
      const attn2 = tape.x; // K2 = softmax(q̃ k̃ᵀ)
      const dLogits = tf.mul(attn2, tf.sub(dAttn2, tf.sum(tf.mul(dAttn2, attn2), -1, true))); // softmax backward
      return [tf.matMul(dLogits, state.kLand) as tf.Tensor3D, tf.matMul(dLogits, state.qLand, true, false) as tf.Tensor3D, dK3v];
    });
  /** q, k, v block by block and, unless the forward pass saved them (`small`), the [h, m, ·] quantities. */
  const keepSmallNState = keepForBackward ?? total <= KEEP_FOR_BACKWARD_MAX_ROWS;
  const prepare = (input: tf.Tensor2D, small?: SmallState, pinvTape?: PinvTape, kept?: ProjectedBlocks): LayerState => {
    if (small && kept) return { ...kept, ...small, ...(pinvTape ? { pinvTape } : {}) };
    const q: tf.Tensor3D[] = [];
    const k: tf.Tensor3D[] = [];
    const v: tf.Tensor3D[] = [];
    for (const block of blocks) {
      const [qb, kb, vb] = tf.tidy(() => project(inputRows(input, block), Math.max(0, Math.min(pad, block[1]) - block[0])));
      q.push(qb);
      k.push(kb);
      v.push(vb);
    }
    if (small) return { q, k, v, ...small, ...(pinvTape ? { pinvTape } : {}) };
    let tape: PinvTape | undefined;
    const fresh = tf.tidy(() => {
      const qLand = landmarksOf(q);
      const kLand = landmarksOf(k);
      const attn2 = tf.softmax(tf.matMul(qLand, kLand, false, true)) as tf.Tensor3D; // K2 [h, m, m]
      let attn2Inv: tf.Tensor3D; // [h, m, m]
      if (keepSmallNState) {
        const taped = pinvWithTape(attn2, pinvIterations);
        tape = taped.tape;
        attn2Inv = taped.value;
      } else {
        attn2Inv = moorePenrosePinv(attn2, pinvIterations);
      }
      const { lse, k3v } = landmarkValues(qLand, k, v);
      return { qLand, kLand, attn2Inv, lse, k3v, mixed: tf.matMul(attn2Inv, k3v) as tf.Tensor3D };
    });
    return { q, k, v, ...fresh, ...(tape ? { pinvTape: tape } : {}) };
  };
  /**
   * K3's log-normaliser log Σ exp(q̃ kᵀ) [h, m, 1] and K3 V [h, m, d] in one pass over the key blocks (online softmax:
   * a running maximum, the running sums rescaled when it rises), each block's logits and exponentials freed before
   * the next: one product and one exponential per block where two passes took two of each, and at most one block's
   * [h, m, b] maps alive (the two passes kept every block's until the end of the layer's preparation).
   */
  const landmarkValues = (qLand: tf.Tensor3D, k: readonly tf.Tensor3D[], v: readonly tf.Tensor3D[]): { lse: tf.Tensor3D; k3v: tf.Tensor3D } => {
    let running: { peak: tf.Tensor3D; total: tf.Tensor3D; weighted: tf.Tensor3D } | undefined;
    k.forEach((kb, i) => {
      const previous = running;
      running = tf.tidy(() => {
        const logits = tf.matMul(qLand, kb, false, true); // [h, m, b]
        const blockPeak = tf.max(logits, -1, true) as tf.Tensor3D; // [h, m, 1]
        const peak = previous ? (tf.maximum(previous.peak, blockPeak) as tf.Tensor3D) : blockPeak;
        const e = tf.exp(tf.sub(logits, peak));
        const blockTotal = tf.sum(e, -1, true) as tf.Tensor3D;
        const blockWeighted = tf.matMul(e, v[i]!) as tf.Tensor3D; // [h, m, d]
        if (!previous) return { peak, total: blockTotal, weighted: blockWeighted };
        const rescale = tf.exp(tf.sub(previous.peak, peak)); // [h, m, 1], ≤ 1
        return { peak, total: tf.add(tf.mul(previous.total, rescale), blockTotal) as tf.Tensor3D, weighted: tf.add(tf.mul(previous.weighted, rescale), blockWeighted) as tf.Tensor3D };
      });
      if (previous) tf.dispose([previous.peak, previous.total, previous.weighted]);
    });
    const { peak, total, weighted } = running!;
    const out = tf.tidy(() => ({ lse: tf.add(peak, tf.log(total)) as tf.Tensor3D, k3v: tf.div(weighted, total) as tf.Tensor3D }));
    tf.dispose([peak, total, weighted]);
    return out;
  };
  const release = (state: LayerState): void => tf.dispose([...state.q, ...state.k, ...state.v, state.qLand, state.kLand, state.attn2Inv, state.lse, state.k3v, state.mixed, ...(state.pinvTape ? tapeTensors(state.pinvTape) : [])]);

  /** Padded rows [start, end) of the attention output (after to_out and its dropout) from the block's queries and value window. */
  const blockOutput = (qBlock: tf.Tensor3D, valueWindow: tf.Tensor3D | undefined, kLand: tf.Tensor3D, mixed: tf.Tensor3D, mask: tf.Tensor2D | undefined): tf.Tensor2D => {
    const count = qBlock.shape[1];
    let out = tf.matMul(tf.softmax(tf.matMul(qBlock, kLand, false, true)), mixed) as tf.Tensor3D; // [h, b, d]  K1 K2⁺ (K3 V)
    if (attn.resConv && valueWindow) {
      out = tf.add(out, windowConv(valueWindow, attn.resConv as tf.Tensor4D, count)); // the block's rows
    }
    const projected = attn.toOut.forward(tf.reshape(tf.transpose(out, [1, 0, 2]), [count, inner]) as tf.Tensor2D); // [b, dim]
    return mask ? (tf.mul(projected, mask) as tf.Tensor2D) : projected;
  };
  const valueWindow = (state: LayerState, [start, end]: Block): tf.Tensor3D | undefined => (radius > 0 ? rowsOf(state.v, blocks, start - radius, start - radius + windowLength(end - start, radius)) : undefined);
  const maskRows = (mask: tf.Tensor2D | undefined, [start, end]: Block): tf.Tensor2D | undefined =>
    mask ? (tf.mul(tf.cast(heapSlice(mask, [start, 0], [end - start, dim]), 'float32'), 1 / (1 - rate)) as tf.Tensor2D) : undefined; // [b, dim] scaled

  const observe = (state: LayerState, target: NystromObserver): void => {
    tf.tidy(() => {
      const query = tf.softmax(tf.matMul(rowsOf(state.q, blocks, pad + target.row, pad + target.row + 1), state.kLand, false, true)); // [h, 1, m]  the row of K1
      const queryMix = tf.matMul(query, state.attn2Inv); // [h, 1, m]
      const parts = state.k.map((kb) => tf.matMul(queryMix, tf.exp(tf.sub(tf.matMul(state.qLand, kb, false, true), state.lse)))); // [h, 1, b]
      const row = tf.reshape(parts.length === 1 ? parts[0]! : tf.concat(parts, 2), [heads, total]); // [h, L']  row of (K1 K2⁺) K3
      let weighted: tf.Tensor2D | undefined;
      if (target.weightedValues) {
        const values = rowsOf(state.v, blocks, 0, total); // [h, L', d]
        const merged = tf.reshape(tf.transpose(tf.mul(tf.expandDims(row, 2), values), [1, 0, 2]), [total, inner]) as tf.Tensor2D; // [L', inner]
        weighted = heapSlice(dropout(attn.toOut.forward(merged), rate, io.training, io.rng.fork('weighted')) as tf.Tensor2D, [pad, 0], [length, -1]); // [L, dim]
      }
      target.take(heapSlice(row, [0, pad], [heads, length]) as tf.Tensor2D, weighted);
    });
  };

  const forward = (input: tf.Tensor2D, save: GradSave): tf.Tensor2D => {
    const state = prepare(input);
    // The backward pass gets the [h, m, ·] quantities (a few MB, whatever N) instead of computing them again: that
    // would be K2's 6 pseudo-inverse iterations (24 batched [h, m, m] products) and two passes over all keys.
    // Saved only while a gradient is being recorded (tfjs' save is a no-op otherwise).
    save([input, ...SMALL_KEYS.map((key) => state[key]), ...(state.pinvTape ? tapeTensors(state.pinvTape) : []), ...(keepProjections ? [...state.q, ...state.k, ...state.v] : [])]);
    try {
      if (observer) observe(state, observer);
      return tf.tidy(() => {
        const mask = dropoutMask();
        const outputs: tf.Tensor2D[] = [];
        blocks.forEach((block, i) => {
          const first = Math.max(block[0], outStart);
          const last = Math.min(block[1], outStart + length);
          if (first >= last) return;
          outputs.push(tf.tidy(() => {
            const attended = blockOutput(state.q[i]!, valueWindow(state, block), state.kLand, state.mixed, maskRows(mask, block)); // [b, dim]
            return tf.add(heapSlice(input, [first - outStart, 0], [last - first, dim]), heapSlice(attended, [first - block[0], 0], [last - first, dim])) as tf.Tensor2D;
          }));
        });
        return (outputs.length === 1 ? outputs[0]! : tf.concat(outputs, 0)) as tf.Tensor2D; // [L, dim]
      });
    } finally {
      release(state);
    }
  };

  const backward = (upstream: tf.Tensor2D, input: tf.Tensor2D, small: SmallState, pinvTape?: PinvTape, kept?: ProjectedBlocks): tf.Tensor[] => {
    const state = prepare(input, small, pinvTape, kept);
    const grads = new Map<tf.Variable, tf.Tensor>();
    const accumulate = (variable: tf.Variable, gradient: tf.Tensor): void => {
      const previous = grads.get(variable);
      grads.set(variable, previous ? tf.add(previous, gradient) : gradient);
      if (previous) {
        previous.dispose();
        gradient.dispose();
      }
    };
    const addInto = (current: tf.Tensor3D, extra: tf.Tensor3D): tf.Tensor3D => {
      const sum = tf.add(current, extra) as tf.Tensor3D;
      current.dispose();
      extra.dispose();
      return sum;
    };
    let dKLand = tf.zeros([heads, m, dimHead]) as tf.Tensor3D;
    let dMixed = tf.zeros([heads, m, dimHead]) as tf.Tensor3D;
    const dQueries: tf.Tensor3D[] = [];
    const dWindows: tf.Tensor3D[] = []; // gradient of each block's value window [h, windowLength, d]
    try {
      // 1. Row-wise part, block by block: the output projection and residual conv, K1 with the landmark keys.
      const mask = dropoutMask();
      blocks.forEach((block, i) => {
        const parts = tf.tidy(() => {
          const window = valueWindow(state, block);
          const blockMask = maskRows(mask, block);
          const dOut = matrixRows(upstream, block[0] - outStart, block[1] - outStart); // [b, dim]  rows the layer does not return get none
          const xs = [state.q[i]!, state.kLand, state.mixed, ...outVars, ...(window ? [window] : [])];
          return nestedGrads(() => blockOutput(state.q[i]!, window, state.kLand, state.mixed, blockMask), xs, dOut);
        });
        const [dq, dk, dmix, ...rest] = parts as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, ...tf.Tensor[]];
        dQueries.push(dq);
        dKLand = addInto(dKLand, dk);
        dMixed = addInto(dMixed, dmix);
        outVars.forEach((variable, j) => accumulate(variable, rest[j]!));
        if (radius > 0) dWindows.push(rest[outVars.length] as tf.Tensor3D);
      });
      mask?.dispose();
      tf.dispose(state.q);
      state.q = [];
      // 2. The [h, m, ·] part: K2⁺ (K3 V) back to the landmarks and to K3 V.
      const [dqLandMix, dkLandMix, dK3v] = state.pinvTape ? mixLandmarksBackward(state, state.pinvTape, dMixed) : (nestedGrads(() => mixLandmarks(state.qLand, state.kLand, state.k3v), [state.qLand, state.kLand, state.k3v], dMixed) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D]);
      dKLand = addInto(dKLand, dkLandMix);
      // 3. K3 V = softmax(q̃ Kᵀ) V back to q̃ (softmax backward with K3's normaliser), block by block of tokens; its
      // gradients to k and v are taken again per block in step 4, so they never exist whole beside k and v.
      const rowTerm = tf.sum(tf.mul(dK3v, state.k3v), -1, true); // [h, m, 1]
      const k3LogitsOf = (i: number): [tf.Tensor3D, tf.Tensor3D] => {
        const p = tf.exp(tf.sub(tf.matMul(state.qLand, state.k[i]!, false, true), state.lse)) as tf.Tensor3D; // [h, m, b]
        return [p, tf.mul(p, tf.sub(tf.matMul(dK3v, state.v[i]!, false, true), rowTerm)) as tf.Tensor3D]; // K3 and dLogits [h, m, b]
      };
      // K3's share of each block's dk and dv ([h, b, d] each). Under the keep policy step 3 takes them with dq̃ and
      // keeps them for step 4 (4 KB per row); otherwise step 4 takes K3 and its gradient again per block, so
      // nothing of K3 is ever held for all rows.
      const k3RowGrads = (p: tf.Tensor3D, dLogits: tf.Tensor3D): [tf.Tensor3D, tf.Tensor3D] => [tf.matMul(dLogits, state.qLand, true, false) as tf.Tensor3D, tf.matMul(p, dK3v, true, false) as tf.Tensor3D];
      const keptRowGrads: Array<[tf.Tensor3D, tf.Tensor3D]> = [];
      let dqLand = dqLandMix;
      state.k.forEach((kb, i) => {
        const [dqPart, ...rowGrads] = tf.tidy(() => {
          const [p, dLogits] = k3LogitsOf(i);
          return [tf.matMul(dLogits, kb) as tf.Tensor3D, ...(keepSmallNState ? k3RowGrads(p, dLogits) : [])];
        });
        dqLand = addInto(dqLand, dqPart!);
        if (rowGrads.length === 2) keptRowGrads.push(rowGrads as [tf.Tensor3D, tf.Tensor3D]);
      });
      // 4. Back through the landmark means, the value windows' overlaps, the q/k/v projection and LayerNorm.
      const dInputs: tf.Tensor2D[] = [];
      blocks.forEach((block, i) => {
        const [start, end] = block;
        const first = Math.max(start, pad);
        // dRows + a landmark's gradient / l on each row of its segment: broadcast over the segment (no tiled copy).
        const plusPerRow = (dRows: tf.Tensor3D, dLand: tf.Tensor3D): tf.Tensor3D =>
          tf.reshape(tf.add(tf.reshape(dRows, [heads, (end - start) / segment, segment, dimHead]), tf.expandDims(tf.div(heapSlice(dLand, [0, start / segment, 0], [heads, (end - start) / segment, dimHead]), segment), 2)), [heads, end - start, dimHead]) as tf.Tensor3D;
        const parts = tf.tidy(() => {
          const [dkK3, dvK3] = keptRowGrads[i] ?? k3RowGrads(...k3LogitsOf(i));
          const dq = plusPerRow(dQueries[i]!, dqLand);
          const dk = plusPerRow(dkK3, dKLand);
          let dv: tf.Tensor = dvK3;
          // Each value window's gradient overlaps its neighbours' blocks by `radius` rows.
          dWindows.forEach((dWindow, j) => {
            const windowStart = blocks[j]![0] - radius;
            // Rows past the block's end + radius are in the window only to round it to whole pieces: no gradient.
            const windowEnd = blocks[j]![1] + radius;
            const a = Math.max(windowStart, start);
            const b = Math.min(windowEnd, end);
            if (a >= b) return;
            dv = tf.add(dv, tf.pad(heapSlice(dWindow, [0, a - windowStart, 0], [heads, b - a, dimHead]), [[0, 0], [a - start, end - b], [0, 0]]));
          });
          if (first >= end) return [] as tf.Tensor[]; // all padding: no input rows
          const rowsIn = heapSlice(input, [first - pad, 0], [end - first, dim]) as tf.Tensor2D;
          const keep = (t: tf.Tensor): tf.Tensor3D => heapSlice(t, [0, first - start, 0], [heads, end - first, dimHead]) as tf.Tensor3D;
          const [dx, ...dVars] = projectBackward(rowsIn, keep(dq), keep(dk), keep(dv));
          // The residual: output row j is input row j plus the attention's row outStart + j.
          return [tf.add(dx!, heapSlice(upstream, [first - pad, 0], [end - first, dim])), ...dVars];
        });
        // Block i's tensors are done with; its value window's gradient still reaches into block i + 1.
        tf.dispose([dQueries[i]!, state.k[i]!, state.v[i]!, ...(keptRowGrads[i] ?? []), ...(i > 0 ? [dWindows[i - 1]!] : [])]);
        if (parts.length === 0) return;
        const [dx, ...dVars] = parts;
        dInputs.push(dx as tf.Tensor2D);
        inVars.forEach((variable, j) => accumulate(variable, dVars[j]!));
      });
      tf.dispose([dqLand, rowTerm, dK3v, dMixed]);
      const dInput = dInputs.length === 1 ? dInputs[0]! : tf.concat(dInputs, 0);
      if (dInputs.length > 1) tf.dispose(dInputs);
      return [dInput, ...[...inVars, ...outVars].map((variable) => grads.get(variable) ?? tf.zerosLike(variable))];
    } finally {
      tf.dispose([dKLand, dMixed, ...dQueries, ...dWindows]);
      release(state);
    }
  };

  const op = tf.customGrad((...args: Array<tf.Tensor | GradSave>) => {
    const input = args[0] as tf.Tensor2D;
    return {
      value: forward(input, args[args.length - 1] as GradSave), // off the tape: inside a custom op's forward nothing is recorded
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        // The saved tensors are the engine's (it disposes them after the backward pass): the state gets clones.
        const small = Object.fromEntries(SMALL_KEYS.map((key, i) => [key, tf.clone(saved[i + 1]!)])) as unknown as SmallState;
        const rest = saved.slice(1 + SMALL_KEYS.length).map((t) => tf.clone(t));
        const tapeLength = keepSmallNState ? 1 + 4 * pinvIterations : 0; // x, then Z, XZ, t1, t2 per iteration
        const projected = rest.slice(tapeLength) as tf.Tensor3D[]; // q, k, v of every block, under keepProjections
        const count = blocks.length;
        const kept = keepProjections ? { q: projected.slice(0, count), k: projected.slice(count, 2 * count), v: projected.slice(2 * count) } : undefined;
        return backward((Array.isArray(dy) ? dy[0] : dy) as tf.Tensor2D, saved[0] as tf.Tensor2D, small, tapeLength > 0 ? tapeFrom(rest.slice(0, tapeLength)) : undefined, kept);
      },
    };
  });
  return op(x, ...inVars, ...outVars) as tf.Tensor2D;
}
