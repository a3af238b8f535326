"""Blend upscaled tiles into one image with feathered weights.

Each tile's weight falls to zero towards its inner edges: a dead ``margin``
(where the generator saw zero padding instead of the neighbouring pixels),
then a linear ramp of width ``ramp`` up to 1. Edges on the image border keep
weight 1. With ``margin + ramp + margin = overlap`` two neighbouring tiles
cross-fade linearly and their weights sum to 1; elsewhere the sum is divided
out. Rows are blended in a band one tile high that is drained as soon as no
later tile can touch them, so memory follows the tile row, not the image.
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
    """Weighted sum of tiles over a band of ``rows`` output rows starting at ``top``."""

    def __init__(self, width: int, channels: int, rows: int):
        self.top = 0
        self.acc = np.zeros((rows, width, channels), np.float32)
        self.wsum = np.zeros((rows, width), np.float32)

    def add(self, y: int, x: int, tile: np.ndarray, weight: np.ndarray) -> None:
        """Add an HR tile (h, w, C) with its weight map (h, w) at HR (y, x)."""
        h, w = weight.shape
        r = y - self.top
        if r < 0 or r + h > len(self.acc):
            raise ValueError(f"rows {y}..{y + h} are outside the band at {self.top}")
        self.acc[r:r + h, x:x + w] += tile * weight[:, :, None]
        self.wsum[r:r + h, x:x + w] += weight

    def drain(self, upto: int, sink, chunk: int = 64) -> None:
        """Pass blended rows [top, upto) to ``sink(first_row, rows)`` in chunks
        (float32, (n, W, C)), then move the band down past them."""
        n = max(0, min(upto - self.top, len(self.acc)))
        if n == 0:
            return
        for i in range(0, n, chunk):
            j = min(i + chunk, n)
            sink(self.top + i, self.acc[i:j] / np.maximum(self.wsum[i:j], 1e-12)[:, :, None])
        for buf in (self.acc, self.wsum):  # shift up in non-overlapping steps of n rows
            for i in range(0, len(buf) - n, n):
                j = min(i + n, len(buf) - n)
                buf[i:j] = buf[i + n:j + n]
            buf[len(buf) - n:] = 0
        self.top += n
