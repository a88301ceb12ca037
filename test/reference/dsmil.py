#!/usr/bin/python3
"""PyTorch reference of aggregator/dsmil (docs/methods/dsmil.md#structure), written from the spec: instance classifier, max-pooled
instance logits, critical instance per class, query net, attention softmax over instances scaled by 1/sqrt(Q),
class embeddings B = A^T V, Conv1d bag head over all class embeddings. Keys follow dsmil-wsi's dsmil.py (MILNet).

Run: /usr/bin/python3 test/reference/dsmil.py
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo_common import grads_of, inputs, randomize, save_case

torch.set_default_dtype(torch.float64)


class FCLayer(nn.Module):
    def __init__(self, d, k):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(d, k))

    def forward(self, x):
        return self.fc(x)


class BClassifier(nn.Module):
    def __init__(self, d, k, q_dim, nonlinear, passing_v):
        super().__init__()
        self.q = nn.Sequential(nn.Linear(d, q_dim), nn.ReLU(), nn.Linear(q_dim, q_dim), nn.Tanh()) if nonlinear else nn.Linear(d, q_dim)
        self.v = nn.Sequential(nn.Dropout(0.0), nn.Linear(d, d), nn.ReLU()) if passing_v else nn.Identity()
        self.fcc = nn.Conv1d(k, k, kernel_size=d)

    def forward(self, x, c):
        v = self.v(x)  # N x D
        q = self.q(x)  # N x Q
        critical = x[c.argmax(dim=0)]  # K x D: first index of the max per class
        q_max = self.q(critical)  # K x Q
        a = F.softmax(q @ q_max.t() / torch.sqrt(torch.tensor(float(q.shape[1]))), dim=0)  # N x K, softmax over instances
        b = a.t() @ v  # K x D
        logits = self.fcc(b.unsqueeze(0)).view(1, -1)  # 1 x K
        return logits, a, b


class Dsmil(nn.Module):
    def __init__(self, d, k, q_dim, nonlinear, passing_v):
        super().__init__()
        self.i_classifier = FCLayer(d, k)
        self.b_classifier = BClassifier(d, k, q_dim, nonlinear, passing_v)

    def forward(self, x):
        c = self.i_classifier(x)  # N x K
        logits, a, b = self.b_classifier(x, c)
        return logits, c.max(dim=0, keepdim=True).values, a, b


def one_hot(label, k):
    return F.one_hot(torch.tensor([label]), k).to(torch.float64)


CASES = [
    dict(name='dsmil', d=12, c=2, n=10, q=5, nonlinear=True, passing_v=False, single=False, criterion='bce', label=1, seed=31),
    dict(name='dsmil-passing-v', d=12, c=3, n=9, q=5, nonlinear=False, passing_v=True, single=False, criterion='ce', label=0, seed=32),
    dict(name='dsmil-single-logit', d=12, c=2, n=8, q=5, nonlinear=True, passing_v=False, single=True, criterion='bce', label=1, seed=33),
]


def build(case):
    """The case's model (untrained); roundtrip_check.py loads milkit's export into it."""
    return Dsmil(case['d'], 1 if case['single'] else case['c'], case['q'], case['nonlinear'], case['passing_v'])


def main():
    for case in CASES:
        heads = 1 if case['single'] else case['c']
        model = build(case)
        randomize(model, case['seed'])
        x = inputs(case['n'], case['d'], case['seed'] + 100)
        model.eval()
        with torch.no_grad():
            logits, max_logits, a, b = model(x)
        model.train()
        model.zero_grad()
        t_logits, t_max, _, _ = model(x)
        y = case['label']
        if case['single']:
            target = torch.tensor([[float(y)]])
            loss = 0.5 * F.binary_cross_entropy_with_logits(t_logits, target) + 0.5 * F.binary_cross_entropy_with_logits(t_max, target)
            zero = torch.zeros(1, 1)
            logits, max_logits = torch.cat([zero, logits], 1), torch.cat([zero, max_logits], 1)  # milkit's [0, s] form
            losses = {'bag': {'name': 'cross-entropy', 'weight': 0.5}, 'maxInstance': {'name': 'dsmil-max-instance', 'criterion': 'ce', 'weight': 0.5}}
        elif case['criterion'] == 'bce':
            loss = 0.5 * F.binary_cross_entropy_with_logits(t_logits, one_hot(y, heads)) + 0.5 * F.binary_cross_entropy_with_logits(t_max, one_hot(y, heads))
            losses = {'bag': {'name': 'binary-cross-entropy', 'weight': 0.5}, 'maxInstance': {'name': 'dsmil-max-instance', 'criterion': 'bce', 'weight': 0.5}}
        else:
            label = torch.tensor([y])
            loss = 0.5 * F.cross_entropy(t_logits, label) + 0.5 * F.cross_entropy(t_max, label)
            losses = {'bag': {'name': 'cross-entropy', 'weight': 0.5}, 'maxInstance': {'name': 'dsmil-max-instance', 'criterion': 'ce', 'weight': 0.5}}
        loss.backward()
        spec = {
            'generator': 'test/reference/dsmil.py', 'seed': case['seed'], 'inputDim': case['d'], 'numClasses': case['c'], 'label': y,
            'aggregator': {'name': 'dsmil', 'queryDim': case['q'], 'nonlinearQuery': case['nonlinear'], 'passingV': case['passing_v'],
                           'binarySingleLogit': case['single']},
            'classifier': {'name': 'linear'},
            'losses': losses,
        }
        save_case(case['name'], model, spec, {
            'x': x, 'eval.logits': logits, 'eval.embedding': b, 'eval.instanceScores': a.t(), 'eval.extras.maxInstanceLogits': max_logits,
            'train.loss': loss.detach().reshape(1), **grads_of(model),
        })


if __name__ == '__main__':
    main()
