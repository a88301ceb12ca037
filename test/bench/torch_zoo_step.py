"""PyTorch side of test/bench/zoo.bench.ts: times one training step (forward, loss, backward, Adam lr 1e-4) of each
MIL-zoo reference model from test/reference/ at full size (D = 1024, the milkit defaults), float32.

Protocol: one JSON request per stdin line, {"model": name, "n": N, "warmup": W, "steps": S}; one JSON reply per line,
{"model": name, "n": N, "ms": [S step times]} (or {"error": text}). The first line printed is {"ready": true, "torch": version}.
Threads: torch.set_num_threads(1) with OpenBLAS's default threads (the fastest setting here: torch threads 2 oversubscribe the cores together with OpenBLAS's).
The networks are the parity references (same maths as the milkit plugins), with dropout off on both sides.
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'reference'))
import abmil as abmil_ref  # noqa: E402
import clam as clam_ref  # noqa: E402
import dsmil as dsmil_ref  # noqa: E402
import dtfd as dtfd_ref  # noqa: E402
import transmil as transmil_ref  # noqa: E402

torch.set_default_dtype(torch.float32)  # the reference modules default to float64 for parity
D, C, LABEL = 1024, 2, 1


def build(name):
    """(model, loss function of (model, x)) for a zoo model at its milkit default size."""
    label = torch.tensor([LABEL])
    if name == 'abmil':
        model = abmil_ref.Abmil(D, 512, 128, C, True, 'tanh', True)
        return model, lambda m, x: F.cross_entropy(m(x)[0], label)
    if name in ('clam-sb', 'clam-mb'):
        model = clam_ref.Clam(D, 512, 256, C, name == 'clam-mb', True, 8, False, 'svm')

        def clam_loss(m, x):
            logits, _, _, inst = m(x, label=LABEL)
            return 0.7 * F.cross_entropy(logits, label) + 0.3 * inst
        return model, clam_loss
    if name == 'dsmil':
        model = dsmil_ref.Dsmil(D, C, 128, True, False)
        target = F.one_hot(label, C).float()

        def dsmil_loss(m, x):
            logits, max_logits, _, _ = m(x)
            return 0.5 * F.binary_cross_entropy_with_logits(logits, target) + 0.5 * F.binary_cross_entropy_with_logits(max_logits, target)
        return model, dsmil_loss
    if name == 'transmil':
        model = transmil_ref.TransMIL(D, 512, C, 8, 256, 6, 33, True)
        return model, lambda m, x: F.cross_entropy(m(x)[0], label)
    if name == 'dtfd-mil':
        model = dtfd_ref.Dtfd(D, 512, 128, C)
        rng = np.random.RandomState(0)

        def dtfd_loss(m, x):
            tier1, logits, _, _ = m(x, rng.permutation(x.shape[0]), 4, 'afs', 1)
            return F.cross_entropy(tier1, label.repeat(tier1.shape[0])) + F.cross_entropy(logits, label)
        return model, dtfd_loss
    raise ValueError(f'unknown model {name}')


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    models, bags = {}, {}
    print(json.dumps({'ready': True, 'torch': torch.__version__}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        name, n = request['model'], int(request['n'])
        try:
            if name not in models:
                model, loss_fn = build(name)
                models[name] = (model, loss_fn, torch.optim.Adam(model.parameters(), lr=1e-4))
            model, loss_fn, optimizer = models[name]
            model.train()
            if n not in bags:
                bags[n] = torch.randn(n, D)
            x = bags[n]
            times = []
            for i in range(int(request['warmup']) + int(request['steps'])):
                start = time.perf_counter()
                optimizer.zero_grad()
                loss = loss_fn(model, x)
                loss.backward()
                optimizer.step()
                loss.item()
                if i >= int(request['warmup']):
                    times.append((time.perf_counter() - start) * 1000)
            print(json.dumps({'model': name, 'n': n, 'ms': times}), flush=True)
        except Exception as error:  # reported in the table, the run goes on
            print(json.dumps({'model': name, 'n': n, 'error': f'{type(error).__name__}: {error}'}), flush=True)


if __name__ == '__main__':
    main()
