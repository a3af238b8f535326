"""Route tiles to models by TVAT score, and draw where each tile went.

Class ids are the bundle's (0 = lowest texture). ``FLAT`` (-1) marks tiles
scoring below the bundle's ``flat_bound``: they are upscaled by bicubic.

How a tile is scored is the bundle's ``route_score``:
- ``tile`` (the paper's): TVAT of the whole tile. A tile of flat paper with a
  few strokes (text, line art) averages low and goes to a small model.
- ``cell_max``: the tile is cut into ``route_cell`` x ``route_cell`` LR cells
  (the last ones flush with the tile's edge), each cell gets its TVAT, and the
  tile takes its busiest cell's score: one cell of strokes is enough to send
  the tile to the model that cell needs. The VSP map is computed once for the
  whole image, so neighbours across tile borders count as in the image.
"""
from __future__ import annotations

import numpy as np

from paddle_mmsr.core.manifest import ROUTE_SCORES
from paddle_mmsr.core.spec import ModelSpec
from paddle_mmsr.core.tiles import tile_starts
from paddle_mmsr.core.tvat import vsp

__all__ = ["FLAT", "ROUTINGS", "ROUTE_SCORES", "route", "tile_scores", "largest_class",
           "model_size", "class_label", "class_colour", "routing_map"]

FLAT = -1
ROUTINGS = ("tvat", "single")

# One colour per class, simplest model first; flat tiles are light grey.
PALETTE = [(40, 110, 255), (40, 190, 60), (255, 150, 0), (230, 30, 30),
           (170, 60, 220), (0, 200, 200)]
FLAT_COLOUR = (200, 200, 200)


def model_size(entry) -> int:
    """Relative size (and cost per tile) of a class model: blocks x width^2, its
    residual body."""
    spec = ModelSpec.parse(entry.spec)
    return spec.g_blocks * spec.width(entry.generator) ** 2


def largest_class(bundle) -> int:
    """Id of the largest class model (``model_size``; ties: the higher id)."""
    return max(bundle.classes, key=lambda c: (model_size(c), c.id)).id


def tile_scores(rgb: np.ndarray, grid, tvat, rule: str = "tile", cell: int = 32) -> np.ndarray:
    """TVAT score of every tile of ``grid`` (row by row) by ``rule`` (see above).

    ``rgb``: the LR image, HxWx3 float in [0, 1] (or uint8/uint16)."""
    boxes = grid.boxes()
    if rule == "tile":
        return np.array([tvat.score(grid.cut(rgb, y, x)) for y, x in boxes], np.float64)
    if rule != "cell_max":
        raise ValueError(f"route_score must be one of {ROUTE_SCORES}, got {rule!r}")
    if cell < 1:
        raise ValueError(f"route_cell must be >= 1, got {cell}")
    v = vsp(rgb, tvat.value_max).astype(np.float64)
    v[v <= tvat.tau] = 0.0
    ii = np.zeros((v.shape[0] + 1, v.shape[1] + 1))
    ii[1:, 1:] = v.cumsum(0).cumsum(1)
    ch, cw = min(cell, grid.tile_h), min(cell, grid.tile_w)
    cys = np.array(tile_starts(grid.tile_h, ch, 0))
    cxs = np.array(tile_starts(grid.tile_w, cw, 0))
    out = np.empty(len(boxes))
    for k, (y, x) in enumerate(boxes):
        y0, x0 = (y + cys)[:, None], (x + cxs)[None, :]
        sums = ii[y0 + ch, x0 + cw] - ii[y0, x0 + cw] - ii[y0 + ch, x0] + ii[y0, x0]
        out[k] = sums.max() / (ch * cw) / tvat.norm
    return out


def route(scores, bundle, routing: str = "tvat") -> np.ndarray:
    """Class id per TVAT score. ``single``: the largest model everywhere."""
    scores = np.asarray(scores, dtype=np.float64)
    if routing == "single":
        return np.full(scores.shape, largest_class(bundle), np.int64)
    if routing != "tvat":
        raise ValueError(f"routing must be one of {ROUTINGS}, got {routing!r}")
    ids = np.asarray(bundle.tvat.classify(scores), dtype=np.int64).reshape(scores.shape)
    if bundle.flat_bound is not None:
        ids = np.where(scores < float(bundle.flat_bound), FLAT, ids)
    return ids


def class_label(bundle, class_id: int) -> str:
    if class_id == FLAT:
        return "flat (bicubic)"
    entry = next(c for c in bundle.classes if c.id == class_id)
    spec = ModelSpec.parse(entry.spec)
    width = f"w{spec.channels}" if spec.channels else ""
    return f"class {class_id} (G{spec.g_blocks}{width})"


def class_colour(class_id: int) -> tuple:
    return FLAT_COLOUR if class_id == FLAT else PALETTE[class_id % len(PALETTE)]


def _owner_edges(starts: list, size: int, length: int) -> np.ndarray:
    """Pixel edges splitting overlapping tiles at the middle of each overlap."""
    mids = [(a + size + b) // 2 for a, b in zip(starts, starts[1:])]
    return np.array([0] + mids + [length])


def routing_map(rgb8: np.ndarray, grid, classes, labels: dict, min_side: int = 512):
    """A PIL image: ``rgb8`` (LR, HxWx3 uint8) tinted by each tile's class,
    tile cells outlined, and a legend of ``labels`` ({class id: text}) below."""
    from PIL import Image, ImageDraw
    h, w = rgb8.shape[:2]
    zoom = max(1, int(np.ceil(min_side / max(h, w))))
    gray = rgb8.astype(np.float32).mean(axis=2, keepdims=True)
    base = np.repeat(gray, 3, axis=2)
    tint = np.zeros_like(base)
    classes = np.asarray(classes).reshape(grid.shape)
    ey = _owner_edges(grid.ys, grid.tile_h, h)
    ex = _owner_edges(grid.xs, grid.tile_w, w)
    for i in range(len(ey) - 1):
        for j in range(len(ex) - 1):
            tint[ey[i]:ey[i + 1], ex[j]:ex[j + 1]] = class_colour(int(classes[i, j]))
    pic = (0.5 * base + 0.5 * tint).astype(np.uint8)
    im = Image.fromarray(pic).resize((w * zoom, h * zoom), Image.NEAREST)
    draw = ImageDraw.Draw(im)
    for e in ey[1:-1]:
        draw.line([(0, e * zoom), (w * zoom, e * zoom)], fill=(255, 255, 255))
    for e in ex[1:-1]:
        draw.line([(e * zoom, 0), (e * zoom, h * zoom)], fill=(255, 255, 255))
    row = 18
    out = Image.new("RGB", (im.width, im.height + row * len(labels) + 6), (255, 255, 255))
    out.paste(im, (0, 0))
    draw = ImageDraw.Draw(out)
    for k, (cid, text) in enumerate(sorted(labels.items())):
        top = im.height + 3 + k * row
        draw.rectangle([4, top + 2, 18, top + 14], fill=class_colour(cid), outline=(0, 0, 0))
        draw.text((24, top + 2), text, fill=(0, 0, 0))
    return out
