"""Side-by-side pictures: images joined in one row, each with an optional label.

The one picture builder of the project: VisualDL strips in training,
``benchmarks/side_by_side.py`` and the notebooks' comparisons all use
:func:`side_by_side`. Only numpy and PIL.
"""
from __future__ import annotations

import numpy as np

__all__ = ["side_by_side", "nearest_up", "outline"]

LABEL_HEIGHT = 16  # px of the white band holding a label


def _label_band(text: str, width: int) -> np.ndarray:
    from PIL import Image, ImageDraw
    band = Image.new("RGB", (width, LABEL_HEIGHT), "white")
    ImageDraw.Draw(band).text((3, 2), text, fill="black")
    return np.asarray(band)


def nearest_up(img: np.ndarray, scale: int) -> np.ndarray:
    """Pixel replication: an LR image at the output size, its pixels visible."""
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def side_by_side(*images: np.ndarray, labels=None, gap: int = 4, zoom: int = 1) -> np.ndarray:
    """uint8 HxWx3 images in one row, white ``gap`` px between them, bottoms padded
    white to the tallest. ``zoom``: pixel replication first (for small crops).
    ``labels``: one text per image, written in a white band above it."""
    if not images:
        raise ValueError("side_by_side needs at least one image")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if zoom > 1:
        images = [nearest_up(i, zoom) for i in images]
    h = max(i.shape[0] for i in images)
    parts = []
    for k, img in enumerate(images):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image {k}: expected uint8 HxWx3, got {img.dtype} {img.shape}")
        if img.shape[0] < h:
            img = np.pad(img, ((0, h - img.shape[0]), (0, 0), (0, 0)), constant_values=255)
        if labels is not None:
            img = np.concatenate([_label_band(str(labels[k]), img.shape[1]), img], axis=0)
        parts.append(img)
        if k < len(images) - 1:
            parts.append(np.full((img.shape[0], gap, 3), 255, np.uint8))
    return np.concatenate(parts, axis=1)


def outline(img: np.ndarray, y: int, x: int, size: int, colour=(255, 220, 0)) -> np.ndarray:
    """A copy of ``img`` with a 2 px frame around the ``size`` x ``size`` window at (y, x)."""
    out = np.array(img, copy=True)
    y1, x1 = min(y + size, out.shape[0]), min(x + size, out.shape[1])
    for a, b in ((slice(y, y + 2), slice(x, x1)), (slice(y1 - 2, y1), slice(x, x1)),
                 (slice(y, y1), slice(x, x + 2)), (slice(y, y1), slice(x1 - 2, x1))):
        out[a, b] = colour
    return out
