"""VGG-style SRGAN discriminator with ``num_layers`` 3x3 convs.

Channels start at 64 and double every two layers (capped at 512); odd layers
(2nd, 4th, ...) have stride 2; BN after every conv except the first; LeakyReLU
0.2. Then adaptive average pooling to 4x4 (so any input >= 32 px works),
dense 1024, LeakyReLU, dense 1 (logits).
Input: NCHW float32 RGB in [0, 1].
"""
from __future__ import annotations

import paddle.nn as nn


class Discriminator(nn.Layer):
    def __init__(self, num_layers: int = 8, base_channels: int = 64, pool: int = 4):
        super().__init__()
        if num_layers < 1:
            raise ValueError("num_layers must be >= 1")
        layers, in_ch = [], 3
        for i in range(num_layers):
            out_ch = min(base_channels * 2 ** (i // 2), 512)
            stride = 2 if i % 2 == 1 else 1
            layers.append(nn.Conv2D(in_ch, out_ch, 3, stride=stride, padding=1))
            if i > 0:
                layers.append(nn.BatchNorm2D(out_ch))
            layers.append(nn.LeakyReLU(0.2))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2D(pool)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(in_ch * pool * pool, 1024),
                                  nn.LeakyReLU(0.2), nn.Linear(1024, 1))

    def forward(self, x):
        return self.head(self.pool(self.features(x)))
