"""Cut an LR image into overlapping, equal-sized tiles.

``tile_starts`` (the training split's sub-images): tiles step by
``tile - overlap`` and the last one is shifted inward to end at the image edge.
``TileGrid`` (reconstruction) spreads the fewest tiles of at most ``tile``
evenly instead, so neighbours overlap by ``overlap`` (+1) and the last one
does not recompute most of its neighbour. Either way every tile of an image
has the same size (one batch shape per image), and a side shorter than the
tile gives a single tile of that side's length.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["DEFAULT_TILE", "DEFAULT_OVERLAP", "tile_starts", "balanced_starts", "TileGrid"]

DEFAULT_TILE = 128     # LR px; chosen by measurement, see benchmarks/README.md
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


def balanced_starts(length: int, tile: int, overlap: int) -> tuple:
    """(starts, size): the fewest tiles of at most ``tile`` that cover ``length`` with
    at least ``overlap`` between neighbours, all of one size, evenly spaced. Unlike
    ``tile_starts`` the last tile is not pushed back over its neighbour, so no more
    is computed twice than the overlap needs."""
    tile_starts(length, tile, overlap)  # validates
    if length <= tile:
        return [0], length
    n = -(-(length - overlap) // (tile - overlap))
    size = -(-(length + (n - 1) * overlap) // n)
    return [round(i * (length - size) / (n - 1)) for i in range(n)], size


@dataclass(frozen=True)
class TileGrid:
    """Tile layout of an ``height`` x ``width`` LR image: per side, the fewest tiles of
    at most ``tile`` px overlapping by at least ``overlap`` (``balanced_starts``)."""
    height: int
    width: int
    tile: int
    overlap: int

    @cached_property
    def _sides(self) -> tuple:
        """(starts, size) down and across, computed once per grid."""
        return (balanced_starts(self.height, self.tile, self.overlap),
                balanced_starts(self.width, self.tile, self.overlap))

    ys = property(lambda self: self._sides[0][0], doc="tile starts down the image")
    xs = property(lambda self: self._sides[1][0], doc="tile starts across the image")
    tile_h = property(lambda self: self._sides[0][1], doc="tile height (LR px)")
    tile_w = property(lambda self: self._sides[1][1], doc="tile width (LR px)")

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
