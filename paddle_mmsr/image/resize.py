"""MATLAB-compatible bicubic resize (``imresize(..., 'bicubic')``), in numpy.

Matches MATLAB: cubic kernel with a = -0.5, antialiasing when shrinking (the
kernel is widened by 1/scale), symmetric border handling, separable, the
dimension with the larger shrink factor first. ``bicubic_up`` is the same
upscale by an integer factor as two matrix products, for reconstruction.
``cubic`` is the project's one cubic kernel (also the compact generator's
bicubic skip, with Paddle's a = -0.75).

uint8 / uint16 input gives the same dtype back (rounded and clipped, as MATLAB
does); float input gives float64 back without clipping.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["imresize", "bicubic_weights", "bicubic_up", "cubic"]


def cubic(x, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel at distances ``x``: a = -0.5 is MATLAB's
    (``imresize``), a = -0.75 Paddle's and OpenCV's bicubic."""
    ax = np.abs(np.asarray(x, dtype=np.float64))
    ax2, ax3 = ax ** 2, ax ** 3
    return (((a + 2) * ax3 - (a + 3) * ax2 + 1) * (ax <= 1)
            + (a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a) * ((ax > 1) & (ax <= 2)))


def _linear(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return (1 - ax) * (ax <= 1)


_KERNELS = {"bicubic": (cubic, 4.0), "bilinear": (_linear, 2.0)}
KERNELS = tuple(_KERNELS)


def bicubic_weights(in_len: int, out_len: int, scale: float, kernel: str = "bicubic"):
    """Return (weights [out, taps], indices [out, taps]) for one dimension."""
    func, width = _KERNELS[kernel]
    antialias = scale < 1
    if antialias:
        width = width / scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    w = scale * func(dist * scale) if antialias else func(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # symmetric padding, MATLAB style (1-based -> 0-based)
    idx = idx - 1
    period = 2 * in_len
    idx = np.mod(idx, period)
    idx = np.where(idx >= in_len, period - 1 - idx, idx).astype(np.int64)
    keep = np.any(w != 0, axis=0)
    return w[:, keep], idx[:, keep]


@lru_cache(maxsize=32)
def _bicubic_matrix(n: int, scale: int) -> np.ndarray:
    """(n * scale, n) matrix of the MATLAB-style bicubic upscale along one axis."""
    w, idx = bicubic_weights(n, n * scale, float(scale))
    m = np.zeros((n * scale, n), np.float64)
    np.add.at(m, (np.arange(n * scale)[:, None], idx), w)
    return m.astype(np.float32)


def bicubic_up(a: np.ndarray, scale: int) -> np.ndarray:
    """HxW[xC] float -> float32 ``scale`` x larger; equals ``imresize``, faster."""
    my, mx = _bicubic_matrix(a.shape[0], scale), _bicubic_matrix(a.shape[1], scale)
    out = np.tensordot(my, a.astype(np.float32), axes=(1, 0))   # (H, w, ...)
    out = np.tensordot(out, mx, axes=(1, 1))                    # (H, ..., W)
    return np.moveaxis(out, -1, 1)


def _resize_dim(a: np.ndarray, axis: int, out_len: int, scale: float, kernel: str) -> np.ndarray:
    w, idx = bicubic_weights(a.shape[axis], out_len, scale, kernel)
    a = np.moveaxis(a, axis, 0)
    gathered = a[idx]  # [out, taps, ...]
    w = w.reshape(w.shape + (1,) * (a.ndim - 1))
    out = (gathered * w).sum(axis=1)
    return np.moveaxis(out, 0, axis)


def imresize(img: np.ndarray, scale: float | None = None, output_shape=None,
             kernel: str = "bicubic") -> np.ndarray:
    """Resize an HxW or HxWxC image like MATLAB's ``imresize``.

    Give either ``scale`` (e.g. 1/4) or ``output_shape`` (rows, cols).
    """
    if kernel not in _KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; use one of {sorted(_KERNELS)}")
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWxC image, got shape {img.shape}")
    h, w = img.shape[:2]
    if output_shape is not None:
        oh, ow = int(output_shape[0]), int(output_shape[1])
        sh, sw = oh / h, ow / w
    elif scale is not None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        oh, ow = int(math.ceil(h * scale)), int(math.ceil(w * scale))
        sh = sw = float(scale)
    else:
        raise ValueError("give scale or output_shape")
    in_dtype = img.dtype
    a = img.astype(np.float64)
    order = [(0, oh, sh), (1, ow, sw)]
    order.sort(key=lambda t: t[2])  # stronger shrink first, as MATLAB does
    for axis, n, s in order:
        a = _resize_dim(a, axis, n, s, kernel)
    if np.issubdtype(in_dtype, np.integer):
        info = np.iinfo(in_dtype)
        a = np.clip(np.round(a), info.min, info.max).astype(in_dtype)
    return a
