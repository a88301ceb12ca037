#!/usr/bin/python3
"""PyTorch reference of aggregator/transmil (docs/methods/transmil.md#forward-pass, docs/methods/transmil.md#nystrom-attention), written from the spec: fc1 + ReLU,
square padding by repeating the first tokens, class token, two TransLayers x + NystromAttention(LN(x)) around the
PPEG positional encoder (three separate depthwise convs plus identity), final LayerNorm, class-token readout, _fc2.
Nyström: left zero padding to a multiple of m, segment-mean landmarks, iterative pseudo-inverse with global
scaling, value-residual depthwise conv (k x 1), and both output alignments (0.0.9 first rows / fixed last rows).
Keys follow TransMIL's models/TransMIL.py and nystrom-attention.

Run: /usr/bin/python3 test/reference/transmil.py
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo_common import grads_of, inputs, randomize, save_case

torch.set_default_dtype(torch.float64)


def pinv(x, iters):
    a = x.abs()
    scale = a.sum(dim=-1).max() * a.sum(dim=-2).max()  # global over heads
    z = x.transpose(-1, -2) / scale
    eye = torch.eye(x.shape[-1])[None]
    for _ in range(iters):
        xz = x @ z
        z = 0.25 * z @ (13 * eye - xz @ (15 * eye - xz @ (7 * eye - xz)))
    return z


class NystromAttention(nn.Module):
    def __init__(self, dim, heads, dim_head, landmarks, iters, kernel, pinned):
        super().__init__()
        self.h, self.d, self.m, self.iters, self.pinned = heads, dim_head, landmarks, iters, pinned
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(0.0))
        self.res_conv = nn.Conv2d(heads, heads, (kernel, 1), padding=(kernel // 2, 0), groups=heads, bias=False)

    def forward(self, x):  # 1 x n x dim
        n = x.shape[1]
        pad = (self.m - n % self.m) % self.m
        if pad:
            x = F.pad(x, (0, 0, pad, 0))  # zeros on the left of the sequence
        total = n + pad
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = [t.reshape(1, total, self.h, self.d).transpose(1, 2) for t in (q, k, v)]  # 1 x h x L' x d
        q = q * self.d ** -0.5
        l = math.ceil(n / self.m)
        q_land = q.reshape(1, self.h, self.m, l, self.d).sum(3) / l
        k_land = k.reshape(1, self.h, self.m, l, self.d).sum(3) / l
        attn1 = (q @ k_land.transpose(-1, -2)).softmax(-1)
        attn2 = (q_land @ k_land.transpose(-1, -2)).softmax(-1)
        attn3 = (q_land @ k.transpose(-1, -2)).softmax(-1)
        out = (attn1 @ pinv(attn2, self.iters)) @ (attn3 @ v) + self.res_conv(v)
        out = self.to_out(out.transpose(1, 2).reshape(1, total, self.h * self.d))
        return out[:, :n] if self.pinned else out[:, -n:]


class TransLayer(nn.Module):
    def __init__(self, dim, **kw):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = NystromAttention(dim, **kw)

    def forward(self, x):
        return x + self.attn(self.norm(x))


class PPEG(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 7, 1, 3, groups=dim)
        self.proj1 = nn.Conv2d(dim, dim, 5, 1, 2, groups=dim)
        self.proj2 = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x, side):
        cls, feat = x[:, :1], x[:, 1:]
        grid = feat.transpose(1, 2).reshape(1, feat.shape[2], side, side)
        mixed = self.proj(grid) + grid + self.proj1(grid) + self.proj2(grid)
        return torch.cat([cls, mixed.flatten(2).transpose(1, 2)], dim=1)


class TransMIL(nn.Module):
    def __init__(self, d, e, c, heads, landmarks, iters, kernel, pinned):
        super().__init__()
        kw = dict(heads=heads, dim_head=e // heads, landmarks=landmarks, iters=iters, kernel=kernel, pinned=pinned)
        self.pos_layer = PPEG(e)
        self._fc1 = nn.Sequential(nn.Linear(d, e), nn.ReLU())
        self.cls_token = nn.Parameter(torch.randn(1, 1, e))
        self.layer1 = TransLayer(e, **kw)
        self.layer2 = TransLayer(e, **kw)
        self.norm = nn.LayerNorm(e)
        self._fc2 = nn.Linear(e, c)

    def forward(self, x):
        h = self._fc1(x)[None]  # 1 x N x E
        n = h.shape[1]
        side = math.ceil(math.sqrt(n))
        h = torch.cat([h, h[:, :side * side - n]], dim=1)  # repeat the first tokens
        h = torch.cat([self.cls_token, h], dim=1)
        h = self.layer1(h)
        h = self.pos_layer(h, side)
        h = self.layer2(h)
        cls = self.norm(h)[:, 0]
        return self._fc2(cls), cls


CASES = [
    dict(name='transmil', d=12, e=16, c=2, n=10, heads=2, landmarks=4, kernel=33, pinned=True, label=1, seed=41),
    dict(name='transmil-fixed', d=12, e=16, c=3, n=14, heads=2, landmarks=4, kernel=5, pinned=False, label=0, seed=42),
    dict(name='transmil-no-pad', d=12, e=16, c=2, n=8, heads=4, landmarks=5, kernel=33, pinned=True, label=0, seed=43),
]


def build(case):
    """The case's model (untrained); roundtrip_check.py loads milkit's export into it."""
    return TransMIL(case['d'], case['e'], case['c'], case['heads'], case['landmarks'], 6, case['kernel'], case['pinned'])


def main():
    for case in CASES:
        model = build(case)
        randomize(model, case['seed'])
        with torch.no_grad():  # LayerNorm gains near 1, as after initialisation
            for name, p in model.named_parameters():
                if name.endswith('norm.weight'):
                    p.add_(1.0)
        x = inputs(case['n'], case['d'], case['seed'] + 100)
        model.eval()
        with torch.no_grad():
            logits, cls = model(x)
        model.train()
        model.zero_grad()
        t_logits, _ = model(x)
        loss = F.cross_entropy(t_logits, torch.tensor([case['label']]))
        loss.backward()
        spec = {
            'generator': 'test/reference/transmil.py', 'seed': case['seed'], 'inputDim': case['d'], 'numClasses': case['c'], 'label': case['label'],
            'aggregator': {'name': 'transmil', 'embedDim': case['e'], 'heads': case['heads'], 'landmarks': case['landmarks'], 'pinvIterations': 6,
                           'residualKernel': case['kernel'], 'attnDropout': 0, 'nystromAlignment': 'pinned-0.0.9' if case['pinned'] else 'fixed'},
            'classifier': {'name': 'linear'},
            'losses': {'bag': {'name': 'cross-entropy', 'weight': 1}},
        }
        save_case(case['name'], model, spec, {
            'x': x, 'eval.logits': logits, 'eval.embedding': cls, 'train.loss': loss.detach().reshape(1), **grads_of(model),
        })


if __name__ == '__main__':
    main()
