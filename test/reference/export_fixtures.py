#!/usr/bin/python3
"""Loads state_dicts that `milkit weights export` wrote from trained fold checkpoints into the PyTorch reference
models of test/reference/ with strict=True, and computes their logits on a fixed bag.

The reference model is rebuilt from the export's own metadata (milkit.aggregator options, milkit.inputDim,
milkit.numClasses), so nothing but the exported file is needed. The bag is fixed: BAG_SIZE instances drawn by
zoo_common.inputs with the aggregator's seed below; DTFD's pseudo-bags split the instances in their order.

Usage:
  export_fixtures.py write <dir>      for every <dir>/<aggregator>.torch.safetensors (the exports the vitest file
                                      test/core/cli/weights-export.test.ts leaves in $MILKIT_EXPORT_FIXTURES),
                                      writes fixtures/export-<aggregator>.safetensors: the weights torch loaded
                                      (weights.<key>), the bag x, and torch's logits
  export_fixtures.py check <file>...  prints {"<file>": logits [[...]]} as JSON (the live test's torch side)
Either way a key that does not fit fails load_state_dict(strict=True), and the script exits non-zero.
"""
import json
import os
import sys

import torch

from zoo_common import FIXTURES, inputs, read_safetensors, write_safetensors
import abmil
import clam
import dsmil
import dtfd
import hdmil_reference
import transmil

torch.set_default_dtype(torch.float64)

BAG_SIZE = 9
SEEDS = {'abmil': 61, 'clam-sb': 62, 'clam-mb': 63, 'dsmil': 64, 'transmil': 65, 'dtfd-mil': 66, 'dmin': 67}


def build(name, o, d, c, classifier):
    """The reference model for milkit aggregator `name` with options `o`, D = d, C = c and the classifier slot's
    options; returns (model, forward)."""
    if name == 'abmil':
        model = abmil.Abmil(d, o['projectDim'], o['attnDim'], c, o['gated'], o['attnActivation'], o['attnBias'])
        return model, lambda x: model(x)[0]
    if name in ('clam-sb', 'clam-mb'):
        model = clam.Clam(d, o['hiddenDim'], o['attnDim'], c, name == 'clam-mb', o['gated'], o['kSample'], o['subtyping'],
                          'svm' if o['svmLabelsBuffer'] else 'ce')
        return model, lambda x: model(x)[0]
    if name == 'dsmil':
        single = o['binarySingleLogit'] and c == 2
        model = dsmil.Dsmil(d, 1 if single else c, o['queryDim'], o['nonlinearQuery'], o['passingV'])

        def forward(x):
            logits = model(x)[0]
            # milkit's binary single-logit head reports [0, s] (softmax of it = sigmoid of s).
            return torch.cat([torch.zeros_like(logits), logits], dim=1) if single else logits
        return model, forward
    if name == 'transmil':
        model = transmil.TransMIL(d, o['embedDim'], c, o['heads'], o['landmarks'], o['pinvIterations'], o['residualKernel'],
                                  o['nystromAlignment'] == 'pinned-0.0.9')
        return model, lambda x: model(x)[0]
    if name == 'dtfd-mil':
        model = dtfd.Dtfd(d, o['embedDim'], o['attnDim'], c)
        per_group = o['totalInstance'] // o['numGroups']
        groups = min(o['numGroups'], BAG_SIZE)
        return model, lambda x: model(x, torch.arange(x.shape[0]).numpy(), groups, o['distill'], per_group)[1]
    if name == 'dmin':
        if classifier['name'] != 'cka' or classifier['hiddenDims']:
            raise SystemExit('the DMIN reference has single-layer CKA heads only')
        model = hdmil_reference.Dmin(d, o['hiddenDim'], o['attnDim'], c, classifier['degree'])
        # Eval without a pre-screener: per class, softmax of S over the instances with S > 0.
        return model, lambda x: model.eval_forward(x)['logits']
    raise SystemExit(f'no PyTorch reference for aggregator "{name}"')


def load_export(path):
    """-> (aggregator name, strict-loaded reference model in eval mode, forward, x, weights as saved)."""
    tensors, meta = read_safetensors(path)
    options = json.loads(meta['milkit.aggregator'])
    name = options.pop('name')
    model, forward = build(name, options, int(meta['milkit.inputDim']), int(meta['milkit.numClasses']), json.loads(meta['milkit.classifier']))
    model.load_state_dict(tensors, strict=True)  # raises on any missing or unexpected key, or a shape mismatch
    model.eval()
    x = inputs(BAG_SIZE, int(meta['milkit.inputDim']), SEEDS[name])
    return name, model, forward, x, tensors, meta


def logits_of(path):
    name, _, forward, x, tensors, meta = load_export(path)
    with torch.no_grad():
        return name, forward(x), x, tensors, meta


def write(directory):
    for file in sorted(os.listdir(directory)):
        if not file.endswith('.torch.safetensors'):
            continue
        name, logits, x, tensors, meta = logits_of(os.path.join(directory, file))
        out = {'x': x.float(), 'logits': logits.float(), 'logits64': logits}
        out.update({f'weights.{k}': v for k, v in tensors.items()})
        provenance = {k: v for k, v in meta.items() if k in ('milkit.aggregator', 'milkit.classifier', 'milkit.inputDim', 'milkit.numClasses', 'milkit.epoch')}
        size = write_safetensors(os.path.join(FIXTURES, f'export-{name}.safetensors'), out,
                                 {'torch': torch.__version__, 'bagSize': BAG_SIZE, 'seed': SEEDS[name], **provenance})
        print(f'export-{name}.safetensors: {size} B, logits {logits.tolist()}')


def check(files):
    result = {}
    for path in files:
        _, logits, _, _, _ = logits_of(path)
        result[path] = logits.tolist()
    print(json.dumps(result))


if __name__ == '__main__':
    if len(sys.argv) >= 3 and sys.argv[1] == 'write':
        write(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == 'check':
        check(sys.argv[2:])
    else:
        raise SystemExit(__doc__)
