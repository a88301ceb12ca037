"""Shared pieces of the golden-case generators (goldens_models.py, goldens_losses.py, goldens_metrics.py).

A golden case is a small JSON file next to a built-in plugin (plugins/<kind>s/<name>.golden.json): a fixed input
and the output this independent implementation computes for it. Model weights are not stored: every tensor is
filled from the "pattern-v1" formula below, keyed by its PyTorch state_dict key, which milkit's
src/testing/contracts/golden.ts (patternValues) rebuilds in TypeScript. Maths runs in float64 on float32-rounded
weights and inputs.
"""
import json
import math
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MAX_GOLDEN_BYTES = 8_000


def key_hash(key):
    """FNV-1a 32-bit over the key's characters (keys are ASCII)."""
    h = 0x811C9DC5
    for ch in key:
        h ^= ord(ch)
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def pattern_values(key, shape):
    """pattern-v1 in torch layout, rounded to float32, returned as float64."""
    size = int(np.prod(shape)) if len(shape) else 1
    phase = (key_hash(key) % 6283) / 1000
    wave = np.sin(0.7548776662 * np.arange(size, dtype=np.float64) + phase)
    if key.endswith('running_var'):
        values = 0.75 + 0.5 * wave * wave
    elif key.endswith('running_mean'):
        values = 0.1 * wave
    elif len(shape) >= 2:
        values = wave * 1.5 / math.sqrt(int(np.prod(shape[1:])))
    elif key.endswith('weight'):
        values = 1 + 0.2 * wave
    else:
        values = 0.1 * wave
    return values.astype(np.float32).astype(np.float64).reshape(shape)


def fill_pattern(module):
    """Every floating tensor of the state_dict gets pattern-v1; integer buffers keep their value."""
    state = module.state_dict()
    for key, tensor in state.items():
        if tensor.is_floating_point():
            tensor.copy_(torch.from_numpy(pattern_values(key, list(tensor.shape))))
    module.load_state_dict(state)


def f32_inputs(shape, seed, scale=1.0):
    """Seeded standard-normal inputs rounded to float32 (float64 tensor)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).float().double()


def nested(t, digits=9):
    """Tensor/array → nested lists of floats with `digits` significant digits (float32 inputs round-trip at 9)."""
    array = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return json.loads(json.dumps(np.vectorize(lambda v: float(f'{v:.{digits}g}'))(array).tolist() if array.size else array.tolist()))


def write_golden(kind_folder, name, payload):
    """Writes plugins/<kind_folder>/<name>.golden.json; refuses files over the size budget."""
    path = os.path.join(REPO, 'plugins', kind_folder, f'{name}.golden.json')
    body = {'$comment': 'Golden case: generated, do not edit; regenerate with the script in "generator".', **payload}
    text = json.dumps(body, indent=None, separators=(',', ':')) + '\n'
    if len(text) > MAX_GOLDEN_BYTES:
        raise SystemExit(f'{path}: {len(text)} bytes exceeds the {MAX_GOLDEN_BYTES}-byte golden budget; shrink the case')
    with open(path, 'w') as f:
        f.write(text)
    print(f'{os.path.relpath(path, REPO)}: {len(text)} B')
