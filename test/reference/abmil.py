#!/usr/bin/python3
"""PyTorch reference of aggregator/abmil (docs/methods/abmil.md#attention-pooling, docs/methods/abmil.md#abmil-on-wsi-features), written from the spec: a ReLU projection,
Ilse's gated (or plain) attention with softmax over instances, attention pooling, and a linear classifier.
Keys follow Ilse's model.py (feature_extractor_part2.0, attention_V.0/attention_U.0/attention_w or
attention.0/attention.2, classifier.0).

Run: /usr/bin/python3 test/reference/abmil.py
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo_common import grads_of, inputs, randomize, save_case

torch.set_default_dtype(torch.float64)


class Abmil(nn.Module):
    def __init__(self, d, e, l, c, gated, activation, bias):
        super().__init__()
        act = {'tanh': nn.Tanh, 'relu': nn.ReLU}[activation]
        self.gated = gated
        self.feature_extractor_part2 = nn.Sequential(nn.Linear(d, e), nn.ReLU())
        if gated:
            self.attention_V = nn.Sequential(nn.Linear(e, l, bias=bias), act())
            self.attention_U = nn.Sequential(nn.Linear(e, l, bias=bias), nn.Sigmoid())
            self.attention_w = nn.Linear(l, 1, bias=bias)
        else:
            self.attention = nn.Sequential(nn.Linear(e, l, bias=bias), act(), nn.Linear(l, 1, bias=bias))
        self.classifier = nn.Sequential(nn.Linear(e, c))

    def forward(self, x):
        h = self.feature_extractor_part2(x)  # N x E
        raw = self.attention_w(self.attention_V(h) * self.attention_U(h)) if self.gated else self.attention(h)  # N x 1
        a = F.softmax(raw.t(), dim=1)  # 1 x N, softmax over instances
        z = a @ h  # 1 x E
        return self.classifier(z), z, a


CASES = [
    dict(name='abmil-gated', d=12, e=10, l=6, c=2, n=9, gated=True, activation='tanh', bias=True, label=1, seed=11),
    dict(name='abmil-plain', d=12, e=10, l=6, c=3, n=7, gated=False, activation='relu', bias=False, label=2, seed=12),
]


def build(case):
    """The case's model (untrained); roundtrip_check.py loads milkit's export into it."""
    return Abmil(case['d'], case['e'], case['l'], case['c'], case['gated'], case['activation'], case['bias'])


def main():
    for case in CASES:
        model = build(case)
        randomize(model, case['seed'])
        x = inputs(case['n'], case['d'], case['seed'] + 100)
        model.eval()
        with torch.no_grad():
            logits, z, a = model(x)
        model.train()
        model.zero_grad()
        train_logits, _, _ = model(x)
        loss = F.cross_entropy(train_logits, torch.tensor([case['label']]))
        loss.backward()
        spec = {
            'generator': 'test/reference/abmil.py', 'seed': case['seed'], 'inputDim': case['d'], 'numClasses': case['c'], 'label': case['label'],
            'aggregator': {'name': 'abmil', 'projectDim': case['e'], 'attnDim': case['l'], 'gated': case['gated'],
                           'attnActivation': case['activation'], 'attnBias': case['bias'], 'dropout': 0, 'attnDropout': 0},
            'classifier': {'name': 'linear'},
            'losses': {'bag': {'name': 'cross-entropy', 'weight': 1}},
        }
        save_case(case['name'], model, spec, {
            'x': x, 'eval.logits': logits, 'eval.embedding': z, 'eval.instanceScores': a,
            'train.loss': loss.detach().reshape(1), **grads_of(model),
        })


if __name__ == '__main__':
    main()
