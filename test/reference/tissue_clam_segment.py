"""Reference tissue masks from CLAM's segmentation, re-implemented with OpenCV (no CLAM code copied).

Run: /usr/bin/python3 test/reference/tissue_clam_segment.py  (Debian python3-opencv, python3-openslide)
Reads level 1 (downsample 2) of test/reference/fixtures/slides/synthetic.svs composited on white and segments it
the way CLAM's WholeSlideImage.segmentTissue does: HSV saturation, median blur, binary threshold, closing with a
square kernel, then cv2.findContours(RETR_CCOMP, CHAIN_APPROX_NONE); an outer contour is kept when its area minus
its holes' areas (cv2.contourArea) exceeds a_t reference patches, and per kept piece the largest max_n_holes holes
whose area exceeds a_h. The mask is what CLAM's patching treats as tissue: a pixel centre inside or on a kept
outer contour (pointPolygonTest >= 0) and not strictly inside one of its kept holes (pointPolygonTest > 0).
Writes test/reference/fixtures/slides/tissue-clam-<case>.png (0/255, level-1 grid) and tissue-clam.json.
"""
import ctypes
import json
from pathlib import Path

import cv2
import numpy as np
import openslide
from openslide import lowlevel

here = Path(__file__).parent
fixtures = here / "fixtures" / "slides"
slide = openslide.OpenSlide(str(fixtures / "synthetic.svs"))
level = 1
downsample = slide.level_downsamples[level]
w, h = slide.level_dimensions[level]
buf = (w * h * ctypes.c_uint32)()
lowlevel._read_region(slide._osr, buf, 0, 0, level, w, h)
argb = np.frombuffer(buf, dtype=np.uint32).reshape(h, w).astype(np.int64)
t = 255 - (argb >> 24)
rgb = np.stack([np.minimum(255, ((argb >> s) & 255) + t) for s in (16, 8, 0)], axis=2).astype(np.uint8)

CASES = {
    # CLAM's hole area (a_h 16 reference patches): every hole of this small slide is filled.
    "filled-holes": {"sthresh": 8, "mthresh": 7, "close": 4, "a_t": 0.5, "a_h": 16, "max_n_holes": 8, "ref_patch_size": 128},
    # Small-slide areas that keep its holes.
    "kept-holes": {"sthresh": 8, "mthresh": 7, "close": 4, "a_t": 0.5, "a_h": 0.02, "max_n_holes": 8, "ref_patch_size": 128},
}


def segment(p):
    sat = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[:, :, 1]
    med = cv2.medianBlur(sat, p["mthresh"])
    _, binary = cv2.threshold(med, p["sthresh"], 255, cv2.THRESH_BINARY)
    if p["close"] > 0:
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((p["close"], p["close"]), np.uint8))
    unit = int(p["ref_patch_size"] ** 2 / (downsample * downsample))
    a_t, a_h = p["a_t"] * unit, p["a_h"] * unit
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    parent = hierarchy[0][:, 3]
    pieces = []
    for i in np.flatnonzero(parent == -1):
        holes = [contours[j] for j in np.flatnonzero(parent == i)]
        area = cv2.contourArea(contours[i]) - sum(cv2.contourArea(c) for c in holes)
        if area == 0 or not area > a_t:
            continue
        holes = sorted(holes, key=cv2.contourArea, reverse=True)[: p["max_n_holes"]]
        pieces.append((contours[i], [c for c in holes if cv2.contourArea(c) > a_h]))
    mask = np.zeros((h, w), np.uint8)
    ys, xs = np.mgrid[0:h, 0:w]
    for outer, holes in pieces:
        x0, y0, bw, bh = cv2.boundingRect(outer)
        for y in range(y0, y0 + bh):
            for x in range(x0, x0 + bw):
                pt = (float(x), float(y))
                if cv2.pointPolygonTest(outer, pt, False) >= 0 and not any(cv2.pointPolygonTest(c, pt, False) > 0 for c in holes):
                    mask[y, x] = 255
    return mask, len(pieces), sum(len(hs) for _, hs in pieces)


summary = {"generator": "test/reference/tissue_clam_segment.py", "opencv": cv2.__version__, "level": level, "width": w, "height": h, "cases": {}}
for name, params in CASES.items():
    mask, pieces, holes = segment(params)
    cv2.imwrite(str(fixtures / f"tissue-clam-{name}.png"), mask)
    summary["cases"][name] = {"params": params, "pieces": pieces, "holes": holes, "tissuePixels": int((mask > 0).sum())}
(fixtures / "tissue-clam.json").write_text(json.dumps(summary, indent=1) + "\n")
print(json.dumps(summary))
