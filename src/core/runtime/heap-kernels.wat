;; Fused elementwise kernels that run straight on tfjs-backend-wasm's heap (its exported memory is imported here), in
;; 128-bit SIMD. Each replaces a chain of stock tfjs kernels that would pass over the same [N, E] arrays two to
;; twelve times: the backward of ReLU, tanh and sigmoid (tfjs: Step + Multiply; Square, Sub, Multiply; Sub, Multiply,
;; Multiply) and the whole Adam update of one parameter tensor (tfjs: about twelve kernels). Each of these performs
;; the float32 operations of the chain it replaces, in the same order, each rounded once (wasm has no implicit fused
;; multiply-add), so results are bit-identical to the stock kernels (test/core/runtime/heap-kernels.test.ts). The one
;; exception is `exp`, a vectorised e^x in place of libm's scalar expf: within 2 ulp of it, not bit-identical.
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
    (local $ki v128) (local $k1 v128)
    (local $xs f32) (local $ks f32) (local $rs f32) (local $ps f32) (local $kis i32) (local $k1s i32)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $vectors_done
      (loop $vectors
        (br_if $vectors_done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $v
          (f32x4.min
            (f32x4.max (v128.load align=4 (i32.add (local.get $x) (local.get $at))) (v128.const f32x4 -104 -104 -104 -104))
            (v128.const f32x4 89 89 89 89)))
        (local.set $k (f32x4.nearest (f32x4.mul (local.get $v) (v128.const f32x4 1.44269504088896341 1.44269504088896341 1.44269504088896341 1.44269504088896341))))
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
        (local.set $ki (i32x4.trunc_sat_f32x4_s (local.get $k)))
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
)
