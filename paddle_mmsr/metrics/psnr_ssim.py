"""Full-reference SR metrics, MATLAB-compatible: PSNR and SSIM on the Y channel.

Conventions follow the usual SR evaluation scripts: Y from BT.601 (MATLAB's
``rgb2ycbcr``), ``crop_border`` pixels removed on every side (usually the
scale factor), peak value 255. Inputs are uint8 or uint16 images, HxW (gray)
or HxWx3 (RGB); uint16 is brought to the 8-bit range by dividing by 257.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d

__all__ = ["rgb_to_y", "psnr", "ssim"]

_Y_COEFFS = np.array([65.481, 128.553, 24.966])


def _as_255(img: np.ndarray) -> np.ndarray:
    """uint8/uint16 -> float64 on the 0..255 scale; drops a trailing 1-channel axis."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        a = img.astype(np.float64)
    elif img.dtype == np.uint16:
        a = img.astype(np.float64) / 257.0
    else:
        raise TypeError(f"expected a uint8 or uint16 image, got dtype {img.dtype} "
                        "(convert floats with paddle_mmsr.image.io.to_uint first)")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] != 3:
        raise ValueError(f"expected HxW or HxWx3, got shape {img.shape} (drop alpha first)")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected HxW or HxWx3, got shape {img.shape}")
    return a


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Y of BT.601 YCbCr like MATLAB ``rgb2ycbcr``, as float64 on the 0..255 scale.

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) with RGB in [0, 1], so Y lies in
    [16, 235]. Like MATLAB, integer input gives Y rounded at the input's
    precision (uint8: whole grey levels; uint16: steps of 1/257). Gray input is
    returned unchanged (as float).
    """
    dtype = np.asarray(img).dtype
    a = _as_255(img)
    if a.ndim == 2:
        return a
    y = 16.0 + (a / 255.0) @ _Y_COEFFS
    step = 257.0 if dtype == np.uint16 else 1.0
    return np.round(y * step) / step


def _prepare(a, b, crop_border: int, y_only: bool):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if crop_border < 0:
        raise ValueError("crop_border must be >= 0")
    if y_only:
        a, b = rgb_to_y(a), rgb_to_y(b)
    else:
        a, b = _as_255(a), _as_255(b)
    if crop_border:
        c = crop_border
        if a.shape[0] <= 2 * c or a.shape[1] <= 2 * c:
            raise ValueError(f"image {a.shape[:2]} too small for crop_border={c}")
        a, b = a[c:-c, c:-c], b[c:-c, c:-c]
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, crop_border: int = 4, y_only: bool = True) -> float:
    """PSNR in dB (peak 255). Identical images give ``inf``."""
    a, b = _prepare(a, b, crop_border, y_only)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def _gauss1d(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 2-D filtering with MATLAB ``filter2(..., 'valid')`` output size."""
    r = len(g) // 2
    out = correlate1d(correlate1d(img, g, axis=0), g, axis=1)
    return out[r:-r, r:-r]


def _ssim_2d(a: np.ndarray, b: np.ndarray) -> float:
    # Wang et al. ssim_index: 11x11 Gaussian (sigma 1.5), K1=0.01, K2=0.03, L=255
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gauss1d(11, 1.5)
    if a.shape[0] < 11 or a.shape[1] < 11:
        raise ValueError(f"image {a.shape} too small for the 11x11 SSIM window")
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    saa = _filter_valid(a * a, g) - mu_a ** 2
    sbb = _filter_valid(b * b, g) - mu_b ** 2
    sab = _filter_valid(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * sab + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2)
    return float(np.mean(num / den))


def ssim(a: np.ndarray, b: np.ndarray, crop_border: int = 4, y_only: bool = True) -> float:
    """Mean SSIM; for RGB with ``y_only=False`` the mean over the three channels."""
    a, b = _prepare(a, b, crop_border, y_only)
    if a.ndim == 2:
        return _ssim_2d(a, b)
    return float(np.mean([_ssim_2d(a[..., i], b[..., i]) for i in range(a.shape[2])]))

