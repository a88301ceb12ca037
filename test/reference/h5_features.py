"""CLAM/TRIDENT-layout feature files written by h5py, for milkit's h5 reader tests.

Run: /usr/bin/python3 test/reference/h5_features.py  (Debian python3-h5py)
Writes test/reference/fixtures/h5/*.h5. Values follow closed formulas the tests recompute exactly:
  features[i, j] = ((i * 7919 + j * 104729) % 2001 - 1000) / 64      (exact in float32)
  coords[i]      = (256 * (i % 5), 256 * (i // 5))
  thumbs[i, y, x, c] = (i * 31 + y * 7 + x * 3 + c * 50) % 256
"""
from pathlib import Path

import h5py
import numpy as np

out = Path(__file__).parent / "fixtures" / "h5"
out.mkdir(parents=True, exist_ok=True)


def features(n, d):
    i = np.arange(n)[:, None]
    j = np.arange(d)[None, :]
    return (((i * 7919 + j * 104729) % 2001 - 1000) / 64).astype(np.float32)


def coords(n, dtype):
    i = np.arange(n)
    return np.stack([256 * (i % 5), 256 * (i // 5)], axis=1).astype(dtype)


def thumbs(n, channels=3):
    i, y, x, c = np.meshgrid(np.arange(n), np.arange(16), np.arange(16), np.arange(channels), indexing="ij")
    return ((i * 31 + y * 7 + x * 3 + c * 50) % 256).astype(np.uint8)


def clam_append(f, name, data):
    """CLAM's save_hdf5: chunks of one row, unlimited first axis, rows appended batch by batch."""
    chunk = (1,) + data.shape[1:]
    dset = f.create_dataset(name, shape=(0,) + data.shape[1:], maxshape=(None,) + data.shape[1:], chunks=chunk, dtype=data.dtype)
    for start in range(0, len(data), 4):
        batch = data[start:start + 4]
        dset.resize(len(dset) + len(batch), axis=0)
        dset[-len(batch):] = batch
    return dset


# CLAM extract_features_fp.py layout: D = 1024, (1, 1024) chunks, int32 coords with patch attributes.
with h5py.File(out / "clam-1024.h5", "w") as f:
    clam_append(f, "features", features(6, 1024))
    c = clam_append(f, "coords", coords(6, np.int32))
    c.attrs["patch_level"] = 0
    c.attrs["patch_size"] = 256

# TRIDENT-like: contiguous float32 features, int64 coords, attributes on the file.
with h5py.File(out / "trident.h5", "w") as f:
    f.create_dataset("features", data=features(7, 16))
    f.create_dataset("coords", data=coords(7, np.int64))
    f.attrs["encoder"] = "synthetic"

# HDMIL-style thumbnails beside the features (RGB and RGBA variants).
with h5py.File(out / "thumbs.h5", "w") as f:
    f.create_dataset("features", data=features(5, 16))
    f.create_dataset("coords", data=coords(5, np.int32))
    f.create_dataset("thumbs", data=thumbs(5))
with h5py.File(out / "thumbs-rgba.h5", "w") as f:
    f.create_dataset("features", data=features(5, 16))
    f.create_dataset("thumbs", data=thumbs(5, 4))

# Bad inputs.
with h5py.File(out / "no-features.h5", "w") as f:
    f.create_dataset("coords", data=coords(5, np.int32))
with h5py.File(out / "non-finite.h5", "w") as f:
    x = features(5, 16)
    x[3, 2] = np.nan
    x[4, 0] = np.inf
    f.create_dataset("features", data=x)
with h5py.File(out / "coords-mismatch.h5", "w") as f:
    f.create_dataset("features", data=features(5, 16))
    f.create_dataset("coords", data=coords(4, np.int32))
with h5py.File(out / "empty.h5", "w") as f:
    f.create_dataset("features", data=np.zeros((0, 16), np.float32), maxshape=(None, 16), chunks=(1, 16))
with h5py.File(out / "narrow.h5", "w") as f:
    f.create_dataset("features", data=features(5, 8))
with h5py.File(out / "float16.h5", "w") as f:
    f.create_dataset("features", data=features(3, 16).astype(np.float16))
with h5py.File(out / "one-dim.h5", "w") as f:
    f.create_dataset("features", data=features(1, 16)[0])

for p in sorted(out.glob("*.h5")):
    print(f"{p.name}: {p.stat().st_size} bytes")
print("h5py", h5py.__version__, "numpy", np.__version__)
