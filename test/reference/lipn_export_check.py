"""Loads a LIPN pre-screener exported by `milkit weights export` into the reference ImageProcessor-equivalent
(hdmil_reference.Lipn: `extractor.*` keys as in docs/methods/state-dict-keys.md#lipn) with strict key checking,
and prints its eval-mode branch scores on the given thumbnails as JSON.

Run: /usr/bin/python3 test/reference/lipn_export_check.py <lipn.safetensors> <thumbs.json> <n_classes>
thumbs.json: {"shape": [N, 16, 16, 3], "values": [...]} in [0, 1] (NHWC).
"""
import json
import sys

import torch

import hdmil_reference as hdmil
from zoo_common import read_safetensors


def main():
    weights, thumbs_file, n_classes = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_default_dtype(torch.float32)
    model = hdmil.Lipn(n_classes)
    state, _ = read_safetensors(weights)
    # strict=True: every key of the reference must be in the file and nothing else may be.
    model.load_state_dict(state, strict=True)
    model.eval()
    spec = json.load(open(thumbs_file))
    thumbs = torch.tensor(spec['values'], dtype=torch.float32).reshape(spec['shape'])
    with torch.no_grad():
        scores = model(thumbs)
    print(json.dumps({'keys': len(state), 'scores': scores.reshape(-1).tolist(), 'shape': list(scores.shape)}))


if __name__ == '__main__':
    main()
