"""Patch-coordinate files as CLAM and TRIDENT write them, for milkit's reader (src/core/slides/patch-coords.ts).

Run: /usr/bin/python3 test/reference/make_patch_coords_fixtures.py  (Debian python3-h5py)
CLAM's create_patches_fp.py saves `patches/<slide>.h5` with one dataset `coords` (int64 [N, 2], level-0 x, y) whose
attributes are patch_size and patch_level (the size is in pixels of that level), downsample, level_dim,
downsampled_level_dim, name and save_path. TRIDENT saves `coords` with patch_size (at the target magnification),
patch_size_level0, level0_magnification, target_magnification, overlap and name. Writes
test/reference/fixtures/slides/{clam,trident}-patches.h5 (a few hundred bytes of data each).
"""
from pathlib import Path

import h5py
import numpy as np

out = Path(__file__).parent / "fixtures" / "slides"
coords = np.array([[0, 0], [512, 0], [1024, 512], [1536, 1024]], dtype=np.int64)

with h5py.File(out / "clam-patches.h5", "w") as f:
    d = f.create_dataset("coords", data=coords)
    # A 40× slide patched at level 1 (downsample 2): 256 px there are 512 px at level 0.
    d.attrs["patch_size"] = 256
    d.attrs["patch_level"] = 1
    d.attrs["downsample"] = np.array([2.0, 2.0])
    d.attrs["downsampled_level_dim"] = np.array([1024, 768])
    d.attrs["level_dim"] = np.array([2048, 1536])
    d.attrs["name"] = "clam-slide"
    d.attrs["save_path"] = "RESULTS_DIRECTORY/patches"

with h5py.File(out / "trident-patches.h5", "w") as f:
    d = f.create_dataset("coords", data=(coords // 2).astype(np.int64))
    d.attrs["patch_size"] = 256
    d.attrs["patch_size_level0"] = 256
    d.attrs["level0_magnification"] = 20
    d.attrs["target_magnification"] = 20
    d.attrs["overlap"] = 0
    d.attrs["name"] = "trident-slide"
print("wrote", out / "clam-patches.h5", out / "trident-patches.h5")
