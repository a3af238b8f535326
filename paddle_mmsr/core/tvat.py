"""TVAT: a cheap texture score (MMSR paper, eqs. 1-3).

For every pixel i, VSP_i = sum over its 8 neighbours j of ||p_i - p_j||^2
(all colour channels; a gray image counts as three equal channels; image borders replicate the edge pixel, so outside
neighbours add nothing). Then

    TVAT = sum_i VSP_i * [VSP_i > tau] / (rows * cols) / norm

Normalisation (the paper leaves the scale open): pixel values on the 0-255
scale (16-bit input is rescaled to it), tau = 5 on that scale, and
``norm = 1e4``. On the LR sub-images of T91 + BSD200 (480 px HR crops, step
240, x4; 492 sub-images, pretrained/provenance/runs/split_x4_summary.md) this gives
1st/10th/50th/90th/99th percentiles of 0.13 / 0.44 / 1.17 / 2.75 / 4.72, 81%
below 2 and 2% above 4: the range the paper reports (about 0.05 to 6), so
the paper's class bounds [2, 4] keep their meaning (docs/design.md, "TVAT"). ``value_max``, ``tau``
and ``norm`` are parameters, stored in every bundle.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from paddle_mmsr.core.pixels import to_float

__all__ = ["TVATSettings", "vsp", "tvat", "classify", "calibrate"]


@dataclass
class TVATSettings:
    tau: float = 5.0
    norm: float = 1e4
    value_max: float = 255.0  # pixel scale the score is computed on
    bounds: list = field(default_factory=lambda: [2.0, 4.0])

    def __post_init__(self):
        self.bounds = check_bounds(self.bounds)

    @property
    def n_classes(self) -> int:
        return len(self.bounds) + 1

    def to_dict(self) -> dict:
        return asdict(self)

    def score(self, img: np.ndarray) -> float:
        return tvat(img, tau=self.tau, norm=self.norm, value_max=self.value_max)

    def classify(self, score) -> np.ndarray | int:
        return classify(score, self.bounds)


def check_bounds(bounds) -> list:
    b = [float(v) for v in bounds]
    if any(x >= y for x, y in zip(b, b[1:])):
        raise ValueError(f"class bounds must be strictly increasing, got {b}")
    return b


def _on_scale(img: np.ndarray, value_max: float) -> np.ndarray:
    """HxWxC float32 on the 0..value_max scale; alpha is not texture."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] in (2, 4):
        img = img[:, :, :-1]
    a = to_float(img) * np.float32(value_max)
    return a if a.ndim == 3 else a[:, :, None]


def _channel_factor(img) -> float:
    """Gray counts as three equal channels, so gray and RGB photos share bounds."""
    img = np.asarray(img)
    return 3.0 if img.ndim == 2 or img.shape[2] in (1, 2) else 1.0


def vsp(img: np.ndarray, value_max: float = 255.0) -> np.ndarray:
    """VSP map (HxW float32) of an HxW or HxWxC image (uint8/uint16, or float in [0,1])."""
    a = _on_scale(img, value_max)
    h, w = a.shape[:2]
    p = np.pad(a, ((1, 1), (1, 1), (0, 0)), mode="edge")
    out = np.zeros((h, w), np.float32)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                d = p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] - a
                out += np.einsum("ijc,ijc->ij", d, d)
    return out * _channel_factor(img)


def tvat(img: np.ndarray, tau: float = 5.0, norm: float = 1e4, value_max: float = 255.0) -> float:
    """TVAT score of one image or tile."""
    v = vsp(img, value_max)
    return float(v[v > tau].sum(dtype=np.float64) / v.size / norm)


def classify(score, bounds) -> np.ndarray | int:
    """Class index: 0 below bounds[0], ..., len(bounds) at or above bounds[-1]."""
    idx = np.searchsorted(np.asarray(bounds, dtype=np.float64), np.asarray(score), side="right")
    return int(idx) if np.ndim(idx) == 0 else idx


def calibrate(scores, n_classes: int) -> list:
    """Bounds that split ``scores`` into ``n_classes`` classes of equal size."""
    scores = np.asarray(scores, dtype=np.float64)
    if n_classes < 1:
        raise ValueError("n_classes must be >= 1")
    if scores.size < n_classes:
        raise ValueError(f"need at least {n_classes} scores to calibrate, got {scores.size}")
    qs = np.quantile(scores, np.arange(1, n_classes) / n_classes)
    return check_bounds(np.round(qs, 4).tolist())
