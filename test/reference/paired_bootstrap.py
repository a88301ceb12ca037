"""Reference paired bootstrap for test/core/stats/paired-bootstrap.test.ts.

Reads fixtures/paired-bootstrap-input.json (predictions of two models on the same slides and the case resamples
milkit drew), recomputes each resample's metric difference with its own metric code (AUC by the pairwise
Mann-Whitney kernel, macro one-vs-rest for C > 2; accuracy), and writes fixtures/paired-bootstrap.json.
Definitions: percentile CI with numpy's linear quantile; two-sided p = min(1, 2 (1 + min(#d<=0, #d>=0)) / (B' + 1)).
Also the one-model bootstrap of model B alone on the same resamples ("single": metric, percentile CI), the
interval of a table cell (src/core/stats/cell-interval.ts).
Run: python3 test/reference/paired_bootstrap.py
"""
import json
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).parent


def binary_auc(is_pos, scores):
    pos = scores[is_pos]
    neg = scores[~is_pos]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return (greater + 0.5 * ties) / (len(pos) * len(neg))


def metric(name, labels, probs, num_classes):
    if name == "accuracy":
        return float((probs.argmax(axis=1) == labels).mean())
    if num_classes == 2:
        return binary_auc(labels == 1, probs[:, 1])
    per_class = [binary_auc(labels == c, probs[:, c]) for c in range(num_classes)]
    if any(v is None for v in per_class):
        return None
    return float(np.mean(per_class))


def run(case, confidence):
    labels = np.array(case["labels"])
    a = np.array(case["probsA"])
    b = np.array(case["probsB"])
    groups = {}
    for i, cid in enumerate(case["caseIds"]):
        groups.setdefault(cid, []).append(i)
    order = list(groups.values())
    k = case["numClasses"]
    diffs = []
    skipped = 0
    for draw in case["resamples"]:
        idx = np.array([i for c in draw for i in order[c]])
        ma = metric(case["metric"], labels[idx], a[idx], k)
        mb = metric(case["metric"], labels[idx], b[idx], k)
        if ma is None or mb is None:
            skipped += 1
        else:
            diffs.append(mb - ma)
    diffs = np.array(diffs)
    tail = (1 - confidence) / 2
    singles = []
    single_skipped = 0
    for draw in case["resamples"]:
        idx = np.array([i for c in draw for i in order[c]])
        mb = metric(case["metric"], labels[idx], b[idx], k)
        if mb is None:
            single_skipped += 1
        else:
            singles.append(mb)
    singles = np.array(singles)
    below = int((diffs <= 0).sum())
    above = int((diffs >= 0).sum())
    return {
        "name": case["name"],
        "difference": metric(case["metric"], labels, b, k) - metric(case["metric"], labels, a, k),
        "ciLow": float(np.quantile(diffs, tail)),
        "ciHigh": float(np.quantile(diffs, 1 - tail)),
        "p": min(1.0, 2 * (1 + min(below, above)) / (len(diffs) + 1)),
        "undefinedResamples": skipped,
        "single": {
            "value": metric(case["metric"], labels, b, k),
            "ciLow": float(np.quantile(singles, tail)),
            "ciHigh": float(np.quantile(singles, 1 - tail)),
            "undefinedResamples": single_skipped,
        },
    }


def main():
    data = json.loads((HERE / "fixtures" / "paired-bootstrap-input.json").read_text())
    out = {
        "generator": f"test/reference/paired_bootstrap.py, numpy {np.__version__}",
        "results": [run(case, data["confidence"]) for case in data["cases"]],
    }
    (HERE / "fixtures" / "paired-bootstrap.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
