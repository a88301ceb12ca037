#!/usr/bin/python3
"""PyTorch reference of one MHIM-MIL training step (strategy/mhim), written from docs/methods/mhim-mil.md.

For each case: a teacher and a student with DIFFERENT weights (the teacher as an EMA copy would be after some
steps), the teacher scores every instance on the full bag (v1: attention, per head for TransMIL with vote fusion;
DSMIL: max instance logit; v2: class-aware instance probability), random / low / high masking with the
permutations of the random draws fixed here and injected into milkit (io.injected mhim.random, mhim.high,
mhim.grn), union, the student on the kept rows in ascending order (v2: through the GRN), the configured bag loss
plus alpha * the consistency loss, and the gradient of every student parameter (and of the GRN's).
Dropout runs at the published rates (projection 0.25, Nystrom output 0.1, GRN attention and output 0.1; the
teacher in training mode as the original runs it). Every keep mask is drawn here from a seeded generator and stored
in the case file as dropout.<i>, in the order milkit's dropout calls consume them (milkit's withDropoutMasks): the
teacher's calls, then the student's, where milkit projects only the rows it uses (the kept rows; with the GRN the
recycled rows, then the GRN, then the passed rows) and so receives those rows of the [N, E] projection mask applied
here to all N instances. The step is therefore deterministic given the stored draws.

Files per case in test/reference/fixtures/: mhim-<case>.teacher.safetensors, mhim-<case>.student.safetensors
(state_dicts under the original torch keys), mhim-<case>.case.safetensors (inputs, draws, expected numbers and
gradients; the JSON spec in __metadata__.case). Checked by test/plugins/strategies/mhim-reference.test.ts.

Run: /usr/bin/python3 test/reference/mhim_reference.py
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

import transmil as tm
from dsmil import BClassifier, FCLayer
from zoo_common import FIXTURES, f32, grads_of, inputs, randomize, state_dict_f32, write_safetensors

torch.set_default_dtype(torch.float64)
GENERATOR = 'test/reference/mhim_reference.py'
PROJECT_DROPOUT, NYSTROM_DROPOUT, GRN_DROPOUT = 0.25, 0.1, 0.1  # published rates (docs/methods/mhim-mil.md#networks)


class MaskBank:
    """Draws every dropout keep mask from one seeded generator and records (phase, tag, mask) in call order."""

    def __init__(self):
        self.reset(0)

    def reset(self, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.phase = 'teacher'
        self.records = []

    def apply(self, tag, x, rate):
        if rate <= 0:
            return x
        keep = (torch.rand(x.shape, generator=self.gen, dtype=torch.float64) < 1 - rate).to(x.dtype)
        self.records.append((self.phase, tag, keep))
        return x * keep / (1 - rate)

    def of(self, phase, tag=None):
        return [m for (p, t, m) in self.records if p == phase and (tag is None or t == tag)]


BANK = MaskBank()


class MaskedDropout(nn.Module):
    """nn.Dropout with its mask from BANK (tag names the call site for the milkit-order list)."""

    def __init__(self, rate, tag):
        super().__init__()
        self.rate, self.tag = rate, tag

    def forward(self, x):
        return BANK.apply(self.tag, x, self.rate)


# ---------------------------------------------------------------- students: project(x) -> h, pool(h) -> outputs

class Abmil(nn.Module):
    """MHIM's attn baseline: ReLU projection, ungated bias-free attention, linear predictor."""

    def __init__(self, d, e, l, c):
        super().__init__()
        self.feature_extractor_part2 = nn.Sequential(nn.Linear(d, e))
        self.attention = nn.Sequential(nn.Linear(e, l, bias=False), nn.ReLU(), nn.Linear(l, 1, bias=False))
        self.classifier = nn.Sequential(nn.Linear(e, c))

    def project(self, x):
        return BANK.apply('project', torch.relu(self.feature_extractor_part2(x)), PROJECT_DROPOUT)

    def pool(self, h):
        a = F.softmax(self.attention(h).t(), dim=1)  # 1 x M
        f = a @ h
        return {'feature': f, 'logits': self.classifier(f), 'attention': a}

    def predict(self, u):  # W u without the bias (v2 class-aware score)
        return u @ self.classifier[0].weight.t()


class ObservedNystrom(tm.NystromAttention):
    """Nystrom attention that also keeps the class token's attention row per head and the weighted values."""

    def forward(self, x):
        n = x.shape[1]
        pad = (self.m - n % self.m) % self.m
        if pad:
            x = F.pad(x, (0, 0, pad, 0))
        total = n + pad
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = [t.reshape(1, total, self.h, self.d).transpose(1, 2) for t in (q, k, v)]
        q = q * self.d ** -0.5
        seg = math.ceil(n / self.m)
        q_land = q.reshape(1, self.h, self.m, seg, self.d).sum(3) / seg
        k_land = k.reshape(1, self.h, self.m, seg, self.d).sum(3) / seg
        attn1 = (q @ k_land.transpose(-1, -2)).softmax(-1)
        attn2 = (q_land @ k_land.transpose(-1, -2)).softmax(-1)
        attn3 = (q_land @ k.transpose(-1, -2)).softmax(-1)
        inv = tm.pinv(attn2, self.iters)
        full = (attn1 @ inv) @ attn3  # 1 x h x L' x L'
        row = full[0, :, pad]  # h x L': the class token's row
        self.row = row[:, pad:]  # h x n
        if self.observe_weighted:  # v2's class-aware path: its own pass through to_out and its dropout, first
            weighted = (row[:, :, None] * v[0]).transpose(0, 1).reshape(total, self.h * self.d)  # L' x inner
            self.weighted = self.to_out(weighted)[pad:]  # n x dim
        out = (attn1 @ inv) @ (attn3 @ v) + self.res_conv(v)
        out = self.to_out(out.transpose(1, 2).reshape(1, total, self.h * self.d))
        return out[:, :n] if self.pinned else out[:, -n:]


class Transmil(nn.Module):
    """MHIM's selfattn baseline: GELU projection, no square padding, PPEG padding inside, fixed Nystrom alignment."""

    def __init__(self, d, e, c, heads, landmarks, kernel, observe_weighted):
        super().__init__()
        kw = dict(heads=heads, dim_head=e // heads, landmarks=landmarks, iters=6, kernel=kernel, pinned=False)
        self.pos_layer = tm.PPEG(e)
        self._fc1 = nn.Sequential(nn.Linear(d, e))
        self.cls_token = nn.Parameter(torch.randn(1, 1, e))
        self.layer1 = tm.TransLayer(e, **kw)
        self.layer1.attn = ObservedNystrom(e, **kw)
        self.layer1.attn.observe_weighted = observe_weighted
        self.layer2 = tm.TransLayer(e, **kw)
        for layer in (self.layer1, self.layer2):
            layer.attn.to_out[1] = MaskedDropout(NYSTROM_DROPOUT, 'pool')
        self.norm = nn.LayerNorm(e)
        self._fc2 = nn.Linear(e, c)

    def project(self, x):
        return BANK.apply('project', F.gelu(self._fc1(x)), PROJECT_DROPOUT)

    def ppeg_inside(self, tokens):
        n = tokens.shape[1] - 1
        side = math.ceil(math.sqrt(n))
        grid = max(side, 7)
        inst = tokens[:, 1:]
        parts = [tokens[:, :1], inst, inst[:, :side * side - n]]
        if grid * grid > side * side:
            parts.append(torch.zeros(1, grid * grid - side * side, tokens.shape[2]))
        mixed = self.pos_layer(torch.cat(parts, dim=1), grid)
        return mixed[:, :1 + n]

    def pool(self, h):
        t = torch.cat([self.cls_token, h[None]], dim=1)
        t = self.layer1(t)
        attn = self.layer1.attn
        t = self.ppeg_inside(t)
        t = self.layer2(t)
        f = self.norm(t[:, 0])
        return {'feature': f, 'logits': self._fc2(f), 'heads': attn.row[:, 1:], **({'weighted': attn.weighted[1:]} if attn.observe_weighted else {})}

    def predict(self, u):
        return u @ self._fc2.weight.t()


class Dsmil(nn.Module):
    """MHIM's dsmil baseline: ReLU projection (patch_to_emb), DSMIL with nonlinear q and passing_v."""

    def __init__(self, d, e, c, q):
        super().__init__()
        self.patch_to_emb = nn.Sequential(nn.Linear(d, e))
        self.i_classifier = FCLayer(e, c)
        self.b_classifier = BClassifier(e, c, q, True, True)

    def project(self, x):
        return BANK.apply('project', torch.relu(self.patch_to_emb(x)), PROJECT_DROPOUT)

    def pool(self, h):
        c = self.i_classifier(h)
        logits, _, b = self.b_classifier(h, c)
        return {'feature': b, 'logits': logits, 'max_logits': c.max(dim=0, keepdim=True).values, 'instance': c}


class Grn(nn.Module):
    def __init__(self, e, tokens, heads):
        super().__init__()
        self.heads = heads
        self.global_tokens = nn.Parameter(torch.empty(tokens, e), requires_grad=False)
        self.norm = nn.LayerNorm(e)
        self.to_q = nn.Linear(e, e, bias=False)
        self.to_kv = nn.Linear(e, 2 * e, bias=False)
        self.to_out = nn.Linear(e, e)

    def forward(self, xm):
        k_tok, e = self.global_tokens.shape
        dh = e // self.heads
        q = self.to_q(self.norm(self.global_tokens)).reshape(k_tok, self.heads, dh).transpose(0, 1)
        kv = self.to_kv(self.norm(xm))
        keys = kv[:, :e].reshape(-1, self.heads, dh).transpose(0, 1)
        values = kv[:, e:].reshape(-1, self.heads, dh).transpose(0, 1)
        attn = BANK.apply('grn', torch.softmax(q @ keys.transpose(-1, -2) * dh ** -0.5, dim=-1), GRN_DROPOUT)
        return BANK.apply('grn', self.to_out((attn @ values).transpose(0, 1).reshape(k_tok, e)), GRN_DROPOUT)


# ---------------------------------------------------------------- masking (docs/methods/mhim-mil.md#masking)

def ranked(scores, largest):
    """Indices by score, ties to the lower index (the port's rule)."""
    order = sorted(range(len(scores)), key=lambda i: ((-scores[i]) if largest else scores[i], i))
    return order


def candidates(rows, k, largest):
    if len(rows) == 1:
        return ranked(rows[0], largest)[:k]
    votes = [0] * len(rows[0])
    for row in rows:
        for i in ranked(row, largest)[:k]:
            votes[i] += 1
    return ranked(votes, True)[:k]


def mask_by_score(rows, ratio, sub, largest, perm):
    n = len(rows[0])
    if ratio <= 0:
        return []
    r = ratio / sub
    q = sub
    if r > 1:
        q, r = ratio, 1.0
    k = min(n, math.ceil(n * r))
    cand = candidates(rows, k, largest)
    if q >= 1:
        return cand
    return [cand[p] for p in perm[:math.ceil(len(cand) * q)]]


def boundaries_clear(rows, ks, gap):
    """True when no k-th boundary (for each head) falls between scores closer than `gap`."""
    for row in rows:
        s = sorted(row)
        for k in ks:
            if 0 < k < len(s) and (s[k] - s[k - 1]) < gap:
                return False
            if 0 < k < len(s) and (s[len(s) - k] - s[len(s) - k - 1]) < gap:
                return False
    return True


# ---------------------------------------------------------------- one step

def build(case):
    kind = case['student']
    if kind == 'abmil':
        return Abmil(case['d'], case['e'], 6, case['c'])
    if kind == 'transmil':
        return Transmil(case['d'], case['e'], case['c'], case['heads'], case['landmarks'], case['kernel'], bool(case['aggregator'].get('classAwareScores')))
    return Dsmil(case['d'], case['e'], case['c'], 5)


def teacher_scores(model, out, h, version):
    if 'instance' in out:
        return [out['instance'].max(dim=1).values.tolist()]
    if version == 'v1':
        return out['heads'].tolist() if 'heads' in out else out['attention'].tolist()
    u = out['weighted'] if 'weighted' in out else out['attention'].t() * h
    return [torch.softmax(model.predict(u), dim=1).max(dim=1).values.tolist()]


def step(case, seed):
    teacher, student = build(case), build(case)
    randomize(teacher, seed)
    randomize(student, seed + 1)
    with torch.no_grad():
        for m in (teacher, student):
            for name, p in m.named_parameters():
                if name.endswith('norm.weight'):
                    p.add_(1.0)
    grn = None
    if case.get('grn'):
        grn = Grn(case['e'], case['grn']['tokens'], case['grn']['heads'])
        randomize(grn, seed + 2)
        with torch.no_grad():
            grn.norm.weight.add_(1.0)
            grn.global_tokens.copy_(f32((torch.rand(grn.global_tokens.shape, generator=torch.Generator().manual_seed(seed + 3)) * 2 - 1) * 0.5))
    n, opts = case['n'], case['options']
    version = opts.get('version', 'v1')
    for attempt in range(200):
        x = inputs(n, case['d'], seed + 100 + attempt)
        BANK.reset(seed + 200 + attempt)  # the teacher's masks of this attempt
        with torch.no_grad():
            h_t = teacher.project(x)
            out_t = teacher.pool(h_t)
            rows = teacher_scores(teacher, out_t, h_t, version)
        ks = [math.ceil(n * opts.get('maskRatioLow', 0)), math.ceil(n * opts.get('maskRatioHigh', 0.01) / opts.get('maskRatioHighRandom', 1))]
        if boundaries_clear(rows, ks, case['gap']):
            break
    else:
        raise SystemExit(f"{case['name']}: no input with clear masking boundaries")
    gen = torch.Generator().manual_seed(seed + 7)
    perm_random = torch.randperm(n, generator=gen).tolist()
    high_ratio, high_sub = opts.get('maskRatioHigh', 0.01), opts.get('maskRatioHighRandom', 1)
    k_high = n if high_ratio / high_sub > 1 else min(n, math.ceil(n * high_ratio / high_sub))
    perm_high = torch.randperm(k_high, generator=gen).tolist()
    random = mask_by_score(rows, opts.get('maskRatio', 0), 0.001, False, perm_random)
    low = mask_by_score(rows, opts.get('maskRatioLow', 0), 1, False, perm_random)
    high = mask_by_score(rows, high_ratio, high_sub, True, perm_high)
    masked = sorted(set(random) | set(low) | set(high))
    kept = [i for i in range(n) if i not in masked]

    student.train()
    BANK.phase = 'student'
    h = student.project(x)  # dropout on all N rows, as the original (milkit gets the rows it projects, below)
    tensors = {}
    (project_mask,) = BANK.of('student', 'project')
    milkit_order = BANK.of('teacher')
    if grn is not None:
        perm_grn = torch.randperm(len(kept), generator=gen).tolist()
        order = [kept[i] for i in perm_grn]
        passed = math.floor(len(kept) * case['options']['grnKeepRatio'])
        z = grn(h[order[passed:]])
        rows_in = torch.cat([h[order[:passed]], z], dim=0)
        tensors['perm.grn'] = torch.tensor(perm_grn, dtype=torch.int32)
        milkit_order += [project_mask[order[passed:]], *BANK.of('student', 'grn'), project_mask[order[:passed]]]
    else:
        rows_in = h[kept]
        milkit_order += [project_mask[kept]]
    out = student.pool(rows_in)
    milkit_order += BANK.of('student', 'pool')
    for i, mask in enumerate(milkit_order):
        # torch's batch dimension of the Nystrom output ([1, L', E]) is absent in milkit ([L', E]).
        tensors[f'dropout.{i:03d}'] = mask[0] if mask.dim() == 3 and mask.shape[0] == 1 else mask
    y = torch.tensor([case['label']])
    if 'max_logits' in out:  # v1 DSMIL: 0.5 CE(bag) + 0.5 CE(max instance)
        bag_loss = 0.5 * F.cross_entropy(out['logits'], y) + 0.5 * F.cross_entropy(out['max_logits'], y)
    else:
        bag_loss = F.cross_entropy(out['logits'], y)
    target = torch.softmax(out_t['feature'].detach() / opts.get('tempTeacher', 0.1), dim=-1)
    consistency = opts['alpha'] * (-(target * torch.log_softmax(out['feature'] / 1.0, dim=-1)).sum(-1)).mean()
    loss = bag_loss + consistency
    loss.backward()
    tensors.update({
        'x': x, 'perm.random': torch.tensor(perm_random, dtype=torch.int32), 'perm.high': torch.tensor(perm_high, dtype=torch.int32),
        'masked': torch.tensor(masked, dtype=torch.int32), 'train.loss': loss.detach().reshape(1), 'train.consistency': consistency.detach().reshape(1),
        **grads_of(student),
    })
    if grn is not None:
        tensors.update({f'grn.{k}': v.detach() for k, v in grn.state_dict().items()})
        tensors.update({f'grad.grn.{k}': p.grad.detach() for k, p in grn.named_parameters() if p.grad is not None})
        tensors['grn.z'] = z.detach()
    counts = {'masked_random': len(random), 'masked_low': len(low), 'masked_high': len(high), 'masked': len(masked)}
    return teacher, student, tensors, counts, len(milkit_order)


CASES = [
    dict(name='abmil-v1', student='abmil', d=12, e=10, c=2, n=20, label=1, gap=1e-4,
         options={'version': 'v1', 'maskRatio': 0.2, 'maskRatioLow': 0.1, 'maskRatioHigh': 0.2, 'maskRatioHighRandom': 0.5, 'alpha': 0.5},
         aggregator={'name': 'abmil', 'projectDim': 10, 'attnDim': 6, 'gated': False, 'attnActivation': 'relu', 'attnBias': False, 'dropout': PROJECT_DROPOUT},
         losses={'ce': {'name': 'cross-entropy', 'weight': 1}}),
    dict(name='transmil-v1', student='transmil', d=12, e=16, c=2, n=20, heads=2, landmarks=4, kernel=5, label=0, gap=1e-4,
         options={'version': 'v1', 'maskRatioLow': 0.1, 'maskRatioHigh': 0.2, 'maskRatioHighRandom': 0.5, 'alpha': 0.1},
         aggregator={'name': 'transmil', 'embedDim': 16, 'heads': 2, 'landmarks': 4, 'residualKernel': 5, 'attnDropout': NYSTROM_DROPOUT, 'nystromAlignment': 'fixed',
                     'projectActivation': 'gelu', 'projectDropout': PROJECT_DROPOUT, 'ppegPadding': 'inside'},
         losses={'ce': {'name': 'cross-entropy', 'weight': 1}}),
    dict(name='dsmil-v1', student='dsmil', d=12, e=10, c=2, n=20, label=1, gap=1e-4,
         options={'version': 'v1', 'maskRatio': 0.25, 'maskRatioHigh': 0.1, 'alpha': 0.5},
         aggregator={'name': 'dsmil', 'queryDim': 5, 'nonlinearQuery': True, 'passingV': True, 'projectDim': 10, 'projectDropout': PROJECT_DROPOUT, 'dropoutV': 0},
         losses={'bag': {'name': 'cross-entropy', 'weight': 0.5}, 'maxInstance': {'name': 'dsmil-max-instance', 'criterion': 'ce', 'weight': 0.5}}),
    dict(name='abmil-v2-grn', student='abmil', d=12, e=10, c=2, n=20, label=1, gap=2e-5, grn={'tokens': 2, 'heads': 2},
         options={'version': 'v2', 'maskRatioHigh': 0.1, 'alpha': 0.5, 'grn': True, 'grnKeepRatio': 0.5, 'grnTokens': 2, 'grnHeads': 2, 'grnDropout': GRN_DROPOUT},
         aggregator={'name': 'abmil', 'projectDim': 10, 'attnDim': 6, 'gated': False, 'attnActivation': 'relu', 'attnBias': False, 'dropout': PROJECT_DROPOUT},
         losses={'ce': {'name': 'cross-entropy', 'weight': 1}}),
    dict(name='transmil-v2', student='transmil', d=12, e=16, c=2, n=20, heads=2, landmarks=4, kernel=5, label=1, gap=2e-5,
         options={'version': 'v2', 'maskRatioHigh': 0.15, 'alpha': 0.5},
         aggregator={'name': 'transmil', 'embedDim': 16, 'heads': 2, 'landmarks': 4, 'residualKernel': 5, 'attnDropout': NYSTROM_DROPOUT, 'nystromAlignment': 'fixed',
                     'projectActivation': 'gelu', 'projectDropout': PROJECT_DROPOUT, 'ppegPadding': 'inside', 'classAwareScores': True},
         losses={'ce': {'name': 'cross-entropy', 'weight': 1}}),
]


def main():
    os.makedirs(FIXTURES, exist_ok=True)
    for i, case in enumerate(CASES):
        teacher, student, tensors, counts, masks = step(case, 500 + 10 * i)
        spec = {'generator': GENERATOR, 'torch': torch.__version__, 'name': case['name'], 'inputDim': case['d'], 'numClasses': case['c'],
                'label': case['label'], 'aggregator': case['aggregator'], 'classifier': {'name': 'linear'}, 'losses': case['losses'],
                'strategy': case['options'], 'counts': counts, 'dropoutMasks': masks}
        base = os.path.join(FIXTURES, f"mhim-{case['name']}")
        write_safetensors(f'{base}.teacher.safetensors', state_dict_f32(teacher))
        write_safetensors(f'{base}.student.safetensors', state_dict_f32(student))
        size = write_safetensors(f'{base}.case.safetensors', {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()},
                                 {'case': json.dumps(spec, sort_keys=True)})
        print(f"{case['name']}: masked {tensors['masked'].tolist()} counts {counts} dropout masks {masks} loss {float(tensors['train.loss']):.6f} case {size} B")


if __name__ == '__main__':
    main()
