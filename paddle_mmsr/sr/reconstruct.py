"""MMSR reconstruction: tiles -> TVAT -> route -> run -> stitch.

    from paddle_mmsr import MMSR
    sr = MMSR.load("pretrained/mmsr_x4_bicubic")
    out = sr.upscale(img)        # uint8/uint16 HxW or HxWxC, same kind back

Gray input is run as RGB and averaged back; alpha is upscaled by bicubic;
uint16 stays uint16 (the networks run in float). ``MMSR`` keeps no per-image
state, so one object may serve several threads.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from paddle_mmsr.core.manifest import load_bundle
from paddle_mmsr.image.io import to_float, to_uint
from paddle_mmsr.sr.inference import cached_export, make_runner, prune_cache
from paddle_mmsr.sr.precision import choose_precision
from paddle_mmsr.image.resize import bicubic_up
from paddle_mmsr.models.weights import build_class_generator
from paddle_mmsr.sr.route import FLAT, class_label, largest_class, route, tile_scores
from paddle_mmsr.sr.stitch import Stitcher, tile_weight
from paddle_mmsr.core.tiles import DEFAULT_OVERLAP, DEFAULT_TILE, TileGrid

__all__ = ["MMSR", "Reconstruction"]


@dataclass
class Reconstruction:
    """An upscaled image and how it was made."""
    image: np.ndarray
    grid: TileGrid
    scores: np.ndarray          # TVAT score per tile, row by row
    classes: np.ndarray         # class id per tile (FLAT = bicubic)
    timings: dict = field(default_factory=dict)  # seconds: tvat, tiling, network, bicubic, total

    def shares(self) -> dict:
        """Fraction of tiles per class id."""
        ids, counts = np.unique(self.classes, return_counts=True)
        return {int(i): c / self.classes.size for i, c in zip(ids, counts)}


def _split_channels(img: np.ndarray):
    """(colour part HxWx{1,3}, alpha HxW or None) of an HxW[xC] image."""
    if img.ndim == 2:
        return img[:, :, None], None
    c = img.shape[2]
    if c in (1, 3):
        return img, None
    if c in (2, 4):
        return img[:, :, :c - 1], img[:, :, c - 1]
    raise ValueError(f"expected 1-4 channels, got shape {img.shape}")


def _check_image(img) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {img.shape}")
    if img.dtype not in (np.uint8, np.uint16) and not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"expected uint8, uint16 or float in [0, 1], got {img.dtype}")
    if np.issubdtype(img.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(img)))
        if bad:
            raise ValueError(f"image has {bad} NaN or infinite value(s)")
        lo, hi = float(img.min()), float(img.max())
        if lo < 0 or hi > 1:
            hint = " (0-255 scale? divide by 255, or pass uint8)" if hi > 1 else ""
            raise ValueError(f"float images must be in [0, 1], got values in "
                             f"[{lo:g}, {hi:g}]{hint}")
    return img


def _warm_export(bundle, entry, cache_dir) -> bool:
    """The class has a current export of the manifest's weights: they were checked
    when it was made, so loading does not build the network again."""
    try:
        return cached_export(bundle, entry, cache_dir) is not None
    except (ImportError, OSError):
        return False


class MMSR:
    """A loaded bundle, ready to upscale. Options are fixed; images are not kept."""

    def __init__(self, bundle, backend: str = "auto", device: str = "cpu",
                 tile: int | None = None, overlap: int | None = None,
                 batch_size: int | None = None,
                 threads: int | None = None, cache_dir=None, tensorrt: bool = False,
                 precision: str = "auto", on_export=None):
        # tiling: as given, else the bundle's (what its routing was calibrated with), else 128/16
        tile = tile or bundle.tile or DEFAULT_TILE
        overlap = next(v for v in (overlap, bundle.overlap, DEFAULT_OVERLAP) if v is not None)
        TileGrid(tile, tile, tile, overlap).xs  # validates tile / overlap
        self.bundle = bundle
        self.backend, self.device, self.threads = backend, device, threads
        self.cache_dir, self.tensorrt = cache_dir, tensorrt
        if batch_size is None:  # CPU: batches > 1 are no faster and each new shape costs memory
            batch_size = 4 if device.startswith("gpu") else 1
        self.tile, self.overlap, self.batch_size = int(tile), int(overlap), max(1, int(batch_size))
        if backend == "dygraph" and precision == "auto":
            self.precision, self.precision_reason = "fp32", "dygraph runs fp32"
        else:  # "auto" -> fp32 or bf16, by the hardware and the bundle's measured cost
            self.precision, self.precision_reason = choose_precision(
                precision, device, bundle.bf16_psnr_cost)
            if self.precision == "bf16" and backend == "dygraph":
                raise ValueError("bf16 runs in Paddle Inference only; use backend auto or "
                                 "inference, or precision fp32")
        self.on_export = on_export  # called with a class entry before its (slow) export
        self._runners = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, bundle_dir, **options) -> "MMSR":
        """Load a bundle folder and check its weights; ``options`` as for the constructor."""
        bundle = load_bundle(Path(bundle_dir))
        sr = cls(bundle, **options)
        for entry in bundle.classes:  # a mismatch fails here, not at the first tile
            if sr.backend == "dygraph" or not _warm_export(bundle, entry, sr.cache_dir):
                build_class_generator(bundle, entry)  # checks the weights against the manifest
        if sr.backend != "dygraph":
            try:
                prune_cache(bundle, sr.cache_dir)
            except OSError:
                pass
        return sr

    @property
    def scale(self) -> int:
        return self.bundle.scale

    def label(self, class_id: int) -> str:
        return class_label(self.bundle, class_id)

    def runner(self, class_id: int):
        """The class's runner, created (and exported) on first use."""
        with self._lock:
            if class_id not in self._runners:
                entry = next(c for c in self.bundle.classes if c.id == class_id)
                self._runners[class_id] = make_runner(
                    self.bundle, entry, self.backend, self.device, self.threads, self.cache_dir,
                    self.tensorrt, (self.batch_size, self.tile), self.precision,
                    self.on_export)
            return self._runners[class_id]

    def prepare(self, routing: str = "tvat") -> None:
        """Create every runner ``routing`` may need (so timing excludes export)."""
        ids = [largest_class(self.bundle)] if routing == "single" else \
            [c.id for c in self.bundle.classes]
        for cid in ids:
            self.runner(cid)

    def scores(self, colour: np.ndarray, grid: TileGrid) -> np.ndarray:
        """TVAT score per tile of an HxWx{1,3} image, by the bundle's route_score."""
        b = self.bundle
        if b.route_score == "tile":
            return tile_scores(colour, grid, b.tvat, "tile")
        rgb = to_float(colour)
        if rgb.shape[2] == 1:
            rgb = np.repeat(rgb, 3, axis=2)
        return tile_scores(rgb, grid, b.tvat, b.route_score, b.route_cell)

    def upscale(self, img, routing: str = "tvat", progress=None) -> np.ndarray:
        """Upscaled image of the same kind (channels, dtype) as ``img``."""
        return self.reconstruct(img, routing, progress).image

    def reconstruct(self, img, routing: str = "tvat", progress=None, tile: int | None = None,
                    overlap: int | None = None, router=None) -> Reconstruction:
        """Upscale and report routing and timings. ``progress(done, total)`` per tile batch.
        ``router(scores, classes) -> classes``, if given, may change the routed class ids
        (e.g. to keep them steady from one video frame to the next)."""
        t_start = time.perf_counter()
        img = _check_image(img)
        colour, alpha = _split_channels(img)
        s = self.scale
        grid = TileGrid(img.shape[0], img.shape[1], tile or self.tile,
                        self.overlap if overlap is None else overlap)
        times = dict.fromkeys(("tvat", "tiling", "network", "bicubic"), 0.0)

        def rgb_tile(y, x):
            a = to_float(grid.cut(colour, y, x))
            return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a

        t = time.perf_counter()
        boxes = grid.boxes()
        scores = self.scores(colour, grid)
        classes = route(scores, self.bundle, routing)
        if router is not None:
            classes = np.asarray(router(scores, classes), np.int64).reshape(classes.shape)
        times["tvat"] = time.perf_counter() - t

        out_shape = (img.shape[0] * s, img.shape[1] * s) + img.shape[2:]
        out = np.empty(out_shape, img.dtype if img.dtype in (np.uint8, np.uint16) else np.float32)
        stitcher = Stitcher(out_shape[1], 3 + (alpha is not None), grid.tile_h * s)

        def sink(first, rows):
            out[first:first + len(rows)] = self._finish(rows, img, alpha is not None)

        def add_tile(i, up):
            y, x = boxes[i]
            if alpha is not None:
                a = bicubic_up(to_float(grid.cut(alpha, y, x)), s)
                up = np.concatenate([up, a[:, :, None]], axis=2)
            stitcher.add(y * s, x * s, up, tile_weight(grid, y, x, s))

        ys, nx, done = grid.ys, grid.shape[1], 0
        for r in range(len(ys)):
            row = np.arange(r * nx, (r + 1) * nx)
            for cid in np.unique(classes[row]):
                members = row[classes[row] == cid]
                for k in range(0, len(members), self.batch_size):
                    part = members[k:k + self.batch_size]
                    t = time.perf_counter()
                    batch = np.stack([rgb_tile(*boxes[i]) for i in part])
                    times["tiling"] += time.perf_counter() - t
                    ups = self._upscale_batch(batch, int(cid), times)
                    t = time.perf_counter()
                    for i, up in zip(part, ups):
                        add_tile(i, up)
                    times["tiling"] += time.perf_counter() - t
                    done += len(part)
                    if progress is not None:
                        progress(done, len(boxes))
            t = time.perf_counter()  # rows above the next tile row are final
            stitcher.drain(ys[r + 1] * s if r + 1 < len(ys) else out_shape[0], sink)
            times["tiling"] += time.perf_counter() - t
        times["total"] = time.perf_counter() - t_start
        return Reconstruction(out, grid, scores, classes, times)

    def _upscale_batch(self, batch: np.ndarray, class_id: int, times: dict) -> np.ndarray:
        """NHWC float tiles -> NHWC float, ``scale`` times larger."""
        t = time.perf_counter()
        if class_id == FLAT:
            ups = np.stack([bicubic_up(b, self.scale) for b in batch])
            times["bicubic"] += time.perf_counter() - t
            return ups
        y = self.runner(class_id).run(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
        times["network"] += time.perf_counter() - t
        return y.transpose(0, 2, 3, 1)

    @staticmethod
    def _finish(rows: np.ndarray, img: np.ndarray, has_alpha: bool) -> np.ndarray:
        """Blended float rows (RGB[A]) -> the input's channel layout and dtype."""
        rgb, alpha = rows[:, :, :3], rows[:, :, 3:] if has_alpha else None
        gray = img.ndim == 2 or img.shape[2] in (1, 2)
        colour = rgb.mean(axis=2, keepdims=True) if gray else rgb
        parts = colour if alpha is None else np.concatenate([colour, alpha], axis=2)
        if img.ndim == 2:
            parts = parts[:, :, 0]
        if img.dtype in (np.uint8, np.uint16):
            return to_uint(parts, img.dtype)
        return np.clip(parts, 0, 1)
