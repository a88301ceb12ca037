"""Golden cases of the built-in slide readers, computed by python3-openslide on the committed slide.

Run: /usr/bin/python3 test/reference/goldens_slide_readers.py  (Debian python3-openslide, libopenslide0)
Writes plugins/slide-readers/<name>.golden.json for `openslide` and `tiff`: the level geometry, vendor, mpp,
objective power and a few properties of test/reference/fixtures/slides/synthetic.svs, and for regions at every
level (at the origin, across a tile corner, partly outside, before the origin, ending at the border) the SHA-256 and
per-channel means of the RGB pixels OpenSlide returns, composited on white (c' + 255 - alpha). The tiff reader
rounds level coordinates to the level's pixel grid, so its case holds on-grid regions only; the openslide case adds
regions off the grid, where OpenSlide interpolates.
"""
import ctypes
import hashlib
import json
import os

import numpy as np
import openslide
from openslide import lowlevel

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SLIDE = "test/reference/fixtures/slides/synthetic.svs"
MAX_GOLDEN_BYTES = 8_000
PROPERTY_KEYS = ["openslide.vendor", "openslide.level-count", "openslide.mpp-x", "openslide.mpp-y", "openslide.objective-power", "aperio.AppMag", "aperio.MPP"]

slide = openslide.OpenSlide(os.path.join(REPO, SLIDE))


def read_rgb(x, y, level, w, h):
    buf = (w * h * ctypes.c_uint32)()
    lowlevel._read_region(slide._osr, buf, x, y, level, w, h)
    argb = np.frombuffer(buf, dtype=np.uint32).reshape(h, w).astype(np.int64)
    transparency = 255 - (argb >> 24)
    return np.stack([np.minimum(255, ((argb >> s) & 255) + transparency) for s in (16, 8, 0)], axis=2).astype(np.uint8)


def regions(on_grid_only):
    out = []
    for level, ((lw, lh), ds) in enumerate(zip(slide.level_dimensions, slide.level_downsamples)):
        d = int(round(ds))
        tile_x = 256 if lw > 256 else lw // 2
        tile_y = 256 if lh > 256 else lh // 2
        out += [
            {"name": f"L{level}-tile-corner", "level": level, "x": (tile_x - 20) * d, "y": (tile_y - 10) * d, "width": 48, "height": 32},
            {"name": f"L{level}-partly-outside", "level": level, "x": (lw - 30) * d, "y": (lh - 20) * d, "width": 48, "height": 32},
        ]
        if level == 0:
            out.append({"name": "L0-origin", "level": 0, "x": 0, "y": 0, "width": 64, "height": 48})
        if level == 1:
            out.append({"name": "L1-before-origin", "level": 1, "x": -16 * d, "y": -8 * d, "width": 40, "height": 24})
        if level == len(slide.level_dimensions) - 1:
            out.append({"name": f"L{level}-ends-at-border", "level": level, "x": (lw - 50) * d, "y": (lh - 40) * d, "width": 50, "height": 40})
        if not on_grid_only and level in (1, 2):
            out.append({"name": f"L{level}-off-grid", "level": level, "x": 100 * d + 1, "y": 50 * d + 1, "width": 40, "height": 24})
    return out


def expected_region(r):
    rgb = read_rgb(r["x"], r["y"], r["level"], r["width"], r["height"])
    return {
        "name": r["name"],
        "sha256": hashlib.sha256(rgb.tobytes()).hexdigest(),
        "mean": [round(float(rgb[:, :, c].astype(np.float64).mean()), 6) for c in range(3)],
    }


def number_or_none(key):
    value = slide.properties.get(key)
    return None if value is None else float(value)


for plugin, on_grid_only in (("openslide", False), ("tiff", True)):
    case_regions = regions(on_grid_only)
    golden = {
        "kind": "slide-reader",
        "plugin": plugin,
        "generator": "test/reference/goldens_slide_readers.py",
        "case": {"options": {}, "slide": SLIDE, "regions": case_regions},
        "expected": {
            "levels": [{"width": w, "height": h, "downsample": ds} for (w, h), ds in zip(slide.level_dimensions, slide.level_downsamples)],
            "vendor": slide.properties.get("openslide.vendor"),
            "mppX": number_or_none("openslide.mpp-x"),
            "mppY": number_or_none("openslide.mpp-y"),
            "objectivePower": number_or_none("openslide.objective-power"),
            "properties": {k: slide.properties[k] for k in PROPERTY_KEYS if k in slide.properties},
            "regions": [expected_region(r) for r in case_regions],
        },
    }
    text = json.dumps(golden, separators=(",", ":")) + "\n"
    assert len(text) <= MAX_GOLDEN_BYTES, (plugin, len(text))
    target = os.path.join(REPO, "plugins", "slide-readers", f"{plugin}.golden.json")
    with open(target, "w") as f:
        f.write(text)
    print(f"{os.path.relpath(target, REPO)}: {len(case_regions)} regions, {len(text)} bytes")
