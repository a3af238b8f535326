"""Cut an LR image into overlapping, equal-sized tiles.

Tiles step by ``tile - overlap``; the last tile of a row or column is shifted
inward so it ends at the image edge, so every tile has the same size (one
batch shape per image). An image side shorter than the tile gives a single
tile of that side's length.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_TILE", "DEFAULT_OVERLAP", "tile_starts", "TileGrid"]

DEFAULT_TILE = 128     # LR px; chosen by measurement, see docs/reconstruction.md
DEFAULT_OVERLAP = 16   # LR px


def tile_starts(length: int, tile: int, overlap: int) -> list:
    """Start offsets along one side; all tiles have size min(tile, length)."""
    if length <= 0:
        raise ValueError("image side must be positive")
    if tile <= 0 or overlap < 0 or overlap >= tile:
        raise ValueError(f"need tile > overlap >= 0, got tile={tile}, overlap={overlap}")
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)  # last tile shifted inward to end at the edge
    return starts


@dataclass(frozen=True)
class TileGrid:
    """Tile layout of an ``height`` x ``width`` LR image."""
    height: int
    width: int
    tile: int
    overlap: int

    @property
    def tile_h(self) -> int:
        return min(self.tile, self.height)

    @property
    def tile_w(self) -> int:
        return min(self.tile, self.width)

    @property
    def ys(self) -> list:
        return tile_starts(self.height, self.tile, self.overlap)

    @property
    def xs(self) -> list:
        return tile_starts(self.width, self.tile, self.overlap)

    @property
    def shape(self) -> tuple:
        """(tile rows, tile columns)."""
        return len(self.ys), len(self.xs)

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def boxes(self) -> list:
        """(y, x) of every tile, row by row."""
        return [(y, x) for y in self.ys for x in self.xs]

    def cut(self, img: np.ndarray, y: int, x: int) -> np.ndarray:
        return img[y:y + self.tile_h, x:x + self.tile_w]
