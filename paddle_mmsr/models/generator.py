"""SRGAN / SRResNet generator.

Input: NCHW float32 RGB in [0, 1] (LR). Output: RGB in [0, 1] (not clipped),
``scale`` times larger.

Two forms:
- ``"srgan"`` (the paper's): 9x9 head + PReLU, residual blocks
  conv-BN-PReLU-conv-BN, conv-BN + global skip, upsampling stages
  (conv 64->256, PixelShuffle 2, PReLU), output conv.
- ``"fast"`` (for short CPU training): the same without BN, residual branches
  initialised at x0.1, and the output added to a bicubic upscale of the input,
  so the network learns only the residual. Converges much faster.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddle_mmsr.models.spec import FORMS


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
        self.scale, self.form = scale, form
        bn = form == "srgan"
        self.head = nn.Sequential(nn.Conv2D(3, channels, head_kernel, padding=head_kernel // 2),
                                  nn.PReLU())
        self.blocks = nn.Sequential(*[ResidualBlock(channels, bn) for _ in range(num_blocks)])
        mid = [nn.Conv2D(channels, channels, 3, padding=1)]
        if bn:
            mid.append(nn.BatchNorm2D(channels))
        self.mid = nn.Sequential(*mid)
        self.upsample = nn.Sequential(*_upsample_stages(channels, scale))
        self.tail = nn.Conv2D(channels, 3, tail_kernel, padding=tail_kernel // 2)
        if form == "fast":
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
        out = self.tail(self.upsample(out))
        if self.form == "fast":
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bicubic",
                                      align_corners=False)
        return out
