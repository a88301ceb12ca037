#!/usr/bin/python3
"""Independent PyTorch reference of HMIL (docs/methods/hmil.md): the network, every loss term, their total over a
mini-batch of bags and its gradients, and the alpha / temperature schedules. Written from the method note, not
from the authors' code.

Writes
  plugins/aggregators/hmil.golden.json            eval forward of the aggregator (pattern-v1 weights)
  plugins/losses/hmil-hierarchy.golden.json       coarse CE (alpha-weighted) and the summed-probability term
  plugins/losses/supcon.golden.json               batch SupCon over three bags' class rows
  plugins/losses/hmil-attention-alignment.golden.json
  test/reference/fixtures/hmil.json               a batch of four bags: outputs, each term, total, parameter gradients,
                                                   in two scenarios (see SCENARIOS)

Run: /usr/bin/python3 test/reference/hmil.py
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from golden_common import REPO, f32_inputs, fill_pattern, nested, write_golden

torch.set_default_dtype(torch.float64)
GENERATOR = 'test/reference/hmil.py'

# A small hierarchy: four fine classes, two coarse (fine 0, 1 -> coarse 0; fine 2, 3 -> coarse 1).
FINE_TO_COARSE = [0, 0, 1, 1]
HIERARCHY = {'coarseNames': ['low', 'high'], 'fineToCoarse': FINE_TO_COARSE}
DIMS = {'bottleneckDim': 6, 'featureDim': 8, 'reducedDim': 5, 'coarseAttnDim': 4, 'fineAttnDim': 3}
INPUT_DIM = 12


def mapping_matrix(fine_to_coarse, num_coarse):
    m = torch.zeros(len(fine_to_coarse), num_coarse)
    for f, c in enumerate(fine_to_coarse):
        m[f, c] = 1.0
    return m


class Gated(nn.Module):
    """Gated attention scores: w(tanh(V h) * sigmoid(U h)), raw [N, K]."""

    def __init__(self, d, hidden, k):
        super().__init__()
        self.attention_a = nn.Linear(d, hidden)
        self.attention_b = nn.Linear(d, hidden)
        self.attention_c = nn.Linear(hidden, k)

    def forward(self, h):
        return self.attention_c(torch.tanh(self.attention_a(h)) * torch.sigmoid(self.attention_b(h)))


class Hmil(nn.Module):
    def __init__(self, d, kf, kc, bottleneck, feature, reduced, coarse_attn, fine_attn):
        super().__init__()
        self.feature_extractor = nn.Sequential(nn.Linear(d, bottleneck), nn.ReLU(), nn.Linear(bottleneck, feature))
        self.feature_reducer = nn.Linear(feature, reduced)
        self.coarse_attention = Gated(feature, coarse_attn, kc)
        self.fine_attention = Gated(reduced, fine_attn, kf)
        self.coarse_classifier = nn.Linear(feature, 1)
        self.fine_classifier = nn.Linear(reduced, 1)

    def forward(self, x):
        h1 = self.feature_extractor(x)                        # [N, D']
        h2 = self.feature_reducer(h1)                         # [N, R]
        a1 = torch.softmax(self.coarse_attention(h1).t(), dim=1)  # [Kc, N]
        a2 = torch.softmax(self.fine_attention(h2).t(), dim=1)    # [Kf, N]
        m1 = a1 @ h1
        m2 = a2 @ h2
        coarse = self.coarse_classifier(m1).t()               # [1, Kc]
        fine = self.fine_classifier(m2).t()                   # [1, Kf]
        return {'logits': fine, 'coarseLogits': coarse, 'embedding': m2, 'classEmbeddings': F.normalize(m2, dim=1),
                'instanceScores': a2, 'coarseInstanceScores': a1}


def build():
    model = Hmil(INPUT_DIM, len(FINE_TO_COARSE), 2, DIMS['bottleneckDim'], DIMS['featureDim'], DIMS['reducedDim'],
                 DIMS['coarseAttnDim'], DIMS['fineAttnDim'])
    fill_pattern(model)
    return model


# ---- schedules ------------------------------------------------------------------------------------------------
def alpha(e, total):
    return 1 - (e / total) ** 2


def temperature(e, total, tmax=1.0, tmin=0.1):
    return tmin + (tmax - tmin) * (1 + math.cos(2 * math.pi * e / total)) / 2


# ---- losses ---------------------------------------------------------------------------------------------------
def coarse_ce(coarse_logits, y_c, a):
    return a * F.cross_entropy(coarse_logits, torch.tensor([y_c]))


def reg_as_code(fine_logits, y_c, m):
    summed = torch.softmax(fine_logits, dim=1) @ m           # probabilities handed to CE as logits
    return F.cross_entropy(summed, torch.tensor([y_c]))


def supcon(rows_per_bag, labels, tau, base=0.1, divide=True):
    """rows_per_bag: list of [K, E] unit rows; every row an anchor; positives: same bag label, not itself."""
    rows = torch.cat(rows_per_bag, 0)
    row_labels = torch.tensor([labels[b] for b, r in enumerate(rows_per_bag) for _ in range(r.shape[0])])
    z = rows @ rows.t() / tau
    z = z - z.max(dim=1, keepdim=True).values.detach()
    n = rows.shape[0]
    not_self = 1 - torch.eye(n)
    positives = (row_labels[:, None] == row_labels[None, :]).double() * not_self
    log_prob = z - torch.log((torch.exp(z) * not_self).sum(1, keepdim=True) + 1e-6)
    mean_pos = (positives * log_prob).sum(1) / (positives.sum(1) + 1e-6)
    value = (-(tau / base) * mean_pos).mean()
    return value / len(rows_per_bag) if divide else value


def alignment(a1, a2, m):
    summed = m.t() @ a2                                       # [Kc, N]
    dot = (a1 * summed).sum(0)
    norms = a1.norm(dim=0).clamp_min(1e-8) * summed.norm(dim=0).clamp_min(1e-8)
    return (1 - dot / norms).mean()


# ---- goldens --------------------------------------------------------------------------------------------------
def aggregator_golden():
    model = build().eval()
    x = f32_inputs((7, INPUT_DIM), seed=71)
    with torch.no_grad():
        out = model(x)
    case = {'options': dict(DIMS), 'inputDim': INPUT_DIM, 'numClasses': len(FINE_TO_COARSE), 'classifier': {'name': 'linear'},
            'weights': 'pattern-v1', 'hierarchy': HIERARCHY, 'x': nested(x)}
    expected = {'logits': nested(out['logits']), 'embedding': nested(out['embedding']), 'instanceScores': nested(out['instanceScores']),
                'extras': {k: nested(out[k]) for k in ('coarseLogits', 'classEmbeddings', 'coarseInstanceScores')}}
    write_golden('aggregators', 'hmil', {'kind': 'aggregator', 'plugin': 'hmil', 'generator': GENERATOR, 'torch': torch.__version__,
                                         'case': case, 'expected': expected})


def loss_golden(name, case, tensors, compute):
    leaves = {k: v.clone().requires_grad_(True) for k, v in tensors.items()}
    terms = compute(leaves)
    sum(terms.values()).backward()
    case = {**case, 'tensors': {k: nested(v) for k, v in tensors.items()}}
    write_golden('losses', name, {
        'kind': 'loss', 'plugin': name, 'generator': GENERATOR, 'torch': torch.__version__, 'case': case,
        'expected': {'terms': {k: float(v) for k, v in terms.items()}, 'grads': {k: nested(v.grad) for k, v in leaves.items()}},
    })


def loss_goldens():
    m = mapping_matrix(FINE_TO_COARSE, 2)
    e, total = 30, 100
    # hmil-hierarchy: fine label 2 (coarse 1) at epoch 30 of 100.
    loss_golden('hmil-hierarchy', {'options': {}, 'numClasses': 4, 'label': 2, 'coarseLabel': 1, 'epoch': e, 'totalEpochs': total, 'hierarchy': HIERARCHY},
                {'logits': f32_inputs((1, 4), seed=81), 'extras.coarseLogits': f32_inputs((1, 2), seed=82)},
                lambda t: {'coarse': coarse_ce(t['extras.coarseLogits'], 1, alpha(e, total)), 'reg': reg_as_code(t['logits'], 1, m)})
    # supcon: three bags (labels 1, 1, 3), four unit class rows of width 5 each, epoch 30 of 100.
    raw = f32_inputs((3, 4, 5), seed=83)
    rows = (raw / raw.norm(dim=2, keepdim=True)).float().double()
    labels = [1, 1, 3]
    tau = temperature(e, total)
    loss_golden('supcon', {'options': {}, 'numClasses': 4, 'label': 0, 'epoch': e, 'totalEpochs': total, 'batch': {'labels': labels}},
                {'logits': torch.zeros(3, 1, 4), 'extras.classEmbeddings': rows},
                lambda t: {'': (1 - alpha(e, total)) * supcon([t['extras.classEmbeddings'][b] for b in range(3)], labels, tau) + 0 * t['logits'].sum()})
    # attention alignment: attention rows (softmax over 6 instances) of two coarse and four fine classes.
    a1 = torch.softmax(f32_inputs((2, 6), seed=84), dim=1).float().double()
    a2 = torch.softmax(f32_inputs((4, 6), seed=85), dim=1).float().double()
    loss_golden('hmil-attention-alignment', {'options': {}, 'numClasses': 4, 'label': 0, 'hierarchy': HIERARCHY},
                {'logits': torch.zeros(1, 4), 'instanceScores': a2, 'extras.coarseInstanceScores': a1},
                lambda t: {'': alignment(t['extras.coarseInstanceScores'], t['instanceScores'], m) + 0 * t['logits'].sum()})


# ---- the batch fixture ----------------------------------------------------------------------------------------
BAG_SIZES = [5, 8, 6, 7]
BAG_LABELS = [0, 2, 3, 2]   # coarse 0, 1, 1, 1; labels 2 twice, so SupCon has cross-bag positives
SCENARIOS = {
    # The defaults at epoch 30 of 100: alpha = 0.91, tau = 0.1 + 0.9 (1 + cos(0.6 pi)) / 2.
    'schedule': {'epoch': 30, 'totalEpochs': 100, 'supconWeight': 'one-minus-alpha'},
    # Epoch 0 of 1 with SupCon at constant weight 1 (alpha = 1 would silence it): what one trainer step computes.
    'first-step': {'epoch': 0, 'totalEpochs': 1, 'supconWeight': 'constant'},
}


def batch_fixture():
    m = mapping_matrix(FINE_TO_COARSE, 2)
    bags = [f32_inputs((n, INPUT_DIM), seed=100 + i) for i, n in enumerate(BAG_SIZES)]
    out = {'hierarchy': HIERARCHY, 'dims': DIMS, 'inputDim': INPUT_DIM, 'labels': BAG_LABELS,
           'bags': [nested(b) for b in bags], 'scenarios': {}}
    for name, sc in SCENARIOS.items():
        model = build()
        e, total = sc['epoch'], sc['totalEpochs']
        a, tau = alpha(e, total), temperature(e, total)
        outputs = [model(x) for x in bags]
        coarse_labels = [FINE_TO_COARSE[y] for y in BAG_LABELS]
        ce_fine = torch.stack([F.cross_entropy(o['logits'], torch.tensor([y])) for o, y in zip(outputs, BAG_LABELS)]).mean()
        ce_coarse = torch.stack([coarse_ce(o['coarseLogits'], yc, a) for o, yc in zip(outputs, coarse_labels)]).mean()
        reg = torch.stack([reg_as_code(o['logits'], yc, m) for o, yc in zip(outputs, coarse_labels)]).mean()
        weight = (1 - a) if sc['supconWeight'] == 'one-minus-alpha' else 1.0
        con = weight * supcon([o['classEmbeddings'] for o in outputs], BAG_LABELS, tau)
        align = torch.stack([alignment(o['coarseInstanceScores'], o['instanceScores'], m) for o in outputs]).mean()
        total_loss = ce_fine + ce_coarse + reg + con    # the code's total; alignment is computed, not added
        model.zero_grad()
        total_loss.backward()
        out['scenarios'][name] = {
            **sc, 'alpha': a, 'temperature': tau,
            'logits': [nested(o['logits']) for o in outputs], 'coarseLogits': [nested(o['coarseLogits']) for o in outputs],
            'terms': {'ce': float(ce_fine), 'hier_coarse': float(ce_coarse), 'hier_reg': float(reg), 'supcon': float(con), 'alignment': float(align)},
            'total': float(total_loss),
            'grads': {k: nested(p.grad) for k, p in model.named_parameters()},
        }
    path = os.path.join(REPO, 'test', 'reference', 'fixtures', 'hmil.json')
    with open(path, 'w') as f:
        json.dump({'$comment': f'generated by {GENERATOR}; do not edit', **out}, f, separators=(',', ':'))
    print(f'{os.path.relpath(path, REPO)}: {os.path.getsize(path)} B')


if __name__ == '__main__':
    aggregator_golden()
    loss_goldens()
    batch_fixture()
