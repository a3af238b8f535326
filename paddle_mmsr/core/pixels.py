"""Pixel values: integer images <-> float32 in [0, 1], the range bundles' networks
take and give (a manifest's ``value_range``)."""
from __future__ import annotations

import numpy as np

__all__ = ["to_float", "to_uint"]


def to_float(img: np.ndarray) -> np.ndarray:
    """uint8/uint16 -> float32 in [0, 1], same shape; float input is taken to be
    in [0, 1] already (only cast). The inverse of :func:`to_uint`."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    return img.astype(np.float32)


def to_uint(a: np.ndarray, dtype=np.uint8) -> np.ndarray:
    """float in [0, 1] -> uint8/uint16 with rounding and clipping."""
    maxv = 65535.0 if dtype == np.uint16 else 255.0
    return np.clip(np.round(a * maxv), 0, maxv).astype(dtype)
