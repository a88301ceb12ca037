#!/usr/bin/python3
"""PyTorch reference of aggregator/clam-sb and aggregator/clam-mb with loss/clam-instance (docs/methods/clam.md),
written from the spec: attention_net = Sequential(Linear, ReLU, Dropout, gated or plain attention), softmax over
instances, bag heads, C instance classifiers, top-k / bottom-k pseudo-labelling, smooth top-1 SVM (or CE) instance
loss, total = 0.7 * CE(bag) + 0.3 * instance. Keys follow CLAM's models/model_clam.py.

Run: /usr/bin/python3 test/reference/clam.py
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo_common import grads_of, inputs, randomize, save_case

torch.set_default_dtype(torch.float64)


def smooth_top1_svm(x, y, alpha=1.0, tau=1.0):
    """Mean over samples of the smooth top-1 SVM, with the hard max where the top-2 gap >= tau ln 1000 (detached)."""
    n_classes = x.shape[1]
    top2 = x.detach().topk(2, dim=1).values
    hard = (top2[:, 0] - top2[:, 1]) >= tau * math.log(1000.0)
    delta = alpha * (1.0 - F.one_hot(y, n_classes).to(x.dtype))
    shifted = x + delta - x.gather(1, y[:, None])
    smooth = tau * torch.logsumexp(shifted / tau, dim=1)
    hard_loss = shifted.max(dim=1).values
    return torch.where(hard, hard_loss, smooth).sum() / x.shape[0], int(hard.sum())


class SvmHolder(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer('labels', torch.arange(2))


class GatedAttention(nn.Module):
    def __init__(self, e, h, k):
        super().__init__()
        self.attention_a = nn.Sequential(nn.Linear(e, h), nn.Tanh())
        self.attention_b = nn.Sequential(nn.Linear(e, h), nn.Sigmoid())
        self.attention_c = nn.Linear(h, k)

    def forward(self, x):
        return self.attention_c(self.attention_a(x) * self.attention_b(x)), x


class PlainAttention(nn.Module):
    def __init__(self, e, h, k):
        super().__init__()
        self.module = nn.Sequential(nn.Linear(e, h), nn.Tanh(), nn.Linear(h, k))

    def forward(self, x):
        return self.module(x), x


class Clam(nn.Module):
    def __init__(self, d, e, h, c, multi_branch, gated, k_sample, subtyping, inst_loss):
        super().__init__()
        branches = c if multi_branch else 1
        attention = GatedAttention(e, h, branches) if gated else PlainAttention(e, h, branches)
        self.attention_net = nn.Sequential(nn.Linear(d, e), nn.ReLU(), nn.Dropout(0.0), attention)
        self.classifiers = nn.ModuleList([nn.Linear(e, 1) for _ in range(c)]) if multi_branch else nn.Linear(e, c)
        self.instance_classifiers = nn.ModuleList([nn.Linear(e, 2) for _ in range(c)])
        self.instance_loss_fn = SvmHolder() if inst_loss == 'svm' else nn.CrossEntropyLoss()
        self.multi_branch, self.k, self.subtyping, self.n_classes, self.inst_loss = multi_branch, k_sample, subtyping, c, inst_loss
        self.hard_count = 0

    def instance_loss(self, logits, targets):
        if self.inst_loss == 'svm':
            loss, hard = smooth_top1_svm(logits, targets)
            self.hard_count += hard
            return loss
        return F.cross_entropy(logits, targets)

    def forward(self, x, label=None):
        raw, h = self.attention_net(x)  # N x K, N x E
        a = F.softmax(raw.t(), dim=1)  # K x N, softmax over instances
        inst_total = None
        if label is not None:
            inst_total = 0.0
            for i in range(self.n_classes):
                row = a[i] if self.multi_branch else a[0]
                clf = self.instance_classifiers[i]
                if i == label:
                    top = torch.topk(row, self.k)[1]
                    bottom = torch.topk(-row, self.k)[1]
                    picked = torch.cat([h[top], h[bottom]])
                    targets = torch.cat([torch.ones(self.k, dtype=torch.long), torch.zeros(self.k, dtype=torch.long)])
                elif self.subtyping:
                    picked = h[torch.topk(row, self.k)[1]]
                    targets = torch.zeros(self.k, dtype=torch.long)
                else:
                    continue
                inst_total = inst_total + self.instance_loss(clf(picked), targets)
            if self.subtyping:
                inst_total = inst_total / self.n_classes
        m = a @ h  # K x E
        if self.multi_branch:
            logits = torch.cat([self.classifiers[c](m[c:c + 1]) for c in range(self.n_classes)], dim=1)
        else:
            logits = self.classifiers(m)
        return logits, m, a, inst_total


CASES = [
    dict(name='clam-sb', mb=False, d=12, e=10, h=6, c=2, n=11, k=3, gated=True, subtyping=False, inst='svm', label=1, seed=21, inst_scale=1.0),
    dict(name='clam-sb-subtyping', mb=False, d=12, e=10, h=6, c=3, n=9, k=2, gated=False, subtyping=True, inst='ce', label=2, seed=22, inst_scale=1.0),
    dict(name='clam-mb', mb=True, d=12, e=10, h=6, c=3, n=10, k=2, gated=True, subtyping=True, inst='svm', label=0, seed=23, inst_scale=40.0),
    dict(name='clam-mb-binary', mb=True, d=12, e=10, h=6, c=2, n=8, k=4, gated=True, subtyping=False, inst='svm', label=0, seed=24, inst_scale=1.0),
]


def build(case):
    """The case's model (untrained); roundtrip_check.py loads milkit's export into it."""
    return Clam(case['d'], case['e'], case['h'], case['c'], case['mb'], case['gated'], case['k'], case['subtyping'], case['inst'])


def main():
    for case in CASES:
        model = build(case)
        randomize(model, case['seed'])
        with torch.no_grad():
            for clf in model.instance_classifiers:  # large logits send some samples down the SVM's hard branch
                clf.weight.mul_(case['inst_scale'])
                clf.weight.copy_(clf.weight.float().double())
        x = inputs(case['n'], case['d'], case['seed'] + 100)
        model.eval()
        with torch.no_grad():
            logits, m, a, _ = model(x)
        model.train()
        model.zero_grad()
        model.hard_count = 0
        train_logits, _, _, inst = model(x, label=case['label'])
        loss = 0.7 * F.cross_entropy(train_logits, torch.tensor([case['label']])) + 0.3 * inst
        loss.backward()
        if case['inst_scale'] > 1:
            assert model.hard_count > 0, 'the scaled case must exercise the SVM hard branch'
        spec = {
            'generator': 'test/reference/clam.py', 'seed': case['seed'], 'inputDim': case['d'], 'numClasses': case['c'], 'label': case['label'],
            'hardSvmSamples': model.hard_count,
            'aggregator': {'name': 'clam-mb' if case['mb'] else 'clam-sb', 'hiddenDim': case['e'], 'attnDim': case['h'], 'gated': case['gated'],
                           'dropout': 0, 'attnDropout': 0, 'kSample': case['k'], 'subtyping': case['subtyping'],
                           'svmLabelsBuffer': case['inst'] == 'svm'},
            'classifier': {'name': 'linear'},
            'losses': {'bag': {'name': 'cross-entropy', 'weight': 0.7}, 'instance': {'name': 'clam-instance', 'fn': case['inst'], 'weight': 0.3}},
        }
        save_case(case['name'], model, spec, {
            'x': x, 'eval.logits': logits, 'eval.embedding': m, 'eval.instanceScores': a,
            'train.loss': loss.detach().reshape(1), 'train.instanceLoss': inst.detach().reshape(1), **grads_of(model),
        })


if __name__ == '__main__':
    main()
