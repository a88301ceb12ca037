#!/usr/bin/python3
"""Golden cases of the Youden-threshold metrics (accuracy-youden, f1-youden), by hand with numpy.

The ROC thresholds are +inf followed by the distinct scores, highest first (scikit-learn's roc_curve without
dropping intermediate points, which never changes the argmin); t* is the first threshold minimising FPR - TPR;
slides with p(class 1) >= t* are positive. F1 is the positive class's (scikit-learn's binary default).

Run: /usr/bin/python3 test/reference/goldens_metrics_youden.py  -> plugins/metrics/{accuracy,f1}-youden.golden.json
"""
import numpy as np

from golden_common import write_golden

GENERATOR = 'test/reference/goldens_metrics_youden.py'

INPUTS = [
    # 7 negatives, 3 positives: the Youden threshold (0.55) is not 0.5, so arg-max accuracy differs.
    {'numClasses': 2, 'labels': [0, 0, 0, 0, 0, 0, 0, 1, 1, 1],
     'probs': [[0.8, 0.2], [0.35, 0.65], [0.6, 0.4], [0.45, 0.55], [0.9, 0.1], [0.7, 0.3], [0.55, 0.45], [0.3, 0.7], [0.65, 0.35], [0.2, 0.8]]},
    # Every score below 0.5, perfectly ranked: the threshold moves down to 0.3 and everything is correct.
    {'numClasses': 2, 'labels': [0, 0, 0, 1, 1],
     'probs': [[0.9, 0.1], [0.85, 0.15], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]]},
]


def youden(labels, scores):
    labels, scores = np.asarray(labels), np.asarray(scores)
    best_t, best = np.inf, 0.0
    for t in sorted(set(scores.tolist()), reverse=True):
        pred = scores >= t
        j = pred[labels == 1].mean() - pred[labels == 0].mean()
        if j > best + 0.0:
            best_t, best = t, j
    return (scores >= best_t).astype(int)


def main():
    acc, f1 = [], []
    for inp in INPUTS:
        y = np.asarray(inp['labels'])
        pred = youden(y, [p[1] for p in inp['probs']])
        acc.append(float((pred == y).mean()))
        tp, fp, fn = int(((pred == 1) & (y == 1)).sum()), int(((pred == 1) & (y == 0)).sum()), int(((pred == 0) & (y == 1)).sum())
        f1.append(2 * tp / (2 * tp + fp + fn))
    for name, values in (('accuracy-youden', acc), ('f1-youden', f1)):
        write_golden('metrics', name, {'kind': 'metric', 'plugin': name, 'generator': GENERATOR,
                                       'case': {'options': {}, 'inputs': INPUTS}, 'expected': {'values': values}, 'tolerance': {'atol': 1e-12, 'rtol': 1e-12}})
        print(name, values)


if __name__ == '__main__':
    main()
