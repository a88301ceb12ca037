#!/usr/bin/python3
"""Loads a state_dict that milkit exported (`milkit weights export`) back into the PyTorch reference model with
strict=True and checks every tensor is identical (torch.equal, same dtype) to the original reference weights.

Usage: /usr/bin/python3 test/reference/roundtrip_check.py <case name> <milkit-exported.safetensors>
Prints "identical <n> tensors" and exits 0, or names the differing keys and exits 1.
"""
import importlib
import json
import os
import sys

import torch

from zoo_common import FIXTURES, read_safetensors

GENERATORS = {'abmil': 'abmil', 'clam': 'clam', 'dsmil': 'dsmil', 'transmil': 'transmil', 'dtfd': 'dtfd'}


def main(name, exported_path):
    module = importlib.import_module(GENERATORS[name.split('-')[0]])
    case = next(c for c in module.CASES if c['name'] == name)
    original, _ = read_safetensors(os.path.join(FIXTURES, f'{name}.weights.safetensors'))
    exported, _ = read_safetensors(exported_path)
    model = module.build(case)
    # float64 is the generators' default; load as float32 like the original checkpoint.
    model = model.float()
    model.load_state_dict(exported, strict=True)
    bad = [k for k, v in model.state_dict().items() if not (v.dtype == original[k].dtype and torch.equal(v, original[k]))]
    bad += [k for k in original if k not in exported]
    if bad:
        print(json.dumps({'differing': bad}))
        return 1
    print(f'identical {len(original)} tensors')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1], sys.argv[2]))
