"""Golden case of the built-in tissue detector (tissue-detector/clam), computed with OpenCV.

Run: /usr/bin/python3 test/reference/goldens_tissue.py  (Debian python3-opencv)
Draws the case's "scene-v1" slide (src/testing/contracts/tissue-detector.ts documents the formula: ellipses over a
background, integer inside test, brightness noise from a multiplicative hash) with numpy, then segments it as
docs/slides.md specifies for CLAM's method, every step an OpenCV call: cv2.cvtColor RGB->HSV saturation,
cv2.medianBlur, cv2.threshold (fixed or Otsu), cv2.morphologyEx MORPH_CLOSE with a k x k square, then
cv2.connectedComponentsWithStats for tissue pieces (8-connected) and background pieces (4-connected). A background
piece not touching the border is a hole of the tissue piece left of its first pixel; pieces larger than a_t and
holes larger than a_h (in (ref_patch_size / downsample)^2 pixel units) are kept, at most max_n_holes holes per
piece, largest first; the mask is the kept pieces with their small holes filled and their kept holes left open.
Writes plugins/tissue-detectors/clam.golden.json: per run the threshold, the mask's SHA-256 and tissue pixels per
row, and the kept pieces' areas and hole counts.
"""
import hashlib
import json
import os

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MAX_GOLDEN_BYTES = 8_000

# CLAM create_patches_fp defaults, as the plugin's option names.
DEFAULTS = {"downsample": 64, "saturationThreshold": 8, "otsu": False, "medianKernel": 7, "closeKernel": 4,
            "minTissueArea": 100, "minHoleArea": 16, "maxHoles": 8, "referencePatchSize": 512}

GLASS = [236, 232, 238]
SCENE = {
    "width": 96, "height": 72, "background": GLASS, "noise": 4,
    "ellipses": [
        {"cx": 30, "cy": 32, "rx": 24, "ry": 20, "rgb": [205, 120, 180]},   # large piece
        {"cx": 26, "cy": 28, "rx": 8, "ry": 6, "rgb": GLASS},              # its large hole (kept)
        {"cx": 42, "cy": 42, "rx": 4, "ry": 3, "rgb": GLASS},              # its small hole (filled)
        {"cx": 76, "cy": 38, "rx": 14, "ry": 22, "rgb": [150, 90, 170]},   # second piece
        {"cx": 70, "cy": 6, "rx": 4, "ry": 3, "rgb": [150, 90, 170]},      # dust (dropped)
        {"cx": 40, "cy": 64, "rx": 30, "ry": 5, "rgb": [226, 214, 226]},   # faint streak: tissue only below Otsu
    ],
}
AREA_OPTIONS = {"referencePatchSize": 8, "minTissueArea": 4, "minHoleArea": 0.5, "medianKernel": 5}
RUNS = [
    {"options": AREA_OPTIONS},
    {"options": {**AREA_OPTIONS, "otsu": True, "closeKernel": 3}},
    {"options": {**AREA_OPTIONS, "minTissueArea": 20, "maxHoles": 0}},
]


def draw(scene):
    h, w = scene["height"], scene["width"]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.int64)
    rgb = np.empty((h, w, 3), np.int64)
    rgb[:] = scene["background"]
    for e in scene["ellipses"]:
        inside = (xs - e["cx"]) ** 2 * e["ry"] ** 2 + (ys - e["cy"]) ** 2 * e["rx"] ** 2 <= e["rx"] ** 2 * e["ry"] ** 2
        rgb[inside] = e["rgb"]
    k = (7919 * xs + 104729 * ys) % 2**32
    hsh = (k * 2654435761) % 2**32
    a = scene["noise"]
    noise = (hsh >> 24) % (2 * a + 1) - a if a > 0 else 0
    return np.clip(rgb + noise[:, :, None], 0, 255).astype(np.uint8)


def first_pixels(labels, count):
    """Scan-order index of each label's first pixel."""
    flat = labels.ravel()
    first = np.full(count, -1, np.int64)
    order = np.flatnonzero(flat >= 0)
    seen = flat[order]
    uniq, idx = np.unique(seen, return_index=True)
    first[uniq] = order[idx]
    return first


def segment(rgb, downsample, o):
    h, w = rgb.shape[:2]
    sat = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[:, :, 1]
    blurred = cv2.medianBlur(sat, o["medianKernel"])
    if o["otsu"]:
        threshold, binary = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    else:
        threshold, binary = cv2.threshold(blurred, o["saturationThreshold"], 255, cv2.THRESH_BINARY)
    if o["closeKernel"] > 1:
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((o["closeKernel"], o["closeKernel"]), np.uint8))
    unit = o["referencePatchSize"] ** 2 / downsample ** 2
    n_t, t_labels, t_stats, _ = cv2.connectedComponentsWithStats((binary == 255).astype(np.uint8), connectivity=8)
    n_h, h_labels, h_stats, _ = cv2.connectedComponentsWithStats((binary == 0).astype(np.uint8), connectivity=4)
    # Label 0 is "not this value" in both; shift so pieces are 0-based and -1 means none.
    t_labels = t_labels.astype(np.int64) - 1
    h_labels = h_labels.astype(np.int64) - 1
    t_area = t_stats[1:, cv2.CC_STAT_AREA]
    h_area = h_stats[1:, cv2.CC_STAT_AREA]
    t_first = first_pixels(t_labels, n_t - 1)
    h_first = first_pixels(h_labels, n_h - 1)
    owner = {}
    for hole in range(n_h - 1):
        x, y, bw, bh = h_stats[hole + 1, :4]
        if x == 0 or y == 0 or x + bw == w or y + bh == h:
            continue  # touches the border: background, not a hole
        fy, fx = divmod(int(h_first[hole]), w)
        owner[hole] = int(t_labels[fy, fx - 1])
    kept = {}
    pieces = []
    for piece in sorted(range(n_t - 1), key=lambda p: t_first[p]):
        area = int(t_area[piece])
        if area <= o["minTissueArea"] * unit:
            continue
        holes = [hh for hh, ow in owner.items() if ow == piece and h_area[hh] > o["minHoleArea"] * unit]
        holes = sorted(holes, key=lambda hh: (-int(h_area[hh]), int(h_first[hh])))[: o["maxHoles"]]
        kept[piece] = holes
        pieces.append({"areaPixels": area, "holes": len(holes)})
    mask = np.zeros((h, w), np.uint8)
    for piece, holes in kept.items():
        mask[t_labels == piece] = 255
        for hh, ow in owner.items():
            if ow == piece and hh not in holes:
                mask[h_labels == hh] = 255
    return {
        "level": 0, "width": w, "height": h, "threshold": float(threshold),
        "maskSha256": hashlib.sha256(mask.tobytes()).hexdigest(),
        "rowCounts": [int(c) for c in (mask != 0).sum(axis=1)],
        "pieces": pieces,
    }


rgb = draw(SCENE)
golden = {
    "kind": "tissue-detector",
    "plugin": "clam",
    "generator": "test/reference/goldens_tissue.py",
    "case": {"scene": SCENE, "downsamples": [1], "runs": RUNS},
    "expected": {"runs": [segment(rgb, 1, {**DEFAULTS, **run["options"]}) for run in RUNS]},
}
text = json.dumps(golden, separators=(",", ":")) + "\n"
assert len(text) <= MAX_GOLDEN_BYTES, len(text)
target = os.path.join(REPO, "plugins", "tissue-detectors", "clam.golden.json")
with open(target, "w") as f:
    f.write(text)
for run, exp in zip(RUNS, golden["expected"]["runs"]):
    print(run["options"], exp["threshold"], exp["pieces"], sum(exp["rowCounts"]))
print(f"{os.path.relpath(target, REPO)}: {len(text)} bytes")
