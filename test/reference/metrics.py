"""Reference values for milkit's metric plugins and curves, from scikit-learn.

Run: /usr/bin/python3 test/reference/metrics.py  (Debian python3-sklearn)
Writes test/reference/fixtures/metrics.json. Probabilities are multiples of 1/20 so ties are frequent
and rows sum to exactly 1 (scikit-learn's multi-class AUC checks that).
"""
import json
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn import metrics as skm

warnings.filterwarnings("ignore")
rng = np.random.default_rng(20250101)


def quantised_probs(labels, num_classes, signal):
    """Rows of multiples of 1/20 that lean towards the true class by `signal` (0 = pure noise)."""
    rows = []
    for y in labels:
        logits = rng.normal(size=num_classes)
        logits[y] += signal
        p = np.exp(logits) / np.exp(logits).sum()
        counts = np.floor(p * 20).astype(int)
        counts[np.argmax(p)] += 20 - counts.sum()
        rows.append(counts / 20)
    return np.array(rows)


def none_if_nan(x):
    x = float(x)
    return None if np.isnan(x) else x


def safe(fn):
    try:
        return none_if_nan(fn())
    except ValueError:
        return None


def case(name, labels, probs, num_classes):
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=float)
    preds = probs.argmax(axis=1)
    all_labels = list(range(num_classes))
    out = {
        "name": name,
        "numClasses": num_classes,
        "labels": labels.tolist(),
        "probs": probs.tolist(),
        "expected": {
            "auc": safe(lambda: skm.roc_auc_score(labels, probs[:, 1]) if num_classes == 2
                        else skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=all_labels)),
            "accuracy": skm.accuracy_score(labels, preds),
            "balanced-accuracy": safe(lambda: skm.balanced_accuracy_score(labels, preds)),
            "precision": skm.precision_score(labels, preds, average="macro", zero_division=0),
            "recall": skm.recall_score(labels, preds, average="macro", zero_division=0),
            "f1": skm.f1_score(labels, preds, average="macro", zero_division=0),
            "kappa": safe(lambda: skm.cohen_kappa_score(labels, preds, labels=all_labels)),
            "kappa-quadratic": safe(lambda: skm.cohen_kappa_score(labels, preds, labels=all_labels, weights="quadratic")),
            "confusion": skm.confusion_matrix(labels, preds, labels=all_labels).tolist(),
        },
    }
    # CLAM's multi-class rule: per-class one-vs-rest AUC, classes absent from the labels skipped.
    if num_classes > 2:
        per_class = [skm.roc_auc_score(labels == c, probs[:, c]) for c in range(num_classes) if 0 < (labels == c).sum() < len(labels)]
        out["expected"]["auc-skip-absent"] = float(np.mean(per_class)) if per_class else None
    if num_classes == 2 and 0 < labels.sum() < len(labels):
        fpr, tpr, thr = skm.roc_curve(labels, probs[:, 1], drop_intermediate=False)
        prec, rec, pthr = skm.precision_recall_curve(labels, probs[:, 1])
        out["expected"]["roc"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": [None if np.isinf(t) else float(t) for t in thr]}
        out["expected"]["pr"] = {"precision": prec.tolist(), "recall": rec.tolist(), "thresholds": pthr.tolist()}
        out["expected"]["averagePrecision"] = skm.average_precision_score(labels, probs[:, 1])
    return out


cases = []
for i, (n, signal) in enumerate([(12, 1.5), (30, 0.5), (50, 2.5), (8, 0.0), (40, 1.0), (25, 3.0), (60, 0.8), (16, 1.2)]):
    labels = rng.integers(0, 2, size=n)
    labels[0], labels[1] = 0, 1
    cases.append(case(f"binary-{i}", labels, quantised_probs(labels, 2, signal), 2))
# Heavy ties: every probability one of three values.
labels = np.array([0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1])
cases.append(case("binary-three-levels", labels, np.array([[1 - p, p] for p in [0.2, 0.5, 0.5, 0.8, 0.5, 0.2, 0.8, 0.8, 0.5, 0.2, 0.5, 0.5]]), 2))
cases.append(case("binary-all-tied", labels, np.full((12, 2), 0.5), 2))
cases.append(case("binary-perfect", [0, 0, 0, 1, 1], [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.05, 0.95]], 2))
cases.append(case("binary-inverted", [0, 0, 1, 1], [[0.1, 0.9], [0.2, 0.8], [0.7, 0.3], [0.9, 0.1]], 2))
# Single-class folds: AUC undefined, kappa possibly undefined.
cases.append(case("single-class-negatives", [0] * 6, quantised_probs([0] * 6, 2, 1.0), 2))
cases.append(case("single-class-positives", [1] * 5, quantised_probs([1] * 5, 2, 1.0), 2))
cases.append(case("single-class-all-correct", [0, 0, 0], [[0.9, 0.1], [0.7, 0.3], [0.6, 0.4]], 2))
for i, (n, c, signal) in enumerate([(30, 3, 1.5), (45, 3, 0.5), (40, 4, 2.0), (70, 7, 1.5), (24, 5, 0.0), (35, 3, 3.0)]):
    labels = rng.integers(0, c, size=n)
    labels[:c] = np.arange(c)
    cases.append(case(f"multiclass-{c}-{i}", labels, quantised_probs(labels, c, signal), c))
# A class absent from the labels (present in the model's output space).
labels = rng.integers(0, 2, size=20)
labels[0], labels[1] = 0, 1
cases.append(case("multiclass-absent-class", labels, quantised_probs(labels, 3, 1.0), 3))
# Ordinal 5-class grades where quadratic and plain kappa differ strongly.
labels = np.array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 2, 2])
off_by_one = np.clip(labels + np.array([0, 1, -1, 0, -1, 1, 0, 1, -1, 0, 1, -1]), 0, 4)
cases.append(case("ordinal-off-by-one", labels, np.eye(5)[off_by_one] * 0.8 + 0.04, 5))

fixture = {"generator": "test/reference/metrics.py", "sklearn": sklearn.__version__, "numpy": np.__version__, "cases": cases}
out = Path(__file__).parent / "fixtures" / "metrics.json"
out.write_text(json.dumps(fixture, separators=(",", ":")))
print(f"{len(cases)} cases → {out} ({out.stat().st_size} bytes)")
