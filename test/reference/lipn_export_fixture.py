#!/usr/bin/python3
"""Writes fixtures/lipn-export.json: what PyTorch makes of the LIPN pre-screener that `milkit weights export`
writes from the committed HDMIL run test/fixtures/infer-hdmil-run (fold 0, stage lipn), so that CI machines
without torch still check the export (test/core/cli/weights-export-lipn.test.ts).

The exported file is loaded with strict key checking into the reference network (hdmil_reference.Lipn, the
`extractor.*` keys of docs/methods/state-dict-keys.md#lipn). The fixture records, from the loaded module's own
state_dict: every key with its shape, dtype and the SHA-256 of its little-endian bytes; and the module's eval-mode
branch scores on fixed thumbnails. The thumbnails need no file: NHWC [5, 16, 16, 3], value i (flat index) =
((i * 7919) mod 1000) / 999 in float32; the test builds the same array.

Regenerate (only when the committed run or the export layout changes on purpose):
  MILKIT_SOURCE=1 node bin/milkit.mjs weights export test/fixtures/infer-hdmil-run -o /tmp/lipn/dmin.torch.safetensors
  /usr/bin/python3 test/reference/lipn_export_fixture.py /tmp/lipn/dmin.lipn.torch.safetensors
"""
import hashlib
import json
import os
import sys

import numpy as np
import torch

import hdmil_reference as hdmil
from zoo_common import read_safetensors

N_CLASSES = 2  # the committed run's classes: normal_tissue, tumor_tissue
SHAPE = [5, 16, 16, 3]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'lipn-export.json')


def thumbnails():
    count = int(np.prod(SHAPE))
    values = (np.arange(count, dtype=np.int64) * 7919 % 1000).astype(np.float32) / np.float32(999)
    return torch.from_numpy(values.reshape(SHAPE))


def main():
    torch.set_default_dtype(torch.float32)
    state, metadata = read_safetensors(sys.argv[1])
    model = hdmil.Lipn(N_CLASSES)
    # strict=True: every key of the reference must be in the file, nothing else may be, and shapes must agree.
    model.load_state_dict(state, strict=True)
    model.eval()
    keys = []
    for key, tensor in model.state_dict().items():
        data = tensor.detach().contiguous().cpu().numpy()
        keys.append({'key': key, 'shape': list(data.shape), 'dtype': str(data.dtype), 'sha256': hashlib.sha256(data.astype(data.dtype.newbyteorder('<')).tobytes()).hexdigest()})
    with torch.no_grad():
        scores = model(thumbnails())
    fixture = {
        'source': 'test/fixtures/infer-hdmil-run fold 0, exported by `milkit weights export` (the .lipn.torch.safetensors file)',
        'stage': metadata.get('milkit.stage'),
        'thumbnails': {'shape': SHAPE, 'formula': '((i * 7919) mod 1000) / 999, float32, flat NHWC index i'},
        'keys': keys,
        'scoresShape': list(scores.shape),
        'scores': [float(v) for v in scores.reshape(-1).tolist()],
    }
    with open(OUT, 'w') as f:
        json.dump(fixture, f, indent=1)
        f.write('\n')
    print(f'wrote {OUT}: {len(keys)} keys, scores {list(scores.shape)}')


if __name__ == '__main__':
    main()
