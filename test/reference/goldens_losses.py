#!/usr/bin/python3
"""Golden cases of the loss plugins, from PyTorch: fixed model outputs (logits and extras), the terms each loss
returns and the gradient of their sum with respect to every float input.

Run: /usr/bin/python3 test/reference/goldens_losses.py  → plugins/losses/<name>.golden.json
"""
import math

import torch
import torch.nn.functional as F

from golden_common import f32_inputs, nested, write_golden

torch.set_default_dtype(torch.float64)
GENERATOR = 'test/reference/goldens_losses.py'


def svm_per_sample(s, y, alpha, tau):
    """Smooth top-1 SVM (Berrada et al. 2018) per sample; the hard max where the top-2 gap ≥ τ ln 1000."""
    top2 = s.detach().topk(2, dim=1).values
    hard = (top2[:, 0] - top2[:, 1]) >= tau * math.log(1000.0)
    delta = alpha * (1.0 - F.one_hot(y, s.shape[1]).double())
    shifted = s + delta - s.gather(1, y[:, None])
    return torch.where(hard, shifted.max(dim=1).values, tau * torch.logsumexp(shifted / tau, dim=1)), int(hard.sum())


def golden(name, options, num_classes, label, tensors, compute, ints=None):
    """tensors: name → float tensor (inputs; gradients are taken for all); compute(tensors) → {term: scalar}."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in tensors.items()}
    terms = compute(leaves)
    total = sum(terms.values())
    total.backward()
    case = {'options': options, 'numClasses': num_classes, 'label': label,
            'tensors': {k: nested(v.detach()) for k, v in tensors.items()}}
    if ints:
        case['intTensors'] = {k: [int(i) for i in v] for k, v in ints.items()}
    write_golden('losses', name, {
        'kind': 'loss', 'plugin': name, 'generator': GENERATOR, 'torch': torch.__version__, 'case': case,
        'expected': {'terms': {k: float(v) for k, v in terms.items()}, 'grads': {k: nested(v.grad if v.grad is not None else torch.zeros_like(v)) for k, v in leaves.items()}},
    })


def one_hot(label, c):
    return F.one_hot(torch.tensor([label]), c).double()


def main():
    logits3 = f32_inputs((1, 3), 401, 1.5)
    golden('cross-entropy', {'labelSmoothing': 0.1}, 3, 1, {'logits': logits3},
           lambda t: {'': F.cross_entropy(t['logits'], torch.tensor([1]), label_smoothing=0.1)})
    golden('binary-cross-entropy', {}, 3, 2, {'logits': logits3},
           lambda t: {'': F.binary_cross_entropy_with_logits(t['logits'], one_hot(2, 3))})
    golden('smooth-top1-svm', {'alpha': 0.8, 'tau': 0.5}, 3, 0, {'logits': logits3},
           lambda t: {'': svm_per_sample(t['logits'], torch.tensor([0]), 0.8, 0.5)[0].mean()})

    # CLAM instance loss: 6 pseudo-labelled instances, two with a top-2 gap beyond ln 1000 (hard SVM branch).
    inst = f32_inputs((6, 2), 402, 1.0)
    inst[1] = torch.tensor([9.0, -1.0])
    inst[4] = torch.tensor([-2.5, 7.25])
    targets = torch.tensor([1, 0, 0, 1, 1, 0])
    weights = torch.tensor([0.25, 0.25, 0.125, 0.125, 0.125, 0.125])
    assert svm_per_sample(inst, targets, 1.0, 1.0)[1] == 2
    golden('clam-instance', {'fn': 'svm'}, 2, 1, {'logits': f32_inputs((1, 2), 403), 'extras.instanceLogits': inst, 'extras.instanceWeights': weights},
           lambda t: {'': (svm_per_sample(t['extras.instanceLogits'], targets, 1.0, 1.0)[0] * t['extras.instanceWeights']).sum()},
           ints={'extras.instanceTargets': targets.tolist()})

    golden('dsmil-max-instance', {}, 3, 2, {'logits': logits3, 'extras.maxInstanceLogits': f32_inputs((1, 3), 404, 2.0)},
           lambda t: {'': F.binary_cross_entropy_with_logits(t['extras.maxInstanceLogits'], one_hot(2, 3))})
    golden('dtfd-tier1', {}, 3, 0, {'logits': logits3, 'extras.pseudoBagLogits': f32_inputs((4, 3), 405, 1.5)},
           lambda t: {'': F.cross_entropy(t['extras.pseudoBagLogits'], torch.zeros(4, dtype=torch.long))})
    golden('embedding-mse', {}, 2, 1, {'logits': f32_inputs((1, 2), 406), 'extras.teacherEmbedding': f32_inputs((2, 5), 407), 'extras.studentEmbedding': f32_inputs((2, 5), 408)},
           lambda t: {'': F.mse_loss(t['extras.studentEmbedding'], t['extras.teacherEmbedding'])})
    golden('keep-rate', {'target': 0.7}, 2, 1, {'logits': f32_inputs((1, 2), 409), 'extras.keepRate': torch.tensor([0.4375])},
           lambda t: {'': (t['extras.keepRate'].reshape(()) - 0.7) ** 2})
    golden('logit-kl', {'temperature': 2}, 3, 1, {'logits': logits3, 'extras.teacherLogits': f32_inputs((1, 3), 410, 2.0), 'extras.studentLogits': f32_inputs((1, 3), 411, 2.0)},
           lambda t: {'': F.kl_div(F.log_softmax(t['extras.studentLogits'] / 2, 1), F.log_softmax(t['extras.teacherLogits'] / 2, 1), reduction='batchmean', log_target=True)})


if __name__ == '__main__':
    main()
