"""Calibrate a bundle's routing on data: the cheapest bounds whose PSNR-Y loss
against the largest model on every tile stays within a tolerance.

Every tile of the calibration images is upscaled by every class model and by
bicubic; its squared Y error against HR is summed with the tile's share of
each output pixel (its blending weight over the sum of weights there). For each choice of
thresholds (flat bound, class bounds) drawn from the score quantiles, the
routed error and the routed cost (measured seconds of each model on a tile of
that shape) are added up, against the largest model on every tile at the
default tiling; the cheapest choice with ``10 log10(routed error / largest-model
error) <= max_loss_db`` wins. Calibrate on images you will not report.
"""
from __future__ import annotations

import itertools
import time

import numpy as np

from paddle_mmsr.image.io import to_float, to_uint
from paddle_mmsr.metrics.psnr_ssim import rgb_to_y
from paddle_mmsr.image.resize import bicubic_up
from paddle_mmsr.sr.route import FLAT, largest_class
from paddle_mmsr.sr.stitch import tile_weight
from paddle_mmsr.core.tiles import DEFAULT_OVERLAP, DEFAULT_TILE, TileGrid

__all__ = ["tile_errors", "tile_seconds", "choose_bounds", "calibrate_bundle", "drawn_page"]


def drawn_page(seed: int, size: int = 512) -> np.ndarray:
    """A synthetic drawing (uint8 RGB): strokes, circles, hatching and letters on paper.
    Each seed gives another page (calibration guards and held-out tests use different
    seeds)."""
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (size, size), (250, 248, 240))
    d = ImageDraw.Draw(im)
    for _ in range(14):
        pts = [tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(4)]
        d.line(pts, fill=(20, 20, 20), width=int(rng.integers(1, 4)))
    for _ in range(6):
        x, y, r = (int(v) for v in (*rng.integers(40, size - 40, 2), rng.integers(10, 40)))
        d.ellipse([x - r, y - r, x + r, y + r], outline=(30, 30, 30), width=2)
    hx, hy = (int(v) for v in rng.integers(0, size - 180, 2))
    for k in range(0, 120, 6):  # hatching
        d.line([(hx + k, hy), (hx + 60 + k, hy + 90)], fill=(40, 40, 40), width=1)
    ty = int(rng.integers(0, size - 150))
    for row in range(6):
        d.text((30, ty + 24 * row), "MMSR line art 0123456789 ABC xyz", fill=(0, 0, 0))
    try:  # printed text at reading sizes (Pillow >= 10.1 scales its built-in font)
        from PIL import ImageFont
        for row in range(3):
            font = ImageFont.load_default(size=int(rng.integers(24, 56)))
            d.text((int(rng.integers(0, size // 3)), int(rng.integers(0, size - 60))),
                   "Text on a page, 42", fill=(10, 10, 10), font=font)
    except (TypeError, OSError):
        pass
    return np.asarray(im)


def tile_errors(sr, lr: np.ndarray, hr: np.ndarray) -> tuple:
    """(grid, weighted Y SSE (n, K + 1): bicubic then class 0..K-1) of every tile of one
    uint8 LR/HR pair. The errors do not depend on the routing rule."""
    s = sr.scale
    grid = TileGrid(lr.shape[0], lr.shape[1], sr.tile, sr.overlap)
    ids = [FLAT] + [c.id for c in sr.bundle.classes]
    sse = np.zeros((len(grid), len(ids)))
    th, tw = grid.tile_h * s, grid.tile_w * s
    weights = [tile_weight(grid, y, x, s).astype(np.float64) for y, x in grid.boxes()]
    wsum = np.zeros((grid.height * s, grid.width * s))
    for (y, x), w in zip(grid.boxes(), weights):
        wsum[y * s:y * s + th, x * s:x * s + tw] += w
    for k, (y, x) in enumerate(grid.boxes()):
        tile = to_float(grid.cut(lr, y, x))
        # the tile's share of each output pixel: its errors add up to the image's on any tiling
        w = weights[k] / np.maximum(wsum[y * s:y * s + th, x * s:x * s + tw], 1e-12)
        ref = rgb_to_y(hr[y * s:(y + grid.tile_h) * s, x * s:(x + grid.tile_w) * s])
        for j, cid in enumerate(ids):
            if cid == FLAT:
                up = bicubic_up(tile, s)
            else:
                up = sr.runner(cid).run(tile.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
            err = rgb_to_y(to_uint(np.clip(up, 0, 1))) - ref
            sse[k, j] = float((w * err * err).sum())
    return grid, sse


def tile_seconds(sr, rounds: int = 5, shape=None) -> np.ndarray:
    """Seconds per tile of ``shape`` (h, w; default the full tile): bicubic, then each
    class model (best of interleaved rounds)."""
    h, w = shape or (sr.tile, sr.tile)
    x = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
    calls = [lambda: bicubic_up(x, sr.scale)]
    calls += [lambda r=sr.runner(c.id): r.run(x.transpose(2, 0, 1)[None].copy())
              for c in sr.bundle.classes]
    best = np.full(len(calls), np.inf)
    for f in calls:
        f()
    for _ in range(rounds):
        for j, f in enumerate(calls):
            t = time.perf_counter()
            f()
            best[j] = min(best[j], time.perf_counter() - t)
    return best


def choose_bounds(scores, sse, seconds, max_loss_db: float, top: int, n_candidates: int = 40,
                  guard=None, ref=None, per_image=None):
    """Cheapest (flat_bound or None, [class bounds]) within ``max_loss_db`` of routing
    every tile to column ``top`` of ``sse`` (columns: bicubic, class 0, ...).
    ``guard``: optional (scores, sse, max_loss_db[, reference error]) of a second tile
    set (e.g. line art) that must stay within its own tolerance; the cost is counted
    on the first. ``ref``: optional (error, cost) of the reference to compare with
    (the largest model on another tiling); default: column ``top`` on these tiles.
    ``per_image``: optional (image index of each tile, each image's reference error,
    max_image_loss_db): no single image may lose more than that either.

    Returns (flat_bound, bounds, loss_db, cost, cost_top)."""
    scores, sse = np.asarray(scores, np.float64), np.asarray(sse, np.float64)
    k = sse.shape[1]  # bicubic + K classes -> K thresholds
    pool = scores if guard is None else np.concatenate([scores, guard[0]])
    cand = np.unique(np.concatenate([[-np.inf], np.quantile(pool, np.linspace(0, 1, n_candidates)),
                                     [np.inf]]))

    def loss_of(th, sc, e, e_ref=None):
        col = np.searchsorted(np.asarray(th), sc, side="right")  # 0 = bicubic
        err = e[np.arange(len(sc)), col].sum()
        e_ref = e[:, top].sum() if e_ref is None else e_ref
        return 10 * np.log10(max(err, 1e-12) / max(e_ref, 1e-12)), col

    seconds = np.broadcast_to(np.asarray(seconds, np.float64), sse.shape)  # per tile, or one row
    rows = np.arange(len(scores))
    ref_err, cost_top = ref if ref is not None else (None, seconds[:, top].sum())
    g_ref = guard[3] if guard is not None and len(guard) > 3 else None
    best = None
    for th in itertools.combinations_with_replacement(cand, k - 1):
        loss, col = loss_of(th, scores, sse, ref_err)
        if loss > max_loss_db:
            continue
        if guard is not None and loss_of(th, np.asarray(guard[0]), np.asarray(guard[1]),
                                         g_ref)[0] > guard[2]:
            continue
        if per_image is not None and _worst_image_db(sse[rows, col], *per_image[:2]) > per_image[2]:
            continue
        cost = seconds[rows, col].sum()
        if best is None or cost < best[3] - 1e-12:
            best = (th, col, loss, cost)
    if best is None:  # only with another reference: even the largest model everywhere loses
        th = (-np.inf,) * top + (np.inf,) * (k - 1 - top)  # every tile to column ``top``
        loss, col = loss_of(th, scores, sse, ref_err)
        best = (th, col, loss, seconds[rows, col].sum())
    th, _, loss, cost = best  # without ``ref``, routing all to ``top`` always qualifies
    flat = None if np.isneginf(th[0]) else float(th[0])
    bounds = _strict([float(b) for b in th[1:]], lo=flat)
    return flat, bounds, float(loss), float(cost), float(cost_top)


def _worst_image_db(tile_err, image_of, image_ref) -> float:
    """The largest loss (dB) of any one image against its reference error."""
    err = np.bincount(image_of, weights=tile_err, minlength=len(image_ref))
    return float(np.max(10 * np.log10(np.maximum(err, 1e-12) / np.maximum(image_ref, 1e-12))))


def _strict(bounds: list, lo=None) -> list:
    """Make bounds strictly increasing (an empty class keeps a tiny interval), finite
    values rounded to 4 decimals; -inf (a class nobody reaches from below) becomes lo
    or 0."""
    out, prev = [], lo if lo is not None else -np.inf
    for b in bounds:
        b = (lo if lo is not None else 0.0) if np.isneginf(b) else b
        b = round(b, 4) if np.isfinite(b) else 1e9
        if b <= prev:
            b = prev + 1e-4
        out.append(round(b, 4))
        prev = b
    return out


def _seconds(sr, collected, cache: dict) -> np.ndarray:
    """(n tiles, K + 1) seconds of every collected tile, timed once per tile shape."""
    rows = []
    for _, grid, _ in collected:
        key = (grid.tile_h, grid.tile_w)
        if key not in cache:
            cache[key] = tile_seconds(sr, shape=(grid.tile_h, grid.tile_w))
        rows += [cache[key]] * len(grid)
    return np.array(rows).reshape(-1, 1 + len(sr.bundle.classes))


def _collect(sr, pairs, progress=None) -> list:
    return [(lr, *tile_errors(sr, lr, hr)) for lr, hr in (progress(pairs) if progress else pairs)]


def _scores(sr, collected) -> tuple:
    """Scores by the bundle's current rule, and the errors, over every collected tile."""
    scores = [sr.scores(lr, grid) for lr, grid, _ in collected]
    return np.concatenate(scores), np.concatenate([e for _, _, e in collected])


def calibrate_bundle(sr, pairs, max_loss_db: float = 0.03, progress=None,
                     rules=(("cell_max", 32),), guard_pairs=(), guard_max_loss_db: float = 0.1,
                     grids=None, frontier=(), max_image_loss_db: float | None = None) -> dict:
    """Calibrate on (lr, hr) uint8 pairs for each tiling (tile, overlap) of ``grids``
    (default: ``sr``'s) and each (route_score, route_cell) of ``rules``; ``guard_pairs``
    (e.g. drawings) must lose at most ``guard_max_loss_db``. Loss and speed-up are
    against the largest model everywhere at the default tiling (128/16), which is
    how the single model runs. Returns the cheapest choice with its estimates (the
    bundle's rule and ``sr``'s tiling are left set to it); ``frontier``: other
    tolerances (dB) at which to report the best estimated speed-up too;
    ``max_image_loss_db``: no single image of ``pairs`` may lose more than this."""
    from paddle_mmsr.sr.reconstruct import MMSR
    grids = [tuple(g) for g in (grids or [(sr.tile, sr.overlap)])]
    top = 1 + [c.id for c in sr.bundle.classes].index(largest_class(sr.bundle))

    def at(tile, overlap):
        if (tile, overlap) == (sr.tile, sr.overlap):
            return sr
        return MMSR(sr.bundle, backend=sr.backend, device=sr.device, threads=sr.threads,
                    cache_dir=sr.cache_dir, tile=tile, overlap=overlap)

    timed = {}
    ref_sr = at(DEFAULT_TILE, DEFAULT_OVERLAP)
    ref_main, ref_guard = _collect(ref_sr, pairs, progress), _collect(ref_sr, guard_pairs)
    n_ref = sum(len(grid) for _, grid, _ in ref_main)
    ref = (sum(e[:, top].sum() for _, _, e in ref_main),
           _seconds(ref_sr, ref_main, timed)[:, top].sum())
    g_ref = sum(e[:, top].sum() for _, _, e in ref_guard)
    image_ref = np.array([e[:, top].sum() for _, _, e in ref_main])
    best, tried, speed = None, [], {}
    for tile, overlap in grids:
        g_sr = at(tile, overlap)
        if (tile, overlap) == (DEFAULT_TILE, DEFAULT_OVERLAP):
            main, guard_set = ref_main, ref_guard
        else:
            main, guard_set = _collect(g_sr, pairs, progress), _collect(g_sr, guard_pairs)
        seconds = _seconds(g_sr, main, timed)
        image_of = np.concatenate([np.full(len(grid), i) for i, (_, grid, _) in enumerate(main)])
        for rule, cell in rules:
            sr.bundle.route_score, sr.bundle.route_cell = rule, int(cell or 32)
            scores, sse = _scores(g_sr, main)
            guard = (*_scores(g_sr, guard_set), guard_max_loss_db, g_ref) if guard_set else None
            per_image = None if max_image_loss_db is None else (image_of, image_ref,
                                                                  max_image_loss_db)
            flat, bounds, loss, cost, cost_ref = choose_bounds(scores, sse, seconds, max_loss_db,
                                                               top, guard=guard, ref=ref,
                                                               per_image=per_image)
            col = np.searchsorted([-np.inf if flat is None else flat, *bounds], scores, side="right")
            worst = _worst_image_db(sse[np.arange(len(scores)), col], image_of, image_ref)
            for tol in frontier:  # speed-up at other tolerances, this tiling and rule
                f = choose_bounds(scores, sse, seconds, tol, top, guard=guard, ref=ref,
                                  per_image=per_image)
                if f[2] <= tol:
                    speed[tol] = max(speed.get(tol, 0.0), float(cost_ref / f[3]))
            res = {"tile": tile, "overlap": overlap, "route_score": rule,
                   "route_cell": sr.bundle.route_cell, "flat_bound": flat, "bounds": bounds,
                   "loss_db": loss, "worst_image_loss_db": worst,
                   "tiles": int(len(scores)), "seconds": float(cost),
                   "speedup_estimated": float(cost_ref / cost)}
            tried.append(res)
            if loss <= max_loss_db and (best is None or
                                        res["speedup_estimated"] > best["speedup_estimated"]):
                best = res
    best = best or min(tried, key=lambda r: r["loss_db"])
    sr.bundle.route_score, sr.bundle.route_cell = best["route_score"], best["route_cell"]
    sr.tile, sr.overlap = best["tile"], best["overlap"]
    return {**best, "tried": tried, "max_loss_db": max_loss_db,
            "max_image_loss_db": max_image_loss_db,
            "frontier": {f"{tol:g}": speed.get(tol) for tol in frontier},
            "guard_max_loss_db": guard_max_loss_db if guard_pairs else None,
            "guard_images": len(guard_pairs), "reference": {
                "tile": DEFAULT_TILE, "overlap": DEFAULT_OVERLAP, "tiles": n_ref,
                "seconds": float(ref[1])},
            "tile_seconds": {f"{h}x{w}": v.tolist() for (h, w), v in timed.items()}}
