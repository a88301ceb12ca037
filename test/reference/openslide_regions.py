"""Expected OpenSlide results for milkit's slide readers, from python3-openslide on the committed slide.

Run: /usr/bin/python3 test/reference/openslide_regions.py  (Debian python3-openslide, libopenslide0)
Reads test/reference/fixtures/slides/synthetic.svs (written by
`milkit data slides --slides 1 --size 1280 --seed 11 --tumour-fraction 1 --quality 60 --format svs`)
and writes test/reference/fixtures/slides/openslide-regions.json: every property, the level geometry, the
associated images and, for regions at every level (at the origin, across tile edges, ending at the border,
partly and wholly outside, and at coordinates off the level's pixel grid), the SHA-256 of the RGB pixels
composited on white from OpenSlide's pre-multiplied ARGB (c' + 255 - alpha) plus a few sample pixels.
"""
import ctypes
import hashlib
import json
import sys
from pathlib import Path

import openslide
from openslide import lowlevel

here = Path(__file__).parent
slide_path = here / "fixtures" / "slides" / "synthetic.svs"
slide = openslide.OpenSlide(str(slide_path))


def argb_on_white(buf, n):
    out = bytearray(3 * n)
    for i in range(n):
        p = buf[i]
        t = 255 - (p >> 24)
        out[3 * i] = min(255, ((p >> 16) & 255) + t)
        out[3 * i + 1] = min(255, ((p >> 8) & 255) + t)
        out[3 * i + 2] = min(255, (p & 255) + t)
    return bytes(out)


def read_rgb(x, y, level, w, h):
    buf = (w * h * ctypes.c_uint32)()
    lowlevel._read_region(slide._osr, buf, x, y, level, w, h)
    alphas = [buf[i] >> 24 for i in range(w * h)]
    return argb_on_white(buf, w * h), sum(1 for a in alphas if 0 < a < 255), sum(1 for a in alphas if a == 0)


regions = []
for level, ((lw, lh), ds) in enumerate(zip(slide.level_dimensions, slide.level_downsamples)):
    d = int(round(ds))
    w, h = 64, 48
    cases = {
        "origin": (0, 0, w, h),
        # Across the 256-px tile corner where the level has one, else across its centre.
        "tile-edges": (((256 if lw > 256 else lw // 2) - 20) * d, ((256 if lh > 256 else lh // 2) - 10) * d, w, h),
        "ends-at-border": ((lw - 50) * d, (lh - 40) * d, 50, 40),
        "partly-outside": ((lw - 30) * d, (lh - 20) * d, w, h),
        "before-origin": (-16 * d, -8 * d, w, h),
        "outside": ((lw + 10) * d, 0, 16, 16),
        "off-grid": (100 * d + 1, 50 * d + 1, w, h),
    }
    for name, (x, y, rw, rh) in cases.items():
        rgb, partial, transparent = read_rgb(x, y, level, rw, rh)
        samples = [[i, list(rgb[3 * i: 3 * i + 3])] for i in (0, rw * rh // 2 + rw // 3, rw * rh - 1)]
        regions.append({
            "name": name, "level": level, "x": x, "y": y, "width": rw, "height": rh,
            "onGrid": x % d == 0 and y % d == 0,
            "sha256": hashlib.sha256(rgb).hexdigest(),
            "partialAlphaPixels": partial, "transparentPixels": transparent, "samples": samples,
        })

associated = {}
for name, image in slide.associated_images.items():
    rgba = image.convert("RGBA")
    assert all(a == 255 for a in rgba.getchannel("A").getdata()), name
    associated[name] = {"width": image.width, "height": image.height, "sha256": hashlib.sha256(rgba.convert("RGB").tobytes()).hexdigest()}

out = {
    "generator": "test/reference/openslide_regions.py",
    "openslide": openslide.__library_version__, "openslidePython": openslide.__version__, "python": sys.version.split()[0],
    "slide": "synthetic.svs",
    "properties": dict(slide.properties),
    "levels": [{"width": w, "height": h, "downsample": ds} for (w, h), ds in zip(slide.level_dimensions, slide.level_downsamples)],
    "associated": associated,
    "regions": regions,
}
target = here / "fixtures" / "slides" / "openslide-regions.json"
target.write_text(json.dumps(out, indent=1) + "\n")
print(f"{target.name}: {len(regions)} regions, {target.stat().st_size} bytes; openslide {openslide.__library_version__}")
