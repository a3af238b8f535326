"""SRGAN / SRResNet generator, and a compact form that works at LR resolution.

Input: NCHW float32 RGB in [0, 1] (LR). Output: RGB in [0, 1] (not clipped),
``scale`` times larger.

Three forms:
- ``"srgan"`` (the paper's): 9x9 head + PReLU, residual blocks
  conv-BN-PReLU-conv-BN, conv-BN + global skip, upsampling stages
  (conv 64->256, PixelShuffle 2, PReLU), output conv.
- ``"fast"`` (for short CPU training): the same without BN, residual branches
  initialised at x0.1, and the output added to a bicubic upscale of the input,
  so the network learns only the residual. Converges much faster.
- ``"compact"`` (cheap on CPU): every conv runs at LR resolution. Head conv +
  activation, residual blocks conv-act-conv (no BN), conv + global skip, then
  one conv to 3 * scale^2 channels and one PixelShuffle(scale), plus a
  bicubic upscale of the input. The bicubic skip is done at LR too: bicubic
  x s is, per output phase, a fixed 5x5 filter of the LR input, so it is a
  fixed grouped conv to the same 3 * s^2 channels, added before the shuffle
  (equal to ``F.interpolate(mode="bicubic")``, see the tests). Only the final
  shuffle touches HR pixels, so the cost is ~ blocks x channels^2 and the
  class models of a bundle differ in cost as much as in size. Use a small
  head kernel (``head_kernel: 3``); ``tail_kernel`` is the last LR conv's.

Activations are PReLU throughout (exported as the equal LeakyReLU; Paddle 3.3's
conv + activation fusion crashes on it, see sr/inference.py).
"""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddle_mmsr.core.spec import FORMS
from paddle_mmsr.image.resize import cubic


def bicubic_phase_kernel(scale: int) -> np.ndarray:
    """(3 * s^2, 1, 5, 5) float32: bicubic x s (a = -0.75, half-pixel centres, edge
    pixels repeated) as a grouped conv whose output channels are ordered for
    PixelShuffle(s). Output phase r of LR pixel i samples the input at
    i + (r + 0.5) / s - 0.5, whose 4 taps lie within i - 2 .. i + 2."""
    taps = cubic([[(r + 0.5) / scale - 0.5 - (k - 2) for k in range(5)] for r in range(scale)],
                 a=-0.75)
    k2 = (taps[:, None, :, None] * taps[None, :, None, :]).reshape(scale * scale, 5, 5)
    return np.tile(k2, (3, 1, 1))[:, None].astype(np.float32)


class ResidualBlock(nn.Layer):
    def __init__(self, ch: int, bn: bool):
        super().__init__()
        layers = [nn.Conv2D(ch, ch, 3, padding=1)]
        if bn:
            layers.append(nn.BatchNorm2D(ch))
        layers.append(nn.PReLU())
        layers.append(nn.Conv2D(ch, ch, 3, padding=1))
        if bn:
            layers.append(nn.BatchNorm2D(ch))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.body(x)


def _upsample_stages(ch: int, scale: int) -> list:
    if scale in (2, 4):
        factors = [2] * (scale // 2)
    elif scale == 3:
        factors = [3]
    else:
        raise ValueError(f"scale must be 2, 3 or 4, got {scale}")
    layers = []
    for f in factors:
        layers += [nn.Conv2D(ch, ch * f * f, 3, padding=1), nn.PixelShuffle(f), nn.PReLU()]
    return layers


class Generator(nn.Layer):
    def __init__(self, num_blocks: int = 16, channels: int = 64, scale: int = 4,
                 form: str = "srgan", head_kernel: int = 9, tail_kernel: int = 9):
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"generator form must be one of {FORMS}, got {form!r}")
        if head_kernel % 2 == 0 or tail_kernel % 2 == 0:
            raise ValueError("kernel sizes must be odd")
        if scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {scale}")
        self.scale, self.form = scale, form
        bn = form == "srgan"
        self.head = nn.Sequential(nn.Conv2D(3, channels, head_kernel, padding=head_kernel // 2),
                                  nn.PReLU())
        self.blocks = nn.Sequential(*[ResidualBlock(channels, bn)
                                      for _ in range(num_blocks)])
        mid = [nn.Conv2D(channels, channels, 3, padding=1)]
        if bn:
            mid.append(nn.BatchNorm2D(channels))
        self.mid = nn.Sequential(*mid)
        if form == "compact":
            self.upsample = nn.Sequential()
            self.tail = nn.Conv2D(channels, 3 * scale * scale, tail_kernel,
                                  padding=tail_kernel // 2)
            self.shuffle = nn.PixelShuffle(scale)
            self.register_buffer("skip_kernel", paddle.to_tensor(bicubic_phase_kernel(scale)),
                                 persistable=False)  # fixed; not in the weight files
        else:
            self.upsample = nn.Sequential(*_upsample_stages(channels, scale))
            self.tail = nn.Conv2D(channels, 3, tail_kernel, padding=tail_kernel // 2)
        if form != "srgan":
            self._scale_residual_init(0.1)

    def _scale_residual_init(self, factor: float) -> None:
        for block in self.blocks:
            for layer in block.body:
                if isinstance(layer, nn.Conv2D):
                    layer.weight.set_value(layer.weight * factor)
        self.tail.weight.set_value(self.tail.weight * factor * 0.1)

    def forward(self, x):
        feat = self.head(x)
        out = self.mid(self.blocks(feat)) + feat
        if self.form == "compact":
            skip = F.conv2d(F.pad(x, [2, 2, 2, 2], mode="replicate"), self.skip_kernel, groups=3)
            return self.shuffle(self.tail(out) + skip)
        out = self.tail(self.upsample(out))
        if self.form == "fast":
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bicubic",
                                      align_corners=False)
        return out
