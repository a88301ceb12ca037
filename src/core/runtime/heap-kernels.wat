;; Fused elementwise kernels that run straight on tfjs-backend-wasm's heap (its exported memory is imported here), in
;; 128-bit SIMD. Each replaces a chain of stock tfjs kernels that would pass over the same [N, E] arrays two to
;; twelve times: the backward of ReLU, tanh and sigmoid (tfjs: Step + Multiply; Square, Sub, Multiply; Sub, Multiply,
;; Multiply) and the whole Adam update of one parameter tensor (tfjs: about twelve kernels). Each of these performs
;; the float32 operations of the chain it replaces, in the same order, each rounded once (wasm has no implicit fused
;; multiply-add), so results are bit-identical to the stock kernels (test/core/runtime/heap-kernels.test.ts). The
;; exceptions are `exp`, a vectorised e^x in place of libm's scalar expf (within 2 ulp of it, not bit-identical), and
;; the depthwise convolution with its filter gradient, which replace a scalar stock kernel and a chain of windowed
;; products and sum in their own order.
;;
;; Pointers are byte offsets into the heap, counts are elements. Loops run four lanes at a time, then a scalar tail.
;; The binary the runtime loads is src/core/runtime/heap-kernels-wasm.ts, assembled from this file by
;; test/reference/assemble-heap-kernels.ts (the test fails when the two differ). docs/runtime.md#fused-heap-kernels.
(module
  (import "env" "memory" (memory 0))

  ;; out = dy · step(x), step(x) = 1 where x > 0, NaN where x is NaN, else 0 (tfjs: Multiply(dy, Cast(Step(x)))).
  (func (export "relu_grad") (param $dy i32) (param $x i32) (param $out i32) (param $n i32)
    (local $i i32) (local $end i32) (local $at i32) (local $xv v128) (local $step v128) (local $xs f32)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $vectors_done
      (loop $vectors
        (br_if $vectors_done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $xv (v128.load align=4 (i32.add (local.get $x) (local.get $at))))
        (local.set $step
          (v128.bitselect
            (v128.const f32x4 1 1 1 1)
            (v128.const f32x4 0 0 0 0)
            (f32x4.gt (local.get $xv) (v128.const f32x4 0 0 0 0))))
        (local.set $step (v128.bitselect (local.get $xv) (local.get $step) (f32x4.ne (local.get $xv) (local.get $xv))))
        (v128.store align=4 (i32.add (local.get $out) (local.get $at))
          (f32x4.mul (v128.load align=4 (i32.add (local.get $dy) (local.get $at))) (local.get $step)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vectors)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $xs (f32.load (i32.add (local.get $x) (local.get $at))))
        (f32.store (i32.add (local.get $out) (local.get $at))
          (f32.mul
            (f32.load (i32.add (local.get $dy) (local.get $at)))
            (select
              (local.get $xs)
              (select (f32.const 1) (f32.const 0) (f32.gt (local.get $xs) (f32.const 0)))
              (f32.ne (local.get $xs) (local.get $xs)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))

  ;; out = (1 − y·y) · dy, y = tanh(x) (tfjs: Multiply(Sub(1, Square(y)), dy)).
  (func (export "tanh_grad") (param $dy i32) (param $y i32) (param $out i32) (param $n i32)
    (local $i i32) (local $end i32) (local $at i32) (local $yv v128) (local $ys f32)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $vectors_done
      (loop $vectors
        (br_if $vectors_done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $yv (v128.load align=4 (i32.add (local.get $y) (local.get $at))))
        (v128.store align=4 (i32.add (local.get $out) (local.get $at))
          (f32x4.mul
            (f32x4.sub (v128.const f32x4 1 1 1 1) (f32x4.mul (local.get $yv) (local.get $yv)))
            (v128.load align=4 (i32.add (local.get $dy) (local.get $at)))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vectors)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $ys (f32.load (i32.add (local.get $y) (local.get $at))))
        (f32.store (i32.add (local.get $out) (local.get $at))
          (f32.mul
            (f32.sub (f32.const 1) (f32.mul (local.get $ys) (local.get $ys)))
            (f32.load (i32.add (local.get $dy) (local.get $at)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))

  ;; out = dy · (y · (1 − y)), y = sigmoid(x) (tfjs: Multiply(dy, Multiply(y, Sub(1, y)))).
  (func (export "sigmoid_grad") (param $dy i32) (param $y i32) (param $out i32) (param $n i32)
    (local $i i32) (local $end i32) (local $at i32) (local $yv v128) (local $ys f32)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $vectors_done
      (loop $vectors
        (br_if $vectors_done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $yv (v128.load align=4 (i32.add (local.get $y) (local.get $at))))
        (v128.store align=4 (i32.add (local.get $out) (local.get $at))
          (f32x4.mul
            (v128.load align=4 (i32.add (local.get $dy) (local.get $at)))
            (f32x4.mul (local.get $yv) (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $yv)))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vectors)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $ys (f32.load (i32.add (local.get $y) (local.get $at))))
        (f32.store (i32.add (local.get $out) (local.get $at))
          (f32.mul
            (f32.load (i32.add (local.get $dy) (local.get $at)))
            (f32.mul (local.get $ys) (f32.sub (f32.const 1) (local.get $ys)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))

  ;; out = e^x, float32, to within 2 ulp of the correctly rounded value in the normal range (the stock wasm Exp is
  ;; libm's scalar expf, about 20 ns per element; this is 4 lanes at a time). Cody–Waite reduction x = k·ln2 + r,
  ;; |r| ≤ ln2/2, with ln2 split into 0.693359375 + (−2.12194440e-4) so that k·0.693359375 is exact; e^r by the
  ;; degree-7 polynomial of Cephes' expf (1 + r + r²·P(r)); 2^k as two exact power-of-two factors 2^floor(k/2) · 2^(k − floor(k/2)),
  ;; each a normal float, so results that overflow become +inf and results below the normal range round as denormals or
  ;; to 0 through the last product. x is first clamped to [−104, 89] (e^x is 0 and +inf beyond, to float32); NaN stays NaN.
  (func (export "exp") (param $x i32) (param $out i32) (param $n i32)
    (local $i i32) (local $end i32) (local $at i32) (local $v v128) (local $k v128) (local $r v128) (local $p v128)
    (local $ki v128) (local $k1 v128) (local $t v128)
    (local $xs f32) (local $ks f32) (local $rs f32) (local $ps f32) (local $kis i32) (local $k1s i32)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $vectors_done
      (loop $vectors
        (br_if $vectors_done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $v
          ;; pmin(a, b) = b < a ? b : a and pmax(a, b) = a < b ? b : a: with x first, a NaN x stays NaN
          (f32x4.pmin
            (f32x4.pmax (v128.load align=4 (i32.add (local.get $x) (local.get $at))) (v128.const f32x4 -104 -104 -104 -104))
            (v128.const f32x4 89 89 89 89)))
        ;; k = nearest(x·log2 e) by adding 1.5·2^23, which rounds to an integer (ties to even, as f32x4.nearest); the
        ;; sum's low mantissa bits are then k itself, read below as an integer instead of a float-to-int conversion.
        (local.set $t
          (f32x4.add
            (f32x4.mul (local.get $v) (v128.const f32x4 1.44269504088896341 1.44269504088896341 1.44269504088896341 1.44269504088896341))
            (v128.const f32x4 12582912 12582912 12582912 12582912)))
        (local.set $k (f32x4.sub (local.get $t) (v128.const f32x4 12582912 12582912 12582912 12582912)))
        (local.set $r
          (f32x4.sub
            (f32x4.sub (local.get $v) (f32x4.mul (local.get $k) (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375)))
            (f32x4.mul (local.get $k) (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4))))
        (local.set $p (v128.const f32x4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1)))
        (local.set $p
          (f32x4.add
            (f32x4.add (f32x4.mul (local.get $p) (f32x4.mul (local.get $r) (local.get $r))) (local.get $r))
            (v128.const f32x4 1 1 1 1)))
        (local.set $ki (i32x4.sub (local.get $t) (v128.const i32x4 0x4b400000 0x4b400000 0x4b400000 0x4b400000)))
        (local.set $k1 (i32x4.shr_s (local.get $ki) (i32.const 1)))
        (v128.store align=4 (i32.add (local.get $out) (local.get $at))
          (f32x4.mul
            (f32x4.mul (local.get $p) (i32x4.shl (i32x4.add (local.get $k1) (v128.const i32x4 127 127 127 127)) (i32.const 23)))
            (i32x4.shl (i32x4.add (i32x4.sub (local.get $ki) (local.get $k1)) (v128.const i32x4 127 127 127 127)) (i32.const 23))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vectors)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $xs (f32.min (f32.max (f32.load (i32.add (local.get $x) (local.get $at))) (f32.const -104)) (f32.const 89)))
        (local.set $ks (f32.nearest (f32.mul (local.get $xs) (f32.const 1.44269504088896341))))
        (local.set $rs
          (f32.sub
            (f32.sub (local.get $xs) (f32.mul (local.get $ks) (f32.const 0.693359375)))
            (f32.mul (local.get $ks) (f32.const -2.12194440e-4))))
        (local.set $ps (f32.const 1.9875691500e-4))
        (local.set $ps (f32.add (f32.mul (local.get $ps) (local.get $rs)) (f32.const 1.3981999507e-3)))
        (local.set $ps (f32.add (f32.mul (local.get $ps) (local.get $rs)) (f32.const 8.3334519073e-3)))
        (local.set $ps (f32.add (f32.mul (local.get $ps) (local.get $rs)) (f32.const 4.1665795894e-2)))
        (local.set $ps (f32.add (f32.mul (local.get $ps) (local.get $rs)) (f32.const 1.6666665459e-1)))
        (local.set $ps (f32.add (f32.mul (local.get $ps) (local.get $rs)) (f32.const 5.0000001201e-1)))
        (local.set $ps
          (f32.add (f32.add (f32.mul (local.get $ps) (f32.mul (local.get $rs) (local.get $rs))) (local.get $rs)) (f32.const 1)))
        (local.set $kis (i32.trunc_sat_f32_s (local.get $ks)))
        (local.set $k1s (i32.shr_s (local.get $kis) (i32.const 1)))
        (f32.store (i32.add (local.get $out) (local.get $at))
          (f32.mul
            (f32.mul (local.get $ps) (f32.reinterpret_i32 (i32.shl (i32.add (local.get $k1s) (i32.const 127)) (i32.const 23))))
            (f32.reinterpret_i32 (i32.shl (i32.add (i32.sub (local.get $kis) (local.get $k1s)) (i32.const 127)) (i32.const 23)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))

  ;; One Adam/AdamW step of one parameter tensor, in place on p, m and v (src/core/engine/optim/adam.ts, whose tensor
  ;; expressions each line repeats):
  ;;   g ← g + p·wd                 only when $coupled ≠ 0 (L2 weight decay)
  ;;   m ← m·β1 + g·(1 − β1)
  ;;   v ← v·β2 + (g·g)·(1 − β2)
  ;;   p ← p·decay − (m / (√v / √bc2 + eps))·step     decay = 1 − lr·wd under AdamW, else exactly 1
  (func (export "adam") (param $p i32) (param $g i32) (param $m i32) (param $v i32) (param $n i32)
    (param $b1 f32) (param $omb1 f32) (param $b2 f32) (param $omb2 f32) (param $sqrtbc2 f32) (param $eps f32)
    (param $step f32) (param $coupled i32) (param $wd f32) (param $decay f32)
    (local $i i32) (local $end i32) (local $at i32)
    (local $pv v128) (local $gv v128) (local $mv v128) (local $vv v128)
    (local $ps f32) (local $gs f32) (local $ms f32) (local $vs f32)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $vectors_done
      (loop $vectors
        (br_if $vectors_done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $pv (v128.load align=4 (i32.add (local.get $p) (local.get $at))))
        (local.set $gv (v128.load align=4 (i32.add (local.get $g) (local.get $at))))
        (if (local.get $coupled)
          (then (local.set $gv (f32x4.add (local.get $gv) (f32x4.mul (local.get $pv) (f32x4.splat (local.get $wd)))))))
        (local.set $mv
          (f32x4.add
            (f32x4.mul (v128.load align=4 (i32.add (local.get $m) (local.get $at))) (f32x4.splat (local.get $b1)))
            (f32x4.mul (local.get $gv) (f32x4.splat (local.get $omb1)))))
        (local.set $vv
          (f32x4.add
            (f32x4.mul (v128.load align=4 (i32.add (local.get $v) (local.get $at))) (f32x4.splat (local.get $b2)))
            (f32x4.mul (f32x4.mul (local.get $gv) (local.get $gv)) (f32x4.splat (local.get $omb2)))))
        (v128.store align=4 (i32.add (local.get $m) (local.get $at)) (local.get $mv))
        (v128.store align=4 (i32.add (local.get $v) (local.get $at)) (local.get $vv))
        (v128.store align=4 (i32.add (local.get $p) (local.get $at))
          (f32x4.sub
            (f32x4.mul (local.get $pv) (f32x4.splat (local.get $decay)))
            (f32x4.mul
              (f32x4.div
                (local.get $mv)
                (f32x4.add (f32x4.div (f32x4.sqrt (local.get $vv)) (f32x4.splat (local.get $sqrtbc2))) (f32x4.splat (local.get $eps))))
              (f32x4.splat (local.get $step)))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vectors)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $ps (f32.load (i32.add (local.get $p) (local.get $at))))
        (local.set $gs (f32.load (i32.add (local.get $g) (local.get $at))))
        (if (local.get $coupled)
          (then (local.set $gs (f32.add (local.get $gs) (f32.mul (local.get $ps) (local.get $wd))))))
        (local.set $ms
          (f32.add
            (f32.mul (f32.load (i32.add (local.get $m) (local.get $at))) (local.get $b1))
            (f32.mul (local.get $gs) (local.get $omb1))))
        (local.set $vs
          (f32.add
            (f32.mul (f32.load (i32.add (local.get $v) (local.get $at))) (local.get $b2))
            (f32.mul (f32.mul (local.get $gs) (local.get $gs)) (local.get $omb2))))
        (f32.store (i32.add (local.get $m) (local.get $at)) (local.get $ms))
        (f32.store (i32.add (local.get $v) (local.get $at)) (local.get $vs))
        (f32.store (i32.add (local.get $p) (local.get $at))
          (f32.sub
            (f32.mul (local.get $ps) (local.get $decay))
            (f32.mul
              (f32.div
                (local.get $ms)
                (f32.add (f32.div (f32.sqrt (local.get $vs)) (local.get $sqrtbc2)) (local.get $eps)))
              (local.get $step))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))
  ;; Depthwise 2-D convolution of one image, stride 1, zero "same" padding, channel multiplier 1, NHWC:
  ;;   out[y, x, c] = sum over taps (i, j) inside the image of in[y + i - ph, x + j - pw, c] * w[i, j, c]
  ;; for in [H, W, C], w [kh, kw, C] (odd kh, kw; ph = (kh - 1) / 2, pw = (kw - 1) / 2), C a multiple of 4. The stock
  ;; wasm kernel is scalar (32 ms for TransMIL's 7 x 7 PPEG on a 32 x 32 x 512 grid); here each output pixel is
  ;; accumulated sixteen channels at a time in four registers over its taps, row by row (taps outside the image are
  ;; skipped, not multiplied by padding). The sum runs in tap order (i, then j), one rounding per product and per add,
  ;; so it is not bit-identical to the stock kernel's order.
  (func (export "depthwise_same")
    (param $in i32) (param $w i32) (param $out i32) (param $h i32) (param $wd i32) (param $c i32) (param $kh i32) (param $kw i32)
    (local $ph i32) (local $pw i32) (local $y i32) (local $x i32) (local $i0 i32) (local $i1 i32) (local $j0 i32)
    (local $j1 i32) (local $taps i32) (local $ch i32) (local $i i32) (local $j i32) (local $pixel i32) (local $inp i32)
    (local $wp i32) (local $outp i32) (local $acc0 v128) (local $acc1 v128) (local $acc2 v128)
    (local $acc3 v128)
    (local.set $ph (i32.shr_u (i32.sub (local.get $kh) (i32.const 1)) (i32.const 1)))
    (local.set $pw (i32.shr_u (i32.sub (local.get $kw) (i32.const 1)) (i32.const 1)))
    ;; bytes between horizontally neighbouring pixels
    (local.set $pixel (i32.shl (local.get $c) (i32.const 2)))
    (local.set $outp (local.get $out))
    (local.set $y (i32.const 0))
    (block $rows_done
      (loop $rows
        (br_if $rows_done (i32.ge_u (local.get $y) (local.get $h)))
        ;; taps i with 0 <= y + i - ph < H
        (local.set $i0 (select (i32.sub (local.get $ph) (local.get $y)) (i32.const 0) (i32.gt_s (local.get $ph) (local.get $y))))
        (local.set $i1 (i32.sub (i32.add (local.get $h) (local.get $ph)) (local.get $y)))
        (local.set $i1 (select (local.get $kh) (local.get $i1) (i32.gt_s (local.get $i1) (local.get $kh))))
        (local.set $x (i32.const 0))
        (block $cols_done
          (loop $cols
            (br_if $cols_done (i32.ge_u (local.get $x) (local.get $wd)))
            (local.set $j0 (select (i32.sub (local.get $pw) (local.get $x)) (i32.const 0) (i32.gt_s (local.get $pw) (local.get $x))))
            (local.set $j1 (i32.sub (i32.add (local.get $wd) (local.get $pw)) (local.get $x)))
            (local.set $j1 (select (local.get $kw) (local.get $j1) (i32.gt_s (local.get $j1) (local.get $kw))))
            (local.set $taps (i32.sub (local.get $j1) (local.get $j0)))
            (local.set $ch (i32.const 0))
            ;; sixteen channels per block (four accumulators), then four at a time for the rest
            (block $wide_done
              (loop $wide
                (br_if $wide_done (i32.gt_u (i32.add (local.get $ch) (i32.const 64)) (local.get $pixel)))
                (local.set $acc0 (v128.const f32x4 0 0 0 0))
                (local.set $acc1 (v128.const f32x4 0 0 0 0))
                (local.set $acc2 (v128.const f32x4 0 0 0 0))
                (local.set $acc3 (v128.const f32x4 0 0 0 0))
                (local.set $i (local.get $i0))
                (block $wide_rows_done
                  (loop $wide_rows
                    (br_if $wide_rows_done (i32.ge_s (local.get $i) (local.get $i1)))
                    ;; in[y + i - ph, x + j0 - pw, ch] and w[i, j0, ch], as byte offsets
                    (local.set $inp
                      (i32.add (i32.add (local.get $in) (local.get $ch))
                        (i32.mul (local.get $pixel)
                          (i32.add
                            (i32.mul (i32.sub (i32.add (local.get $y) (local.get $i)) (local.get $ph)) (local.get $wd))
                            (i32.sub (i32.add (local.get $x) (local.get $j0)) (local.get $pw))))))
                    (local.set $wp
                      (i32.add (i32.add (local.get $w) (local.get $ch))
                        (i32.mul (local.get $pixel) (i32.add (i32.mul (local.get $i) (local.get $kw)) (local.get $j0)))))
                    (local.set $j (local.get $taps))
                    (block $wide_taps_done
                      (loop $wide_taps
                        (br_if $wide_taps_done (i32.eqz (local.get $j)))
                        (local.set $acc0
                          (f32x4.add (local.get $acc0)
                            (f32x4.mul (v128.load offset=0 align=4 (local.get $inp)) (v128.load offset=0 align=4 (local.get $wp)))))
                        (local.set $acc1
                          (f32x4.add (local.get $acc1)
                            (f32x4.mul (v128.load offset=16 align=4 (local.get $inp)) (v128.load offset=16 align=4 (local.get $wp)))))
                        (local.set $acc2
                          (f32x4.add (local.get $acc2)
                            (f32x4.mul (v128.load offset=32 align=4 (local.get $inp)) (v128.load offset=32 align=4 (local.get $wp)))))
                        (local.set $acc3
                          (f32x4.add (local.get $acc3)
                            (f32x4.mul (v128.load offset=48 align=4 (local.get $inp)) (v128.load offset=48 align=4 (local.get $wp)))))
                        (local.set $inp (i32.add (local.get $inp) (local.get $pixel)))
                        (local.set $wp (i32.add (local.get $wp) (local.get $pixel)))
                        (local.set $j (i32.sub (local.get $j) (i32.const 1)))
                        (br $wide_taps)))
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br $wide_rows)))
                (v128.store offset=0 align=4 (i32.add (local.get $outp) (local.get $ch)) (local.get $acc0))
                (v128.store offset=16 align=4 (i32.add (local.get $outp) (local.get $ch)) (local.get $acc1))
                (v128.store offset=32 align=4 (i32.add (local.get $outp) (local.get $ch)) (local.get $acc2))
                (v128.store offset=48 align=4 (i32.add (local.get $outp) (local.get $ch)) (local.get $acc3))
                (local.set $ch (i32.add (local.get $ch) (i32.const 64)))
                (br $wide)))
            (block $narrow_done
              (loop $narrow
                (br_if $narrow_done (i32.gt_u (i32.add (local.get $ch) (i32.const 16)) (local.get $pixel)))
                (local.set $acc0 (v128.const f32x4 0 0 0 0))
                (local.set $i (local.get $i0))
                (block $narrow_rows_done
                  (loop $narrow_rows
                    (br_if $narrow_rows_done (i32.ge_s (local.get $i) (local.get $i1)))
                    ;; in[y + i - ph, x + j0 - pw, ch] and w[i, j0, ch], as byte offsets
                    (local.set $inp
                      (i32.add (i32.add (local.get $in) (local.get $ch))
                        (i32.mul (local.get $pixel)
                          (i32.add
                            (i32.mul (i32.sub (i32.add (local.get $y) (local.get $i)) (local.get $ph)) (local.get $wd))
                            (i32.sub (i32.add (local.get $x) (local.get $j0)) (local.get $pw))))))
                    (local.set $wp
                      (i32.add (i32.add (local.get $w) (local.get $ch))
                        (i32.mul (local.get $pixel) (i32.add (i32.mul (local.get $i) (local.get $kw)) (local.get $j0)))))
                    (local.set $j (local.get $taps))
                    (block $narrow_taps_done
                      (loop $narrow_taps
                        (br_if $narrow_taps_done (i32.eqz (local.get $j)))
                        (local.set $acc0
                          (f32x4.add (local.get $acc0)
                            (f32x4.mul (v128.load offset=0 align=4 (local.get $inp)) (v128.load offset=0 align=4 (local.get $wp)))))
                        (local.set $inp (i32.add (local.get $inp) (local.get $pixel)))
                        (local.set $wp (i32.add (local.get $wp) (local.get $pixel)))
                        (local.set $j (i32.sub (local.get $j) (i32.const 1)))
                        (br $narrow_taps)))
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br $narrow_rows)))
                (v128.store offset=0 align=4 (i32.add (local.get $outp) (local.get $ch)) (local.get $acc0))
                (local.set $ch (i32.add (local.get $ch) (i32.const 16)))
                (br $narrow)))
            (local.set $outp (i32.add (local.get $outp) (local.get $pixel)))
            (local.set $x (i32.add (local.get $x) (i32.const 1)))
            (br $cols)))
        (local.set $y (i32.add (local.get $y) (i32.const 1)))
        (br $rows))))
  ;; The filter gradient of depthwise_same for one image:
  ;;   dw[i, j, c] = sum over output pixels (y, x) whose tap (i, j) lies inside the image of in[y + i - ph, x + j - pw, c] * dy[y, x, c]
  ;; written (not added) to dw [kh, kw, C]. Blocks of sixteen channels are the outer loop and output rows the next:
  ;; one row's work reads kh input rows and one dy row of the block (64 bytes per pixel), which stay in cache, and the
  ;; block's kh * kw accumulators (64 bytes each) live in dw itself. Sums run over y, then x.
  (func (export "depthwise_filter_grad")
    (param $in i32) (param $dy i32) (param $dw i32) (param $h i32) (param $wd i32) (param $c i32) (param $kh i32) (param $kw i32)
    (local $ph i32) (local $pw i32) (local $pixel i32) (local $ch i32) (local $tap i32) (local $i i32) (local $i1 i32)
    (local $j i32) (local $x0 i32) (local $x1 i32) (local $y i32) (local $x i32) (local $inp i32) (local $dp i32)
    (local $dwp i32) (local $acc0 v128) (local $acc1 v128) (local $acc2 v128) (local $acc3 v128)
    (local.set $ph (i32.shr_u (i32.sub (local.get $kh) (i32.const 1)) (i32.const 1)))
    (local.set $pw (i32.shr_u (i32.sub (local.get $kw) (i32.const 1)) (i32.const 1)))
    (local.set $pixel (i32.shl (local.get $c) (i32.const 2)))
    ;; sixteen channels per block (four accumulators), then four at a time for the rest
    (block $gwide_done
      (loop $gwide
        (br_if $gwide_done (i32.gt_u (i32.add (local.get $ch) (i32.const 64)) (local.get $pixel)))
        ;; dw[:, :, block] = 0
        (local.set $tap (i32.const 0))
        (block $gwide_zero_done
          (loop $gwide_zero
            (br_if $gwide_zero_done (i32.ge_u (local.get $tap) (i32.mul (local.get $kh) (local.get $kw))))
            (local.set $dwp (i32.add (i32.add (local.get $dw) (local.get $ch)) (i32.mul (local.get $tap) (local.get $pixel))))
            (v128.store offset=0 align=4 (local.get $dwp) (v128.const f32x4 0 0 0 0))
            (v128.store offset=16 align=4 (local.get $dwp) (v128.const f32x4 0 0 0 0))
            (v128.store offset=32 align=4 (local.get $dwp) (v128.const f32x4 0 0 0 0))
            (v128.store offset=48 align=4 (local.get $dwp) (v128.const f32x4 0 0 0 0))
            (local.set $tap (i32.add (local.get $tap) (i32.const 1)))
            (br $gwide_zero)))
        (local.set $y (i32.const 0))
        (block $gwide_rows_done
          (loop $gwide_rows
            (br_if $gwide_rows_done (i32.ge_u (local.get $y) (local.get $h)))
            ;; tap rows i with 0 <= y + i - ph < H
            (local.set $i (select (i32.sub (local.get $ph) (local.get $y)) (i32.const 0) (i32.gt_s (local.get $ph) (local.get $y))))
            (local.set $i1 (i32.sub (i32.add (local.get $h) (local.get $ph)) (local.get $y)))
            (local.set $i1 (select (local.get $kh) (local.get $i1) (i32.gt_s (local.get $i1) (local.get $kh))))
            (block $gwide_taprows_done
              (loop $gwide_taprows
                (br_if $gwide_taprows_done (i32.ge_s (local.get $i) (local.get $i1)))
                (local.set $j (i32.const 0))
                (block $gwide_tapcols_done
                  (loop $gwide_tapcols
                    (br_if $gwide_tapcols_done (i32.ge_u (local.get $j) (local.get $kw)))
                    ;; output columns x with 0 <= x + j - pw < W
                    (local.set $x0 (select (i32.sub (local.get $pw) (local.get $j)) (i32.const 0) (i32.gt_s (local.get $pw) (local.get $j))))
                    (local.set $x1 (i32.sub (i32.add (local.get $wd) (local.get $pw)) (local.get $j)))
                    (local.set $x1 (select (local.get $wd) (local.get $x1) (i32.gt_s (local.get $x1) (local.get $wd))))
                    ;; in[y + i - ph, x0 + j - pw, ch], dy[y, x0, ch] and dw[i, j, ch], as byte offsets
                    (local.set $inp
                      (i32.add (i32.add (local.get $in) (local.get $ch))
                        (i32.mul (local.get $pixel)
                          (i32.add
                            (i32.mul (i32.sub (i32.add (local.get $y) (local.get $i)) (local.get $ph)) (local.get $wd))
                            (i32.sub (i32.add (local.get $x0) (local.get $j)) (local.get $pw))))))
                    (local.set $dp
                      (i32.add (i32.add (local.get $dy) (local.get $ch))
                        (i32.mul (local.get $pixel) (i32.add (i32.mul (local.get $y) (local.get $wd)) (local.get $x0)))))
                    (local.set $dwp
                      (i32.add (i32.add (local.get $dw) (local.get $ch))
                        (i32.mul (local.get $pixel) (i32.add (i32.mul (local.get $i) (local.get $kw)) (local.get $j)))))
                    (local.set $acc0 (v128.load offset=0 align=4 (local.get $dwp)))
                    (local.set $acc1 (v128.load offset=16 align=4 (local.get $dwp)))
                    (local.set $acc2 (v128.load offset=32 align=4 (local.get $dwp)))
                    (local.set $acc3 (v128.load offset=48 align=4 (local.get $dwp)))
                    (local.set $x (i32.sub (local.get $x1) (local.get $x0)))
                    (block $gwide_cols_done
                      (loop $gwide_cols
                        (br_if $gwide_cols_done (i32.le_s (local.get $x) (i32.const 0)))
                        (local.set $acc0
                          (f32x4.add (local.get $acc0)
                            (f32x4.mul (v128.load offset=0 align=4 (local.get $inp)) (v128.load offset=0 align=4 (local.get $dp)))))
                        (local.set $acc1
                          (f32x4.add (local.get $acc1)
                            (f32x4.mul (v128.load offset=16 align=4 (local.get $inp)) (v128.load offset=16 align=4 (local.get $dp)))))
                        (local.set $acc2
                          (f32x4.add (local.get $acc2)
                            (f32x4.mul (v128.load offset=32 align=4 (local.get $inp)) (v128.load offset=32 align=4 (local.get $dp)))))
                        (local.set $acc3
                          (f32x4.add (local.get $acc3)
                            (f32x4.mul (v128.load offset=48 align=4 (local.get $inp)) (v128.load offset=48 align=4 (local.get $dp)))))
                        (local.set $inp (i32.add (local.get $inp) (local.get $pixel)))
                        (local.set $dp (i32.add (local.get $dp) (local.get $pixel)))
                        (local.set $x (i32.sub (local.get $x) (i32.const 1)))
                        (br $gwide_cols)))
                    (v128.store offset=0 align=4 (local.get $dwp) (local.get $acc0))
                    (v128.store offset=16 align=4 (local.get $dwp) (local.get $acc1))
                    (v128.store offset=32 align=4 (local.get $dwp) (local.get $acc2))
                    (v128.store offset=48 align=4 (local.get $dwp) (local.get $acc3))
                    (local.set $j (i32.add (local.get $j) (i32.const 1)))
                    (br $gwide_tapcols)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $gwide_taprows)))
            (local.set $y (i32.add (local.get $y) (i32.const 1)))
            (br $gwide_rows)))
        (local.set $ch (i32.add (local.get $ch) (i32.const 64)))
        (br $gwide)))
    (block $gnarrow_done
      (loop $gnarrow
        (br_if $gnarrow_done (i32.gt_u (i32.add (local.get $ch) (i32.const 16)) (local.get $pixel)))
        ;; dw[:, :, block] = 0
        (local.set $tap (i32.const 0))
        (block $gnarrow_zero_done
          (loop $gnarrow_zero
            (br_if $gnarrow_zero_done (i32.ge_u (local.get $tap) (i32.mul (local.get $kh) (local.get $kw))))
            (local.set $dwp (i32.add (i32.add (local.get $dw) (local.get $ch)) (i32.mul (local.get $tap) (local.get $pixel))))
            (v128.store offset=0 align=4 (local.get $dwp) (v128.const f32x4 0 0 0 0))
            (local.set $tap (i32.add (local.get $tap) (i32.const 1)))
            (br $gnarrow_zero)))
        (local.set $y (i32.const 0))
        (block $gnarrow_rows_done
          (loop $gnarrow_rows
            (br_if $gnarrow_rows_done (i32.ge_u (local.get $y) (local.get $h)))
            ;; tap rows i with 0 <= y + i - ph < H
            (local.set $i (select (i32.sub (local.get $ph) (local.get $y)) (i32.const 0) (i32.gt_s (local.get $ph) (local.get $y))))
            (local.set $i1 (i32.sub (i32.add (local.get $h) (local.get $ph)) (local.get $y)))
            (local.set $i1 (select (local.get $kh) (local.get $i1) (i32.gt_s (local.get $i1) (local.get $kh))))
            (block $gnarrow_taprows_done
              (loop $gnarrow_taprows
                (br_if $gnarrow_taprows_done (i32.ge_s (local.get $i) (local.get $i1)))
                (local.set $j (i32.const 0))
                (block $gnarrow_tapcols_done
                  (loop $gnarrow_tapcols
                    (br_if $gnarrow_tapcols_done (i32.ge_u (local.get $j) (local.get $kw)))
                    ;; output columns x with 0 <= x + j - pw < W
                    (local.set $x0 (select (i32.sub (local.get $pw) (local.get $j)) (i32.const 0) (i32.gt_s (local.get $pw) (local.get $j))))
                    (local.set $x1 (i32.sub (i32.add (local.get $wd) (local.get $pw)) (local.get $j)))
                    (local.set $x1 (select (local.get $wd) (local.get $x1) (i32.gt_s (local.get $x1) (local.get $wd))))
                    ;; in[y + i - ph, x0 + j - pw, ch], dy[y, x0, ch] and dw[i, j, ch], as byte offsets
                    (local.set $inp
                      (i32.add (i32.add (local.get $in) (local.get $ch))
                        (i32.mul (local.get $pixel)
                          (i32.add
                            (i32.mul (i32.sub (i32.add (local.get $y) (local.get $i)) (local.get $ph)) (local.get $wd))
                            (i32.sub (i32.add (local.get $x0) (local.get $j)) (local.get $pw))))))
                    (local.set $dp
                      (i32.add (i32.add (local.get $dy) (local.get $ch))
                        (i32.mul (local.get $pixel) (i32.add (i32.mul (local.get $y) (local.get $wd)) (local.get $x0)))))
                    (local.set $dwp
                      (i32.add (i32.add (local.get $dw) (local.get $ch))
                        (i32.mul (local.get $pixel) (i32.add (i32.mul (local.get $i) (local.get $kw)) (local.get $j)))))
                    (local.set $acc0 (v128.load offset=0 align=4 (local.get $dwp)))
                    (local.set $x (i32.sub (local.get $x1) (local.get $x0)))
                    (block $gnarrow_cols_done
                      (loop $gnarrow_cols
                        (br_if $gnarrow_cols_done (i32.le_s (local.get $x) (i32.const 0)))
                        (local.set $acc0
                          (f32x4.add (local.get $acc0)
                            (f32x4.mul (v128.load offset=0 align=4 (local.get $inp)) (v128.load offset=0 align=4 (local.get $dp)))))
                        (local.set $inp (i32.add (local.get $inp) (local.get $pixel)))
                        (local.set $dp (i32.add (local.get $dp) (local.get $pixel)))
                        (local.set $x (i32.sub (local.get $x) (i32.const 1)))
                        (br $gnarrow_cols)))
                    (v128.store offset=0 align=4 (local.get $dwp) (local.get $acc0))
                    (local.set $j (i32.add (local.get $j) (i32.const 1)))
                    (br $gnarrow_tapcols)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $gnarrow_taprows)))
            (local.set $y (i32.add (local.get $y) (i32.const 1)))
            (br $gnarrow_rows)))
        (local.set $ch (i32.add (local.get $ch) (i32.const 16)))
        (br $gnarrow)))
  )
)
