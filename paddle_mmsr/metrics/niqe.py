"""NIQE (Mittal, Soundararajan, Bovik 2013), a no-reference quality score.

numpy/scipy implementation of the published algorithm, on the MATLAB-style Y
channel (as SR toolkits report it): the image is cut into 96x96 blocks; per
block, 18 features from the MSCN coefficients (a GGD-like AGGD fit of the
coefficients and AGGD fits of the products of neighbours in 4 directions) at
two scales (the second one after a MATLAB-style bicubic 1/2 downscale). A
multivariate Gaussian fitted to the block features is compared with the
pristine model (``assets/niqe_pris_params.npz``, see ``assets/NOTICE-niqe.md``).
Lower is better.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import correlate
from scipy.special import gamma

from paddle_mmsr.metrics.psnr_ssim import rgb_to_y
from paddle_mmsr.image.resize import imresize

__all__ = ["niqe", "niqe_features"]

_PARAMS = Path(__file__).resolve().parents[1] / "assets" / "niqe_pris_params.npz"
_BLOCK = 96
_GAM = np.arange(0.2, 10.0005, 0.001)  # AGGD shape grid, as in the published NIQE code
# ratio E[|x|]^2 / E[x^2] of a GGD with shape g; monotone in g
_R_GAM = gamma(2 / _GAM) ** 2 / (gamma(1 / _GAM) * gamma(3 / _GAM))


@lru_cache(maxsize=1)
def _pristine():
    with np.load(_PARAMS) as d:
        return d["mu_pris_param"].reshape(-1), d["cov_pris_param"]


def _mscn(img: np.ndarray) -> np.ndarray:
    # 7x7 Gaussian, sigma 7/6, replicate borders (MATLAB imfilter 'replicate')
    x = np.arange(7) - 3.0
    g = np.exp(-x ** 2 / (2 * (7 / 6) ** 2))
    w = np.outer(g, g)
    w /= w.sum()
    mu = correlate(img, w, mode="nearest")
    sigma = np.sqrt(np.abs(correlate(img * img, w, mode="nearest") - mu * mu))
    return (img - mu) / (sigma + 1)


def _aggd(v: np.ndarray):
    """AGGD fit per row of ``v`` [n, m] -> (alpha, beta_left, beta_right), each [n]."""
    neg, pos = v < 0, v > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        lstd = np.sqrt((v * v * neg).sum(1) / neg.sum(1))
        rstd = np.sqrt((v * v * pos).sum(1) / pos.sum(1))
        gh = lstd / rstd
        rhat = np.mean(np.abs(v), 1) ** 2 / np.mean(v * v, 1)
        rnorm = rhat * (gh ** 3 + 1) * (gh + 1) / (gh ** 2 + 1) ** 2
        alpha = _GAM[np.argmin((_R_GAM[None, :] - rnorm[:, None]) ** 2, axis=1)]
        # NaN rnorm (no negative or no positive values) gives the first grid
        # value, as MATLAB's min does; the betas stay NaN
        k = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, lstd * k, rstd * k


def _block_features(mscn: np.ndarray, bs: int, nh: int, nw: int) -> np.ndarray:
    """18 features for each bs x bs block -> [nh*nw, 18]."""
    blocks = mscn[:nh * bs, :nw * bs].reshape(nh, bs, nw, bs).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(nh * nw, bs, bs)
    n = blocks.shape[0]
    a, bl, br = _aggd(blocks.reshape(n, -1))
    feats = [a, (bl + br) / 2]
    # neighbour products inside each block, circular (MATLAB circshift)
    for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):
        prod = blocks * np.roll(blocks, shift, axis=(1, 2))
        a, bl, br = _aggd(prod.reshape(n, -1))
        with np.errstate(invalid="ignore"):
            mean = (br - bl) * gamma(2 / a) / gamma(1 / a)
        feats += [a, mean, bl, br]
    return np.stack(feats, axis=1)


def niqe_features(y: np.ndarray) -> np.ndarray:
    """Per-block 36-vector features of a Y/gray image (float, 0..255) -> [blocks, 36]."""
    nh, nw = y.shape[0] // _BLOCK, y.shape[1] // _BLOCK
    if nh == 0 or nw == 0:
        raise ValueError(f"NIQE needs at least {_BLOCK}x{_BLOCK} pixels, got {y.shape}")
    img = y[:nh * _BLOCK, :nw * _BLOCK].astype(np.float64)
    f1 = _block_features(_mscn(img), _BLOCK, nh, nw)
    half = imresize(img, 0.5)
    f2 = _block_features(_mscn(half), _BLOCK // 2, nh, nw)
    return np.concatenate([f1, f2], axis=1)


def niqe(img: np.ndarray, crop_border: int = 0) -> float:
    """NIQE of a uint8/uint16 RGB or gray image (Y channel, rounded like MATLAB)."""
    y = rgb_to_y(img)
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    feats = niqe_features(y)
    mu_p, cov_p = _pristine()
    mu_d = np.nanmean(feats, axis=0)
    complete = feats[~np.isnan(feats).any(axis=1)]
    if len(complete) < 2:
        raise ValueError("NIQE: too few valid blocks (is the image flat?)")
    cov_d = np.cov(complete, rowvar=False)
    d = mu_p - mu_d
    return float(np.sqrt(d @ np.linalg.pinv((cov_p + cov_d) / 2) @ d))
