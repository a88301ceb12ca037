#!/usr/bin/python3
"""Golden cases of the training strategies (plugins/strategies/<name>.golden.json), from PyTorch.

A strategy golden is one training step: a small model filled with pattern-v1 weights (golden_common.py), a fixed
bag (features and, when the strategy reads them, 16 x 16 thumbnails drawn from a formula), the mode of every
model part, and what the step produces: the step's forward logits (unless the strategy replaces the model's
losses, in which case the engine runs no model forward), the strategy's loss terms and its step metrics.

- standard: changes nothing, so its expected logits are the plain composed model's own training-mode forward
  (a mean-pool with dropout 0 and a linear head), and it adds no loss terms and no metrics.
- gate-distillation (docs/methods/hdmil.md, LIPN training): computed here end to end and independently of
  milkit: DMIN's gate logits S in train mode (dropout 0, so no draw to inject), targets M_HR = 1[S > 0], LIPN's
  branch scores O in train mode (BatchNorm on the batch statistics of the bag's N thumbnails), the imitation loss
  mean|M_LR - M_HR| + (e_LR - e_HR)^2 with union keep rates over classes 0 and 1, and the logged union keep
  fractions of the targets and of 1[O > 0] over all branches.

Thumbnails are not stored: uint8 value i of the row-major [N, 16, 16, 3] block is (7 i^2 + 13 i + 5) mod 251
("thumbs-quadratic-v1"), scaled by 1/255; src/testing/contracts/strategy.ts rebuilds it.

Run: /usr/bin/python3 test/reference/goldens_strategies.py
"""
import numpy as np
import torch
import torch.nn as nn

torch.set_default_dtype(torch.float64)

import hdmil_reference as hdmil  # noqa: E402
from golden_common import f32_inputs, fill_pattern, nested, write_golden  # noqa: E402

GENERATOR = 'test/reference/goldens_strategies.py'
torch.set_default_dtype(torch.float64)


def thumbs_uint8(shape):
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    return ((7 * i * i + 13 * i + 5) % 251).reshape(shape)


def union_fraction(mask):
    """Fraction of rows kept by any branch (mask entries > 0), over every column."""
    return float((mask > 0).any(dim=1).double().mean())


def standard():
    d, e, c = 8, 6, 2
    model = nn.Module()
    model.fc = nn.Linear(d, e)
    model.classifier = nn.Module()
    model.classifier.fc = nn.Linear(e, c)
    fill_pattern(model)
    x = f32_inputs((7, d), 401)
    with torch.no_grad():
        z = torch.relu(model.fc(x)).mean(0, keepdim=True)
        logits = model.classifier.fc(z)
    case = {'options': {}, 'model': {'aggregator': {'name': 'mean-pool', 'projectDim': e, 'dropout': 0}, 'classifier': {'name': 'linear'},
                                     'inputDim': d, 'numClasses': c, 'weights': 'pattern-v1'},
            'training': {'aggregator': True, 'classifier': True}, 'label': 1, 'x': nested(x)}
    write_golden('strategies', 'standard', {'kind': 'strategy', 'plugin': 'standard', 'generator': GENERATOR, 'torch': torch.__version__,
                                            'note': 'standard changes nothing: the logits are the composed model\'s own forward',
                                            'case': case, 'expected': {'logits': nested(logits), 'lossTerms': {}, 'stepMetrics': {}}})


def gate_distillation():
    d, hidden, attn, c, degree, n = 10, 8, 6, 3, 3, 8
    dmin = hdmil.Dmin(d, hidden, attn, c, degree)
    fill_pattern(dmin)
    lipn = hdmil.Lipn(c)
    fill_pattern(lipn)
    lipn.train()  # the pre-screener trains in this stage: BatchNorm normalises with the bag's batch statistics
    shape = [n, 16, 16, 3]
    thumbs = torch.from_numpy(thumbs_uint8(shape)).double() / 255
    with torch.no_grad():
        scores = lipn(thumbs)  # O [N, C]
    if not (scores.abs() > 1e-3).all():
        raise SystemExit('gate-distillation: a branch score is within 1e-3 of 0; change the thumbnail formula')
    for seed in range(402, 600):  # features whose gates S > 0 are unambiguous and keep some, not all, per class
        x = f32_inputs((n, d), seed)
        with torch.no_grad():
            s = dmin.attend(x)[1]  # train mode with dropout 0 is the same computation
        kept = (s > 0).sum(0)
        if (s.abs() > 1e-3).all() and (kept > 0).all() and (kept < n).all():
            break
    else:
        raise SystemExit('gate-distillation: no input with unambiguous gates')
    targets = (s > 0).double()  # M_HR
    with torch.no_grad():
        imitation = hdmil.imitation_loss(scores, targets)
    case = {'options': {}, 'model': {'aggregator': {'name': 'dmin', 'hiddenDim': hidden, 'attnDim': attn, 'dropout': 0},
                                     'classifier': {'name': 'cka', 'degree': degree}, 'prescreener': {'name': 'lipn'},
                                     'inputDim': d, 'numClasses': c, 'weights': 'pattern-v1'},
            'training': {'aggregator': True, 'classifier': True, 'prescreener': True}, 'label': 1, 'x': nested(x),
            'thumbs': {'formula': 'thumbs-quadratic-v1', 'shape': shape}}
    expected = {'lossTerms': {'imitation': float(f'{float(imitation):.9g}')},
                'stepMetrics': {'target_kept': union_fraction(targets), 'kept': union_fraction(scores)}}
    write_golden('strategies', 'gate-distillation', {
        'kind': 'strategy', 'plugin': 'gate-distillation', 'generator': GENERATOR, 'torch': torch.__version__,
        'note': 'independent end-to-end torch computation: DMIN gate logits (train mode, dropout 0) -> targets 1[S > 0]; '
                'LIPN branch scores in train mode; LIPN imitation loss; union keep fractions over all branches',
        'case': case, 'expected': expected})
    print('  S =', s.numpy().round(4).tolist())
    print('  O =', scores.numpy().round(4).tolist())
    print('  expected', expected)


def mhim():
    """MHIM-MIL v1 one step (docs/methods/mhim-mil.md): an ungated bias-free AB-MIL student, the teacher a copy of it
    (the strategy's init), dropout 0 so no draw is needed; low masking then HAM (beta_hr = 1, deterministic), union,
    the student pools the kept rows in ascending order; consistency alpha * H(softmax(F_t / 0.1), softmax(F_s))."""
    d, e, l, c, n = 8, 6, 4, 2, 10
    model = nn.Module()
    model.feature_extractor_part2 = nn.Sequential(nn.Linear(d, e))
    model.attention = nn.Sequential(nn.Linear(e, l, bias=False), nn.ReLU(), nn.Linear(l, 1, bias=False))
    model.classifier = nn.Sequential(nn.Linear(e, c))
    fill_pattern(model)
    ratio_low, ratio_high, alpha = 0.2, 0.2, 0.5

    def pool(h):
        a = torch.softmax(model.attention(h).T, dim=1)  # [1, M]
        return a, a @ h

    for seed in range(410, 600):  # an input whose masked sets are unambiguous (no near-ties at either boundary)
        x = f32_inputs((n, d), seed)
        with torch.no_grad():
            h = torch.relu(model.feature_extractor_part2(x))
            a, _ = pool(h)
        s = torch.sort(a[0]).values
        k = int(np.ceil(n * ratio_low))
        if (s[k] - s[k - 1]) > 1e-3 and (s[n - k] - s[n - k - 1]) > 1e-3:
            break
    else:
        raise SystemExit('mhim: no input with unambiguous masked sets')
    with torch.no_grad():
        h = torch.relu(model.feature_extractor_part2(x))
        a, f_t = pool(h)  # teacher = student at this step
        low = torch.topk(a[0], int(np.ceil(n * ratio_low)), largest=False).indices.tolist()
        high = torch.topk(a[0], int(np.ceil(n * ratio_high)), largest=True).indices.tolist()
        masked = sorted(set(low) | set(high))
        kept = [i for i in range(n) if i not in masked]
        _, f_s = pool(h[kept])
        logits = model.classifier(f_s)
        target = torch.softmax(f_t / 0.1, dim=-1)
        consistency = alpha * float(-(target * torch.log_softmax(f_s / 1.0, dim=-1)).sum(-1).mean())
    case = {'options': {'maskRatioLow': ratio_low, 'maskRatioHigh': ratio_high, 'alpha': alpha},
            'model': {'aggregator': {'name': 'abmil', 'projectDim': e, 'attnDim': l, 'gated': False, 'attnActivation': 'relu', 'attnBias': False, 'dropout': 0},
                      'classifier': {'name': 'linear'}, 'inputDim': d, 'numClasses': c, 'weights': 'pattern-v1'},
            'training': {'aggregator': True, 'classifier': True}, 'label': 1, 'x': nested(x)}
    expected = {'logits': nested(logits), 'lossTerms': {'consistency': float(f'{consistency:.9g}')},
                'stepMetrics': {'masked_random': 0, 'masked_low': len(low), 'masked_high': len(high), 'masked': len(masked),
                                'ratio_high': ratio_high, 'teacher_rate': 0.9999}}
    write_golden('strategies', 'mhim', {
        'kind': 'strategy', 'plugin': 'mhim', 'generator': GENERATOR, 'torch': torch.__version__,
        'note': 'independent torch computation of one MHIM-MIL v1 step: teacher (= student copy) attention, low + high '
                'masking by topk, union, student AB-MIL on the kept rows, consistency loss with tau_t 0.1, tau_s 1',
        'case': case, 'expected': expected})
    print('  masked', masked, 'expected', expected)


def main():
    standard()
    gate_distillation()
    mhim()


if __name__ == '__main__':
    main()
