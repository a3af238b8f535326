"""HR -> LR degradations, selected by config.

Default: MATLAB bicubic (antialiased). Others, applied in this order when
given: Gaussian ``blur`` (sigma, before downscaling), the downscale
``kernel`` (bicubic or bilinear), Gaussian ``noise`` (sigma on the 0-255
scale), ``jpeg`` quality. The mismatch between training and real-world
degradations is the main cause of poor results on real photos.
"""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from paddle_mmsr.image.resize import KERNELS, imresize


@dataclass
class Degradation:
    kernel: str = "bicubic"   # bicubic | bilinear
    blur: float = 0.0         # Gaussian sigma in HR pixels; 0 = off
    noise: float = 0.0        # Gaussian sigma on the 0-255 scale; 0 = off
    jpeg: int = 0             # JPEG quality 1-100; 0 = off

    def __post_init__(self):
        if self.kernel not in KERNELS:
            raise ValueError(f"degradation kernel must be one of {KERNELS}, got {self.kernel!r}")
        if self.blur < 0 or self.noise < 0:
            raise ValueError("blur and noise must be >= 0")
        if not (self.jpeg == 0 or 1 <= self.jpeg <= 100):
            raise ValueError("jpeg quality must be 0 (off) or 1-100")

    def to_dict(self) -> dict:
        return asdict(self)

    def __call__(self, hr: np.ndarray, scale: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """uint8 HxWx3 HR (H, W multiples of ``scale``) -> uint8 LR."""
        if hr.shape[0] % scale or hr.shape[1] % scale:
            raise ValueError(f"HR size {hr.shape[:2]} is not a multiple of scale {scale}")
        out_shape = (hr.shape[0] // scale, hr.shape[1] // scale)
        a = hr.astype(np.float64)
        if self.blur > 0:
            a = gaussian_filter(a, sigma=(self.blur, self.blur, 0)[:a.ndim], mode="reflect")
        a = imresize(a, output_shape=out_shape, kernel=self.kernel)
        if self.noise > 0:
            rng = rng or np.random.default_rng()
            a = a + rng.normal(0, self.noise, a.shape)
        lr = np.clip(np.round(a), 0, 255).astype(np.uint8)
        if self.jpeg:
            buf = io.BytesIO()
            Image.fromarray(lr).save(buf, format="JPEG", quality=int(self.jpeg))
            lr = np.array(Image.open(io.BytesIO(buf.getvalue())).convert(Image.fromarray(lr).mode))
        return lr
