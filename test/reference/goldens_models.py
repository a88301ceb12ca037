#!/usr/bin/python3
"""Golden cases of the model plugins (aggregators, classifiers, the LIPN pre-screener), from PyTorch.

Each case fills the reference module with pattern-v1 weights (golden_common.py), runs one eval-mode forward on a
seeded float32 input and writes plugins/<kind>s/<name>.golden.json. The zoo aggregators reuse the reference
modules of the parity fixtures (abmil.py, clam.py, dsmil.py, dtfd.py, transmil.py, hdmil_reference.py) and the
options their fixtures record, so the keys match milkit's torch naming.

Run: /usr/bin/python3 test/reference/goldens_models.py
"""
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

import abmil  # noqa: E402
import clam  # noqa: E402
import dsmil  # noqa: E402
import dtfd  # noqa: E402
import hdmil_reference as hdmil  # noqa: E402
import transmil  # noqa: E402
from golden_common import f32_inputs, fill_pattern, nested, write_golden  # noqa: E402
from zoo_common import FIXTURES, read_safetensors  # noqa: E402

GENERATOR = 'test/reference/goldens_models.py'
torch.set_default_dtype(torch.float64)


def fixture_spec(name):
    return json.loads(read_safetensors(os.path.join(FIXTURES, f'{name}.case.safetensors'))[1]['case'])


def aggregator_golden(name, options, d, c, x, outputs, classifier=None, injected=None):
    case = {'options': options, 'inputDim': d, 'numClasses': c, 'classifier': classifier or {'name': 'linear'},
            'weights': 'pattern-v1', 'x': nested(x)}
    if injected:
        case['injected'] = injected
    expected = {k: nested(v) for k, v in outputs.items() if k != 'extras'}
    if 'extras' in outputs:
        expected['extras'] = {k: nested(v) for k, v in outputs['extras'].items()}
    write_golden('aggregators', name, {'kind': 'aggregator', 'plugin': name, 'generator': GENERATOR, 'torch': torch.__version__,
                                       'case': case, 'expected': expected})


class ProjectedPool(nn.Module):
    """h = ReLU(x W + b), z = reduce_n h, logits = classifier(z); keys fc.*, classifier.fc.*."""

    def __init__(self, d, e, c, reduce):
        super().__init__()
        self.fc = nn.Linear(d, e)
        self.classifier = nn.Module()
        self.classifier.fc = nn.Linear(e, c)
        self.reduce = reduce

    def forward(self, x):
        z = self.reduce(torch.relu(self.fc(x)))
        return self.classifier.fc(z), z


def pools():
    for name, reduce, seed in [('max-pool', lambda h: h.max(0, keepdim=True).values, 1), ('mean-pool', lambda h: h.mean(0, keepdim=True), 2)]:
        model = ProjectedPool(8, 6, 2, reduce)
        fill_pattern(model)
        x = f32_inputs((7, 8), seed)
        with torch.no_grad():
            logits, z = model(x)
        aggregator_golden(name, {'projectDim': 6, 'dropout': 0}, 8, 2, x, {'logits': logits, 'embedding': z})


def options_of(spec):
    return {k: v for k, v in spec['aggregator'].items() if k != 'name'}


def zoo():
    case = abmil.CASES[0]
    spec = fixture_spec(case['name'])
    model = abmil.build(case)
    fill_pattern(model)
    x = f32_inputs((case['n'], case['d']), 101)
    model.eval()
    with torch.no_grad():
        logits, z, a = model(x)
    aggregator_golden('abmil', options_of(spec), case['d'], case['c'], x, {'logits': logits, 'embedding': z, 'instanceScores': a})

    for case in [clam.CASES[1], clam.CASES[2]]:  # clam-sb-subtyping (plain attention), clam-mb
        spec = fixture_spec(case['name'])
        model = clam.build(case)
        fill_pattern(model)
        x = f32_inputs((case['n'], case['d']), 102)
        model.eval()
        with torch.no_grad():
            logits, m, a, _ = model(x)
        aggregator_golden(spec['aggregator']['name'], options_of(spec), case['d'], case['c'], x, {'logits': logits, 'embedding': m, 'instanceScores': a})

    case = dsmil.CASES[1]  # passing V, 3 classes
    spec = fixture_spec(case['name'])
    model = dsmil.build(case)
    fill_pattern(model)
    x = f32_inputs((case['n'], case['d']), 103)
    model.eval()
    with torch.no_grad():
        logits, max_logits, a, b = model(x)
    aggregator_golden('dsmil', options_of(spec), case['d'], case['c'], x,
                      {'logits': logits, 'embedding': b, 'instanceScores': a.t(), 'extras': {'maxInstanceLogits': max_logits}})

    case = dtfd.CASES[1]  # maxmins, 3 classes
    spec = fixture_spec(case['name'])
    model = dtfd.build(case)
    fill_pattern(model)
    x = f32_inputs((case['n'], case['d']), 104)
    perm = np.random.RandomState(104).permutation(case['n'])
    model.eval()
    with torch.no_grad():
        tier1, logits, z, scores = model(x, perm, case['groups'], case['distill'], case['total'] // case['groups'])
    aggregator_golden('dtfd-mil', options_of(spec), case['d'], case['c'], x,
                      {'logits': logits, 'embedding': z, 'instanceScores': scores, 'extras': {'pseudoBagLogits': tier1}},
                      injected={'permutation': [int(i) for i in perm]})

    case = transmil.CASES[1]  # fixed alignment, kernel 5, 3 classes
    spec = fixture_spec(case['name'])
    model = transmil.build(case)
    fill_pattern(model)
    x = f32_inputs((case['n'], case['d']), 105)
    model.eval()
    with torch.no_grad():
        logits, cls = model(x)
    aggregator_golden('transmil', options_of(spec), case['d'], case['c'], x, {'logits': logits, 'embedding': cls})

    dmin()


def dmin():
    d, hidden, attn, c, degree = 10, 8, 6, 3, 3
    model = hdmil.Dmin(d, hidden, attn, c, degree)
    fill_pattern(model)
    for seed in range(106, 200):  # an input whose eval gates S > 0 are unambiguous and keep some, not all, per class
        x = f32_inputs((12, d), seed)
        with torch.no_grad():
            s = model.attend(x)[1]
        kept = (s > 0).sum(0)
        if (s.abs() > 1e-3).all() and (kept > 0).all() and (kept < x.shape[0]).all():
            break
    else:
        raise SystemExit('dmin: no input with unambiguous gates')
    with torch.no_grad():
        out = model.eval_forward(x)
    aggregator_golden('dmin', {'hiddenDim': hidden, 'attnDim': attn, 'dropout': 0}, d, c, x,
                      {'logits': out['logits'], 'embedding': out['embedding'], 'instanceScores': out['attention']},
                      classifier={'name': 'cka', 'degree': degree})


def classifier_golden(name, options, in_dim, out_dim, model, seed):
    fill_pattern(model)
    z = f32_inputs((3, in_dim), seed)
    with torch.no_grad():
        logits = model(z)
    write_golden('classifiers', name, {'kind': 'classifier', 'plugin': name, 'generator': GENERATOR, 'torch': torch.__version__,
                                       'case': {'options': options, 'inputDim': in_dim, 'outputDim': out_dim, 'weights': 'pattern-v1', 'z': nested(z)},
                                       'expected': {'logits': nested(logits)}})


class Holder(nn.Module):
    def __init__(self, attr, module, forward):
        super().__init__()
        setattr(self, attr, module)
        self._forward = forward

    def forward(self, z):
        return self._forward(self, z)


def classifiers():
    classifier_golden('linear', {}, 6, 3, Holder('fc', nn.Linear(6, 3), lambda m, z: m.fc(z)), 201)
    layers = nn.Sequential(nn.Linear(6, 5), nn.GELU(), nn.Dropout(0.0), nn.Linear(5, 4), nn.GELU(), nn.Dropout(0.0), nn.Linear(4, 3))
    classifier_golden('mlp', {'hiddenDims': [5, 4], 'activation': 'gelu'}, 6, 3, Holder('layers', layers, lambda m, z: m.layers(z)), 202)
    classifier_golden('cka', {'degree': 4, 'hiddenDims': [3]}, 6, 2, hdmil.Cka([6, 3, 2], 4), 203)


def prescreeners():
    c = 2
    model = hdmil.Lipn(c)
    fill_pattern(model)
    model.eval()
    gen = torch.Generator().manual_seed(301)
    thumbs = torch.randint(0, 256, (2, 16, 16, 3), generator=gen).double() / 255
    with torch.no_grad():
        scores = model(thumbs)
    write_golden('prescreeners', 'lipn', {'kind': 'prescreener', 'plugin': 'lipn', 'generator': GENERATOR, 'torch': torch.__version__,
                                          'case': {'options': {}, 'numClasses': c, 'weights': 'pattern-v1',
                                                   'thumbsUint8': [int(v) for v in (thumbs * 255).round().flatten().tolist()], 'thumbsShape': [2, 16, 16, 3]},
                                          'expected': {'branchScores': nested(scores), 'score': nested(scores.max(1).values)}})
    write_golden('prescreeners', 'none', {'kind': 'prescreener', 'plugin': 'none', 'generator': GENERATOR,
                                          'case': {'options': {}, 'numClasses': 2}, 'expected': {'instance': None}})


def main():
    pools()
    zoo()
    classifiers()
    prescreeners()


if __name__ == '__main__':
    main()
