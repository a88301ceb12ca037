#!/usr/bin/python3
"""Golden cases of the metric plugins, computed by hand with numpy (the scikit-learn definitions: macro averages
over the classes, Cohen's kappa from the confusion matrix, AUC as the Mann-Whitney statistic with midranks).

Every class appears in both the labels and the predictions, and no row of probabilities has a tied maximum, so
the conventions that differ between libraries (absent classes, argmax ties) do not enter.

Run: /usr/bin/python3 test/reference/goldens_metrics.py  → plugins/metrics/<name>.golden.json
"""
import numpy as np

from golden_common import write_golden

GENERATOR = 'test/reference/goldens_metrics.py'

INPUTS = [
    # Imbalanced binary (7 negatives, 3 positives) with errors on both sides: precision, recall, balanced accuracy
    # and accuracy all differ.
    {'numClasses': 2, 'labels': [0, 0, 0, 0, 0, 0, 0, 1, 1, 1],
     'probs': [[0.8, 0.2], [0.35, 0.65], [0.6, 0.4], [0.45, 0.55], [0.9, 0.1], [0.7, 0.3], [0.55, 0.45], [0.3, 0.7], [0.65, 0.35], [0.2, 0.8]]},
    # Ordinal 3-class with one far error (0 ↔ 2) and near ones: quadratic and plain kappa differ.
    {'numClasses': 3, 'labels': [0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2],
     'probs': [[0.6, 0.3, 0.1], [0.5, 0.2, 0.3], [0.2, 0.1, 0.7], [0.3, 0.45, 0.25], [0.7, 0.2, 0.1], [0.4, 0.35, 0.25],
               [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.15, 0.25, 0.6], [0.25, 0.5, 0.25], [0.1, 0.2, 0.7]]},
]


def confusion(y, pred, c):
    m = np.zeros((c, c))
    for t, p in zip(y, pred):
        m[t, p] += 1
    return m


def per_class(y, pred, c):
    m = confusion(y, pred, c)
    tp = np.diag(m)
    precision = tp / m.sum(0)
    recall = tp / m.sum(1)
    f1 = 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def kappa(y, pred, c, quadratic):
    m = confusion(y, pred, c)
    expected = np.outer(m.sum(1), m.sum(0)) / m.sum()
    i, j = np.indices((c, c))
    w = ((i - j) ** 2) if quadratic else (i != j).astype(float)
    return 1 - (w * m).sum() / (w * expected).sum()


def midranks(values):
    order = np.argsort(values, kind='mergesort')
    ranks = np.empty(len(values))
    sorted_values = np.asarray(values)[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def binary_auc(positive, scores):
    positive = np.asarray(positive, dtype=bool)
    r = midranks(scores)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return (r[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def auc(y, probs, c):
    if c == 2:
        return binary_auc(y == 1, probs[:, 1])
    return float(np.mean([binary_auc(y == k, probs[:, k]) for k in range(c)]))


METRICS = {
    'accuracy': lambda y, p, pred, c: float((y == pred).mean()),
    'balanced-accuracy': lambda y, p, pred, c: float(per_class(y, pred, c)[1].mean()),
    'precision': lambda y, p, pred, c: float(per_class(y, pred, c)[0].mean()),
    'recall': lambda y, p, pred, c: float(per_class(y, pred, c)[1].mean()),
    'f1': lambda y, p, pred, c: float(per_class(y, pred, c)[2].mean()),
    'kappa': lambda y, p, pred, c: float(kappa(y, pred, c, False)),
    'kappa-quadratic': lambda y, p, pred, c: float(kappa(y, pred, c, True)),
    'auc': lambda y, p, pred, c: float(auc(y, p, c)),
}


def main():
    for inp in INPUTS:
        probs = np.asarray(inp['probs'])
        top = np.sort(probs, 1)
        assert (top[:, -1] > top[:, -2]).all(), 'no tied maximum'
        pred = probs.argmax(1)
        assert set(pred) == set(inp['labels']) == set(range(inp['numClasses'])), 'every class labelled and predicted'
    for name, fn in METRICS.items():
        values = [fn(np.asarray(i['labels']), np.asarray(i['probs']), np.asarray(i['probs']).argmax(1), i['numClasses']) for i in INPUTS]
        write_golden('metrics', name, {'kind': 'metric', 'plugin': name, 'generator': GENERATOR,
                                       'case': {'options': {}, 'inputs': INPUTS}, 'expected': {'values': values}, 'tolerance': {'atol': 1e-12, 'rtol': 1e-12}})


if __name__ == '__main__':
    main()
