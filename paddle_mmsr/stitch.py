"""Blend upscaled tiles into one image with feathered weights.

Each tile's weight falls to zero towards its inner edges: a dead ``margin``
(where the generator saw zero padding instead of the neighbouring pixels),
then a linear ramp of width ``ramp`` up to 1. Edges on the image border keep
weight 1. With ``margin + ramp + margin = overlap`` two neighbouring tiles
cross-fade linearly and their weights sum to 1; elsewhere the sum is divided
out. Rows are blended in a strip that is flushed as soon as no later tile can
touch them, so memory follows the tile row, not the image.
"""
from __future__ import annotations

import numpy as np

__all__ = ["blend_widths", "feather", "tile_weight", "Stitcher"]


def blend_widths(overlap: int) -> tuple:
    """(margin, ramp) in LR px for a tile overlap: a third dead on each side."""
    margin = overlap // 3
    return margin, overlap - 2 * margin


def feather(length: int, scale: int, margin: int, ramp: int,
            open_start: bool, open_end: bool) -> np.ndarray:
    """1-D weights over ``length`` HR px; ``open_*`` = edge inside the image."""
    w = np.ones(length, np.float32)
    d = (np.arange(length, dtype=np.float32) + 0.5) / scale  # LR px from the start
    for is_open, dist in ((open_start, d), (open_end, d[::-1])):
        if is_open:
            ramped = np.clip((dist - margin) / ramp, 0, 1) if ramp > 0 else (dist > margin)
            w = np.minimum(w, ramped.astype(np.float32))
    return w


def tile_weight(grid, y: int, x: int, scale: int) -> np.ndarray:
    """HR weight map (h, w) of the tile at LR (y, x) of a TileGrid."""
    margin, ramp = blend_widths(grid.overlap)
    th, tw = grid.tile_h, grid.tile_w
    wy = feather(th * scale, scale, margin, ramp, y > 0, y + th < grid.height)
    wx = feather(tw * scale, scale, margin, ramp, x > 0, x + tw < grid.width)
    return wy[:, None] * wx[None, :]


class Stitcher:
    """Weighted sum of tiles over a band of output rows [top, top + len)."""

    def __init__(self, width: int, channels: int):
        self.top = 0
        self.acc = np.zeros((0, width, channels), np.float32)
        self.wsum = np.zeros((0, width), np.float32)

    def add(self, y: int, x: int, tile: np.ndarray, weight: np.ndarray) -> None:
        """Add an HR tile (h, w, C) with its weight map (h, w) at HR (y, x)."""
        h, w = weight.shape
        if y < self.top:
            raise ValueError(f"row {y} was already flushed (top is {self.top})")
        grow = y + h - (self.top + len(self.acc))
        if grow > 0:
            width, ch = self.acc.shape[1:]
            self.acc = np.concatenate([self.acc, np.zeros((grow, width, ch), np.float32)])
            self.wsum = np.concatenate([self.wsum, np.zeros((grow, width), np.float32)])
        r = y - self.top
        self.acc[r:r + h, x:x + w] += tile * weight[:, :, None]
        self.wsum[r:r + h, x:x + w] += weight

    def flush(self, upto: int) -> np.ndarray:
        """Blended rows [top, upto) (float32, (rows, W, C)); they are dropped."""
        n = max(0, min(upto - self.top, len(self.acc)))
        rows = self.acc[:n] / np.maximum(self.wsum[:n], 1e-12)[:, :, None]
        self.acc, self.wsum = self.acc[n:].copy(), self.wsum[n:].copy()
        self.top += n
        return rows
