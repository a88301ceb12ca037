#!/usr/bin/python3
"""Golden fingerprints of the file-backed dataset plugins (features-h5, features-dir), computed with h5py/numpy
from the feature files themselves, independently of milkit's readers.

features-h5 reads the h5 fixtures of h5_features.py (TRIDENT layout, thumbnails, float16 features); features-dir
reads tiny .npy files this script writes to test/reference/fixtures/npy/ (features + a coords side folder).
The fingerprint layout is src/testing/contracts/dataset.ts `DatasetFingerprint`. The generated datasets'
fingerprints come from goldens_datasets.ts.

Run: /usr/bin/python3 test/reference/goldens_datasets.py
"""
import os

import h5py
import numpy as np

from golden_common import HERE, write_golden

GENERATOR = 'test/reference/goldens_datasets.py'
H5 = os.path.join(HERE, 'fixtures', 'h5')
NPY = os.path.join(HERE, 'fixtures', 'npy')


def bag(slide_id, features, coords=None, thumbs=None):
    f = np.asarray(features, dtype=np.float32).astype(np.float64)
    out = {'slideId': slide_id, 'n': int(f.shape[0]), 'd': int(f.shape[1]), 'featureSum': float(f.sum()), 'featureAbsSum': float(np.abs(f).sum()),
           'firstRow': [float(v) for v in f[0, :min(4, f.shape[1])]], 'lastValue': float(f[-1, -1])}
    if coords is not None:
        out['coordsSum'] = float(np.asarray(coords, dtype=np.float64).sum())
    if thumbs is not None:
        out['thumbsSum'] = float(np.asarray(thumbs, dtype=np.float64).sum())
    return out


def fingerprint(table, class_names, bags):
    return {'featureDim': bags[0]['d'], 'classNames': class_names, 'numSlides': len(table),
            'labelCounts': [sum(1 for _, _, name in table if name == c) for c in class_names],
            'slides': [[s, c, class_names.index(name), name] for s, c, name in table][:8], 'bags': bags[:3]}


def csv(table):
    return 'slide_id,case_id,label\n' + ''.join(f'{s},{c},{name}\n' for s, c, name in table)


def features_h5():
    table = [('trident', 'p1', 'tumor'), ('thumbs', 'p2', 'normal'), ('float16', 'p3', 'tumor')]
    bags = []
    for slide_id, _, _ in table:
        with h5py.File(os.path.join(H5, f'{slide_id}.h5'), 'r') as f:
            bags.append(bag(slide_id, f['features'][()], f['coords'][()] if 'coords' in f else None, f['thumbs'][()] if 'thumbs' in f else None))
    write_golden('datasets', 'features-h5', {
        'kind': 'dataset', 'plugin': 'features-h5', 'generator': GENERATOR,
        'case': {'options': {'slideTable': '<tmp>/slides.csv', 'featuresDir': '<base>/test/reference/fixtures/h5'}, 'seed': 0, 'files': {'slides.csv': csv(table)}},
        'expected': {'fingerprint': fingerprint(table, ['normal', 'tumor'], bags)}})


def features_dir():
    os.makedirs(os.path.join(NPY, 'coords'), exist_ok=True)
    table = [('s-a', 'case-1', 'malignant'), ('s-b', 'case-1', 'malignant'), ('s-c', 'case-2', 'benign')]
    bags = []
    for k, (slide_id, _, _) in enumerate(table):
        n = 4 + k
        i, j = np.meshgrid(np.arange(n), np.arange(6), indexing='ij')
        x = (((i * 13 + j * 7 + k * 5) % 17) - 8) / 4  # exact in float32
        np.save(os.path.join(NPY, f'{slide_id}.npy'), x.astype(np.float32))
        coords = np.stack([256 * np.arange(n), 512 * np.ones(n)], axis=1).astype(np.int64)
        np.save(os.path.join(NPY, 'coords', f'{slide_id}.npy'), coords)
        bags.append(bag(slide_id, x, coords))
    write_golden('datasets', 'features-dir', {
        'kind': 'dataset', 'plugin': 'features-dir', 'generator': GENERATOR,
        'case': {'options': {'slideTable': '<tmp>/slides.csv', 'featuresDir': '<base>/test/reference/fixtures/npy', 'format': 'npy',
                             'coordsDir': '<base>/test/reference/fixtures/npy/coords'}, 'seed': 0, 'files': {'slides.csv': csv(table)}},
        'expected': {'fingerprint': fingerprint(table, ['benign', 'malignant'], bags)}})


if __name__ == '__main__':
    features_h5()
    features_dir()
