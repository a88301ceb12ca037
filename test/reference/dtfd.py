#!/usr/bin/python3
"""PyTorch reference of aggregator/dtfd-mil with loss/dtfd-tier1 (docs/methods/dtfd-mil.md#training-step), written from the spec:
a given instance permutation split by numpy.array_split into G pseudo-bags; tier 1 = DimReduction (no bias) + ReLU,
gated attention softmaxed inside each pseudo-bag, pooled feature, Classifier_1fc; instance CAM from the classifier
weight only, ranked by the last class's probability; distillation AFS / MaxS / MaxMinS; tier 2 = gated attention
pooling + classifier on the distilled features, which tier 1 never receives gradient from. Loss = mean tier-1 CE +
tier-2 CE. Keys follow DTFD-MIL's saved dict (classifier, dim_reduction, attention, att_classifier).

Run: /usr/bin/python3 test/reference/dtfd.py
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo_common import grads_of, inputs, randomize, save_case

torch.set_default_dtype(torch.float64)


class DimReduction(nn.Module):
    def __init__(self, d, e):
        super().__init__()
        self.fc1 = nn.Linear(d, e, bias=False)

    def forward(self, x):
        return F.relu(self.fc1(x))


class AttentionGated(nn.Module):
    def __init__(self, e, a):
        super().__init__()
        self.attention_V = nn.Sequential(nn.Linear(e, a), nn.Tanh())
        self.attention_U = nn.Sequential(nn.Linear(e, a), nn.Sigmoid())
        self.attention_weights = nn.Linear(a, 1)

    def forward(self, x):
        return F.softmax(self.attention_weights(self.attention_V(x) * self.attention_U(x)).t(), dim=1)  # 1 x n


class Classifier1fc(nn.Module):
    def __init__(self, e, c):
        super().__init__()
        self.fc = nn.Linear(e, c)

    def forward(self, x):
        return self.fc(x)


class AttentionWithClassifier(nn.Module):
    def __init__(self, e, a, c):
        super().__init__()
        self.attention = AttentionGated(e, a)
        self.classifier = Classifier1fc(e, c)

    def forward(self, x):
        return self.classifier(self.attention(x) @ x), self.attention(x) @ x


class Dtfd(nn.Module):
    def __init__(self, d, e, a, c):
        super().__init__()
        self.classifier = Classifier1fc(e, c)
        self.dim_reduction = DimReduction(d, e)
        self.attention = AttentionGated(e, a)
        self.att_classifier = AttentionWithClassifier(e, a, c)

    def forward(self, x, perm, groups, distill, per_group):
        n = x.shape[0]
        scores = torch.zeros(n)
        pooled, preds, distilled = [], [], []
        for chunk in np.array_split(perm, groups):
            index = torch.tensor(chunk.tolist(), dtype=torch.long)
            h = self.dim_reduction(x[index])  # n_g x E
            a = self.attention(h)  # 1 x n_g
            scores = scores.index_put((index,), a[0])
            weighted = h * a.t()  # n_g x E
            f = weighted.sum(0, keepdim=True)  # 1 x E
            preds.append(self.classifier(f))
            cam = weighted @ self.classifier.fc.weight.t()  # n_g x C, weight only
            order = torch.sort(F.softmax(cam, dim=1)[:, -1], descending=True).indices
            k = min(per_group, len(chunk))
            if distill == 'afs':
                distilled.append(f)
            elif distill == 'maxs':
                distilled.append(h[order[:k]])
            else:
                distilled.append(torch.cat([h[order[:k]], h[order[-k:]]]))
        logits2, z = self.att_classifier(torch.cat(distilled).detach())  # tier 2 never feeds gradient to tier 1
        return torch.cat(preds), logits2, z, scores[None]


CASES = [
    dict(name='dtfd-afs', d=12, e=10, a=6, c=2, n=11, groups=4, total=4, distill='afs', label=1, seed=51),
    dict(name='dtfd-maxmins', d=12, e=10, a=6, c=3, n=13, groups=3, total=6, distill='maxmins', label=2, seed=52),
    dict(name='dtfd-maxs', d=12, e=10, a=6, c=2, n=9, groups=4, total=4, distill='maxs', label=0, seed=53),
]


def build(case):
    """The case's model (untrained); roundtrip_check.py loads milkit's export into it."""
    return Dtfd(case['d'], case['e'], case['a'], case['c'])


def main():
    for case in CASES:
        model = build(case)
        randomize(model, case['seed'])
        x = inputs(case['n'], case['d'], case['seed'] + 100)
        perm = np.random.RandomState(case['seed']).permutation(case['n'])
        per_group = case['total'] // case['groups']
        model.eval()
        with torch.no_grad():
            tier1, logits, z, scores = model(x, perm, case['groups'], case['distill'], per_group)
        model.train()
        model.zero_grad()
        t_tier1, t_logits, _, _ = model(x, perm, case['groups'], case['distill'], per_group)
        label = torch.tensor([case['label']])
        loss = F.cross_entropy(t_tier1, label.repeat(t_tier1.shape[0])) + F.cross_entropy(t_logits, label)
        loss.backward()
        spec = {
            'generator': 'test/reference/dtfd.py', 'seed': case['seed'], 'inputDim': case['d'], 'numClasses': case['c'], 'label': case['label'],
            'aggregator': {'name': 'dtfd-mil', 'embedDim': case['e'], 'attnDim': case['a'], 'numGroups': case['groups'],
                           'totalInstance': case['total'], 'distill': case['distill']},
            'classifier': {'name': 'linear'},
            'losses': {'bag': {'name': 'cross-entropy', 'weight': 1}, 'tier1': {'name': 'dtfd-tier1', 'weight': 1}},
        }
        save_case(case['name'], model, spec, {
            'x': x, 'permutation': torch.tensor(perm, dtype=torch.int64),
            'eval.logits': logits, 'eval.embedding': z, 'eval.instanceScores': scores, 'eval.extras.pseudoBagLogits': tier1,
            'train.loss': loss.detach().reshape(1), **grads_of(model),
        })


if __name__ == '__main__':
    main()
