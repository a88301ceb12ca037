"""PyTorch `torch.save` files (zip format) for milkit's restricted .pt reader tests.

Run: /usr/bin/python3 test/reference/make_pt_fixtures.py  (Debian python3-torch)
Writes test/reference/fixtures/pt/*.pt. Values follow closed formulas the tests recompute exactly:
  features[i, j] = ((i * 7919 + j * 104729) % 2001 - 1000) / 64      (exact in float32 and float16)
  coords[i]      = (256 * (i % 5), 256 * (i // 5))
  thumbs[i, y, x, c] = (i * 31 + y * 7 + x * 3 + c * 50) % 256
The hostile files are only written, never loaded here: their pickles call os.system / builtins.eval.
"""
import collections
import io
import os
import pickle
import zipfile
from pathlib import Path

import torch

out = Path(__file__).parent / "fixtures" / "pt"
out.mkdir(parents=True, exist_ok=True)


def features(n, d, dtype=torch.float32):
    i = torch.arange(n)[:, None]
    j = torch.arange(d)[None, :]
    return (((i * 7919 + j * 104729) % 2001 - 1000).to(torch.float64) / 64).to(dtype)


def coords(n):
    i = torch.arange(n)
    return torch.stack([256 * (i % 5), 256 * torch.div(i, 5, rounding_mode="floor")], dim=1).to(torch.int64)


def thumbs(n, channels):
    i, y, x, c = torch.meshgrid(torch.arange(n), torch.arange(16), torch.arange(16), torch.arange(channels), indexing="ij")
    return ((i * 31 + y * 7 + x * 3 + c * 50) % 256).to(torch.uint8)


# CLAM pt_files/<slide_id>.pt: one float32 [N, D] tensor.
torch.save(features(6, 32), out / "features.pt")
torch.save(features(3, 16, torch.float16), out / "half.pt")

# A non-contiguous view: storage offset 16 + 1 and strides (1, 32) of a [12, 32] storage. torch.save keeps the
# whole storage and the view's geometry; the reader must apply both. Expected = features(12, 32)[1:, 1::2].T.
base = features(12, 32)
view = base[1:, 1::2].t()
assert not view.is_contiguous() and view.storage_offset() == 33
torch.save(view, out / "view.pt")

# Containers: a dict, an OrderedDict and a tuple of tensors; two tensors sharing one storage.
torch.save({"features": features(7, 16), "coords": coords(7), "note": "synthetic", "n": 7}, out / "dict.pt")
torch.save(collections.OrderedDict([("features", features(5, 16)), ("thumbs", thumbs(5, 4))]), out / "ordered.pt")
torch.save((features(4, 8), coords(4)), out / "tuple.pt")
shared = features(6, 16)
torch.save({"features": shared, "head": shared[:2]}, out / "shared.pt")

# Protocol 4 (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL), which callers may choose with pickle_protocol=4.
torch.save({"features": features(3, 8)}, out / "protocol4.pt", pickle_protocol=4)

# HDMIL 1.25x_img_pt/<slide_id>.pt: uint8 [N, 16, 16, 4] thumbnails in feature-row order.
torch.save(thumbs(5, 4), out / "thumbs-rgba.pt")


class Shell:
    """An object whose pickle asks the loader to run a shell command."""

    def __reduce__(self):
        return (os.system, ("echo milkit-should-never-run-this",))


class Evaluate:
    def __reduce__(self):
        return (eval, ("1 + 1",))


torch.save({"features": features(2, 4), "payload": Shell()}, out / "hostile-system.pt")
torch.save(Evaluate(), out / "hostile-eval.pt")

# A pickle that REDUCEs an allowed global's result with a storage as the callable.
with zipfile.ZipFile(out / "hostile-reduce.pt", "w", zipfile.ZIP_STORED) as z:
    raw = io.BytesIO()
    raw.write(b"\x80\x02" + b"ccollections\nOrderedDict\n)R" + b")R.")
    z.writestr("archive/data.pkl", raw.getvalue())
    z.writestr("archive/version", "3\n")

# The legacy (pre-1.6) non-zip format: refused with a hint to re-save.
torch.save(features(2, 4), out / "legacy.pt", _use_new_zipfile_serialization=False)

for p in sorted(out.glob("*.pt")):
    print(f"{p.name}: {p.stat().st_size} bytes")
print("torch", torch.__version__, "pickle protocol", pickle.DEFAULT_PROTOCOL)
