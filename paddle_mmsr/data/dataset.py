"""Training data: ``paddle.io.Dataset`` over HR images (folders or TVAT manifests).

Each item: a random HR crop (``crop`` px, multiple of ``scale``), a random
flip / 90-degree rotation, and its LR made on the fly by the configured
degradation (a fixed ``Degradation``, or a ``DegradationMix`` drawn anew for
every crop from the item's own random stream). Returns (lr, hr) float32 CHW RGB arrays in [0, 1].
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from paddle_mmsr.image.degrade import Degradation, DegradationMix, make_degradation
from paddle_mmsr.image.io import ImageReadError, list_images, read_image, to_float, to_rgb8
from paddle_mmsr.data.manifest import read_manifest, write_manifest  # noqa: F401 (re-exported)

try:
    from paddle.io import Dataset
except ImportError:  # lets the numpy parts work without paddle
    Dataset = object

def collect_images(sources) -> list[str]:
    """Image paths from a mix of folders and manifest files (.tsv)."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    paths = []
    for s in sources:
        s = Path(s)
        if s.is_dir():
            paths += [str(p) for p in list_images(s)]
        elif s.suffix.lower() in (".tsv", ".txt", ".csv"):
            paths += [r["path"] for r in read_manifest(s)]
        elif s.exists():
            paths.append(str(s))
        else:
            raise FileNotFoundError(f"{s}: no such folder or manifest")
    if not paths:
        raise ValueError(f"no training images found in {list(map(str, sources))}")
    return paths


def augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if rng.random() < 0.5:
        img = img[::-1]
    return np.rot90(img, k=int(rng.integers(4)))


class SRDataset(Dataset):
    def __init__(self, sources, scale: int = 4, crop: int = 96, degradation=None,
                 augment: bool = True, cache: bool = True, seed: int | None = None,
                 length: int | None = None):
        super().__init__()
        if crop % scale:
            raise ValueError(f"crop {crop} must be a multiple of scale {scale}")
        self.scale, self.crop, self.do_augment = scale, crop, augment
        self.degradation = degradation if isinstance(degradation, (Degradation, DegradationMix)) \
            else make_degradation(degradation)
        self.paths, self._cache = [], {}
        small, unreadable = [], []
        for p in collect_images(sources):
            try:
                img = read_image(p) if cache else None
                shape = img.shape if img is not None else _peek_shape(p)
            except ImageReadError as e:
                unreadable.append(str(e))
                continue
            if min(shape[:2]) < crop:
                small.append(p)
                continue
            if cache:
                self._cache[p] = to_rgb8(img)
            self.paths.append(p)
        if unreadable:
            warnings.warn(f"skipped {len(unreadable)} unreadable images: " + "; ".join(unreadable))
        if small:
            warnings.warn(f"skipped {len(small)} images smaller than the {crop}px crop")
        if not self.paths:
            raise ValueError(f"no usable training images (all smaller than {crop}px or unreadable)")
        self.length = length or len(self.paths)
        self.seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Call once per pass: item i's crop and augmentation depend on (seed, epoch, i),
        so runs are reproducible and DataLoader workers do not repeat each other."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def _image(self, i: int) -> np.ndarray:
        p = self.paths[i % len(self.paths)]
        return self._cache[p] if p in self._cache else to_rgb8(read_image(p))

    def __getitem__(self, i):
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        img = self._image(int(rng.integers(len(self.paths))) if self.length != len(self.paths) else i)
        h, w = img.shape[:2]
        y, x = int(rng.integers(h - self.crop + 1)), int(rng.integers(w - self.crop + 1))
        hr = img[y:y + self.crop, x:x + self.crop]
        if self.do_augment:
            hr = augment(hr, rng)
        hr = np.ascontiguousarray(hr)
        lr = self.degradation(hr, self.scale, rng)
        return _chw(lr), _chw(self.degradation.target(hr))


def _peek_shape(path):
    from PIL import Image
    with Image.open(path) as im:
        return im.size[::-1]


def _chw(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(to_float(img).transpose(2, 0, 1))
