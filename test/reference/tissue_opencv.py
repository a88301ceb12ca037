"""OpenCV reference for milkit's CLAM-style tissue segmentation (the pixel steps, before contours).

Run: /usr/bin/python3 test/reference/tissue_opencv.py  (Debian python3-opencv, python3-openslide)
Reads level 2 (downsample 4) of test/reference/fixtures/slides/synthetic.svs composited on white, then runs what
CLAM's segmentTissue does: cv2.cvtColor RGB→HSV, cv2.medianBlur(s, 7), cv2.threshold(8, BINARY) and the Otsu
variant, cv2.morphologyEx(MORPH_CLOSE, ones(4, 4)). Writes test/reference/fixtures/slides/tissue-opencv.json
with SHA-256 digests of the intermediate images and their sums.
"""
import ctypes
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import openslide
from openslide import lowlevel

here = Path(__file__).parent
slide = openslide.OpenSlide(str(here / "fixtures" / "slides" / "synthetic.svs"))
level = 2
w, h = slide.level_dimensions[level]
buf = (w * h * ctypes.c_uint32)()
lowlevel._read_region(slide._osr, buf, 0, 0, level, w, h)
argb = np.frombuffer(buf, dtype=np.uint32).reshape(h, w).astype(np.int64)
t = 255 - (argb >> 24)
rgb = np.stack([np.minimum(255, ((argb >> s) & 255) + t) for s in (16, 8, 0)], axis=2).astype(np.uint8)

saturation = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[:, :, 1]
blurred = cv2.medianBlur(saturation, 7)
_, fixed = cv2.threshold(blurred, 8, 255, cv2.THRESH_BINARY)
otsu_t, otsu = cv2.threshold(blurred, 0, 255, cv2.THRESH_OTSU + cv2.THRESH_BINARY)
kernel = np.ones((4, 4), np.uint8)
closed = cv2.morphologyEx(fixed, cv2.MORPH_CLOSE, kernel)
closed_otsu = cv2.morphologyEx(otsu, cv2.MORPH_CLOSE, kernel)


def digest(a):
    return {"sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(), "sum": int(a.astype(np.int64).sum())}


out = {
    "generator": "test/reference/tissue_opencv.py", "opencv": cv2.__version__, "level": level, "width": w, "height": h,
    "saturation": digest(saturation), "blurred": digest(blurred), "closed": digest(closed),
    "otsuThreshold": float(otsu_t), "closedOtsu": digest(closed_otsu),
}
target = here / "fixtures" / "slides" / "tissue-opencv.json"
target.write_text(json.dumps(out, indent=1) + "\n")
print(json.dumps(out))
