"""Golden cases of the built-in feature extractors, computed independently of milkit:

  /usr/bin/python3 test/reference/goldens_feature_extractors.py

- color-texture: the 49 statistics in numpy (float64), from the description in
  plugins/feature-extractors/color-texture.ts (colour moments of the normalised values, 8-bin colour histograms,
  gradient-orientation and uniform-LBP histograms on the integer grey sum r + g + b).
- onnx: the small CNN of onnx_encoder.py run in PyTorch (eval mode) on the ImageNet-normalised patches; milkit
  runs the exported .onnx through ONNX Runtime and must agree within 1e-4.

Patches come from the "patch-v1" formula, rebuilt in src/testing/contracts/feature-extractor.ts (patchPattern):
v(n, y, x, c) = (37n + 11y + 7x + 53c + 9·((x·y) mod 13) + 60·((⌊x/4⌋ + ⌊y/4⌋) mod 2)) mod 256.
"""
import json
import math
import os

import numpy as np
import torch

from golden_common import MAX_GOLDEN_BYTES, REPO
from onnx_encoder import SMALL_INPUT, SMALL_PATH, small_cnn

IMAGENET = {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}
GENERATOR = 'test/reference/goldens_feature_extractors.py'


def patch_pattern(count, side):
    n = np.arange(count).reshape(-1, 1, 1, 1)
    y = np.arange(side).reshape(1, -1, 1, 1)
    x = np.arange(side).reshape(1, 1, -1, 1)
    c = np.arange(3).reshape(1, 1, 1, -1)
    v = 37 * n + 11 * y + 7 * x + 53 * c + 9 * ((x * y) % 13) + 60 * ((x // 4 + y // 4) % 2)
    return (v % 256).astype(np.uint8)


RING = [(-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0)]


def color_texture(patch, norm):
    side = patch.shape[0]
    v = patch.astype(np.int64)
    out = []
    for c in range(3):
        x = (v[:, :, c] / 255.0 - norm['mean'][c]) / norm['std'][c]
        m = x.mean()
        out += [m, math.sqrt(max(0.0, (x * x).mean() - m * m))]
    for c in range(3):
        out += list(np.bincount((v[:, :, c] >> 5).ravel(), minlength=8) / (side * side))
    s = v.sum(axis=2)
    gx = s[1:-1, 2:] - s[1:-1, :-2]
    gy = s[2:, 1:-1] - s[:-2, 1:-1]
    mag = np.sqrt(gx * gx + gy * gy).astype(np.float64)
    theta = np.arctan2(gy, gx)
    theta = np.where(theta < 0, theta + math.pi, theta)
    bins = np.minimum(7, np.floor(theta / math.pi * 8)).astype(np.int64)
    interior = (side - 2) * (side - 2)
    orient = np.zeros(8)
    moving = mag > 0
    np.add.at(orient, bins[moving], mag[moving])
    out += list(orient / (interior * 765))
    out.append(mag[moving].sum() / (interior * 765))
    centre = s[1:-1, 1:-1]
    bits = [(s[1 + dy:side - 1 + dy, 1 + dx:side - 1 + dx] >= centre).astype(np.int64) for dx, dy in RING]
    ones = sum(bits)
    transitions = sum((bits[i] != bits[i - 1]).astype(np.int64) for i in range(8))
    codes = np.where(transitions <= 2, ones, 9)
    out += list(np.bincount(codes.ravel(), minlength=10) / interior)
    return out


def write(name, golden):
    path = os.path.join(REPO, 'plugins', 'feature-extractors', f'{name}.golden.json')
    text = json.dumps(golden, separators=(',', ':'))
    assert len(text) <= MAX_GOLDEN_BYTES, f'{name}: {len(text)} bytes'
    with open(path, 'w') as f:
        f.write(text + '\n')
    print(f'wrote {os.path.relpath(path, REPO)} ({len(text)} bytes)')


def main():
    count, side = 3, 40
    patches = patch_pattern(count, side)
    features = [[float(np.float32(v)) for v in color_texture(p, IMAGENET)] for p in patches]
    write('color-texture', {
        'kind': 'feature-extractor', 'plugin': 'color-texture', 'generator': GENERATOR,
        'case': {'options': {'inputSize': side}, 'patches': {'pattern': 'patch-v1', 'count': count, 'side': side}},
        'expected': {'dim': len(features[0]), 'features': features},
        'tolerance': {'atol': 1e-6, 'rtol': 1e-6},
    })

    count = 4
    patches = patch_pattern(count, SMALL_INPUT)
    x = torch.from_numpy(patches.astype(np.float32)).permute(0, 3, 1, 2) / 255.0
    mean = torch.tensor(IMAGENET['mean']).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET['std']).view(1, 3, 1, 1)
    with torch.no_grad():
        y = small_cnn()((x - mean) / std)
    write('onnx', {
        'kind': 'feature-extractor', 'plugin': 'onnx', 'generator': GENERATOR,
        'case': {'options': {'model': os.path.relpath(SMALL_PATH, REPO), 'inputSize': SMALL_INPUT}, 'patches': {'pattern': 'patch-v1', 'count': count, 'side': SMALL_INPUT}},
        'expected': {'dim': y.shape[1], 'features': [[round(float(v), 7) for v in row] for row in y]},
        'tolerance': {'atol': 1e-4, 'rtol': 0},
    })


if __name__ == '__main__':
    main()
