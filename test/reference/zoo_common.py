"""Shared pieces of the MIL-zoo reference generators (abmil.py, clam.py, dsmil.py, transmil.py, dtfd.py).

Each generator writes, per case, two small files to test/reference/fixtures/:
  <case>.weights.safetensors  the model's state_dict under the original PyTorch keys, float32 (what a user
                              converts from a .pth checkpoint)
  <case>.case.safetensors     inputs, eval-mode outputs, and one train-mode step with dropout off (loss and the
                              gradient of every parameter, keyed grad.<torch key>, torch layout); the
                              __metadata__ entry "case" holds the JSON spec (options, label, seed, torch version).
The maths runs in float64 on float32-rounded weights and inputs, so the fixtures carry float64-accurate values.
safetensors is written and read by hand (the format is an 8-byte little-endian header length, a JSON header,
then raw little-endian data), independently of milkit's reader.
"""
import json
import os
import struct

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, 'fixtures')
MAX_FIXTURE_BYTES = 50_000

_DTYPES = {torch.float32: ('F32', '<f4'), torch.float64: ('F64', '<f8'), torch.int64: ('I64', '<i8'), torch.int32: ('I32', '<i4')}
_NUMPY = {'F32': '<f4', 'F64': '<f8', 'I64': '<i8', 'I32': '<i4', 'U8': '<u1', 'F16': '<f2'}


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> torch tensor (written in dict order)."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header['__metadata__'] = {k: str(v) for k, v in metadata.items()}
    for name, tensor in tensors.items():
        tag, np_dtype = _DTYPES[tensor.dtype]
        raw = tensor.detach().contiguous().cpu().numpy().astype(np_dtype).tobytes()
        header[name] = {'dtype': tag, 'shape': list(tensor.shape), 'data_offsets': [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * ((8 - len(text) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)
    size = os.path.getsize(path)
    if size > MAX_FIXTURE_BYTES:
        raise SystemExit(f'{path}: {size} bytes exceeds the {MAX_FIXTURE_BYTES}-byte fixture budget; shrink the case')
    return size


def read_safetensors(path):
    """-> (dict name -> torch tensor, metadata dict)."""
    with open(path, 'rb') as f:
        data = f.read()
    (length,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + length].decode('utf-8'))
    metadata = header.pop('__metadata__', {})
    body = data[8 + length:]
    out = {}
    for name, entry in header.items():
        begin, end = entry['data_offsets']
        array = np.frombuffer(body[begin:end], dtype=_NUMPY[entry['dtype']]).reshape(entry['shape'])
        out[name] = torch.from_numpy(array.copy())
    return out, metadata


def f32(t):
    """Round through float32 (what milkit holds) and return float64."""
    return t.detach().float().double()


def randomize(model, seed, scale=None):
    """Draws every parameter afresh (seeded, uniform ±scale or the layer's own init scale) and rounds it to float32."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if scale is None:
                fan_in = p.shape[1] if p.dim() > 1 else p.shape[0]
                if p.dim() > 2:
                    fan_in = int(np.prod(p.shape[1:]))
                bound = 1.0 / max(fan_in, 1) ** 0.5
            else:
                bound = scale
            values = (torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
            p.copy_(f32(values))


def inputs(n, d, seed):
    gen = torch.Generator().manual_seed(seed)
    return f32(torch.randn(n, d, generator=gen, dtype=torch.float64))


def state_dict_f32(model):
    """The state_dict as written to .weights.safetensors: floats as float32, integer buffers kept."""
    return {k: (v.float() if v.is_floating_point() else v) for k, v in model.state_dict().items()}


def grads_of(model):
    return {f'grad.{name}': p.grad.detach().float() for name, p in model.named_parameters() if p.grad is not None}


def save_case(name, model, spec, tensors):
    """Writes <name>.weights.safetensors and <name>.case.safetensors; returns their sizes."""
    os.makedirs(FIXTURES, exist_ok=True)
    meta = {'generator': spec.pop('generator'), 'torch': torch.__version__, **spec}
    w = write_safetensors(os.path.join(FIXTURES, f'{name}.weights.safetensors'), state_dict_f32(model))
    c = write_safetensors(os.path.join(FIXTURES, f'{name}.case.safetensors'),
                          {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()},
                          {'case': json.dumps(meta, sort_keys=True)})
    print(f'{name}: weights {w} B, case {c} B')
