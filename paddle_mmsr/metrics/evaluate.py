"""Evaluate an upscaler: PSNR-Y / SSIM-Y (and NIQE), the one evaluation of the project.

Training validation, ``mmsr-evaluate`` (tools/evaluate.py), the notebooks and
benchmarks/benchmark.py all score through :func:`score` / :func:`evaluate_images`,
with one rule for sizes: HR is cropped at the bottom/right to LR size x scale
when a pair is loaded, and an SR output of any other size is an error.

A data folder holds ``HR/`` and optionally ``LR_bicubic_X{scale}/``. LR files
are matched to HR by name: ``<name>x4.png`` (Set5 style) or ``<name>.png``
(same name, any image extension). Without an LR folder, LR is made from HR
(cropped to a multiple of the scale) with the MATLAB-compatible bicubic
``imresize``.
"""
from __future__ import annotations

import math
import warnings
import zlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from paddle_mmsr.image.io import list_images, read_image, to_rgb8
from paddle_mmsr.metrics.psnr_ssim import psnr, ssim
from paddle_mmsr.image.resize import imresize

__all__ = ["score", "evaluate_images", "evaluate_dir", "find_pairs", "load_pair", "format_result",
           "bicubic_upscaler"]


def find_pairs(data_dir, scale: int = 4) -> list[tuple[str, Path, Path | None]]:
    """[(name, hr_path, lr_path or None)] sorted by name."""
    data_dir = Path(data_dir)
    hr_dir = data_dir / "HR"
    if not hr_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: no HR/ folder")
    hrs = list_images(hr_dir)
    if not hrs:
        raise FileNotFoundError(f"{hr_dir}: no images")
    lr_dir = data_dir / f"LR_bicubic_X{scale}"
    if not lr_dir.is_dir():
        return [(p.stem, p, None) for p in hrs]
    lrs = {p.stem: p for p in list_images(lr_dir)}
    pairs = []
    for p in hrs:
        lr = lrs.get(f"{p.stem}x{scale}") or lrs.get(p.stem)
        if lr is None:
            raise FileNotFoundError(f"{lr_dir}: no LR image for {p.name} "
                                    f"(looked for {p.stem}x{scale}.* and {p.stem}.*)")
        pairs.append((p.stem, p, lr))
    return pairs


def pair_from_hr(hr: np.ndarray, scale: int = 4, name: str = "image", kind: str = "bicubic") -> tuple:
    """(HR cropped to a multiple of ``scale``, its LR), uint8 RGB. The LR is made the
    ``kind`` way (``image.degrade.INPUT_KINDS``; default MATLAB-style bicubic), any
    noise seeded by ``name``."""
    from paddle_mmsr.image.degrade import INPUT_KINDS
    if kind not in INPUT_KINDS:
        raise ValueError(f"unknown input kind {kind!r}; use one of {sorted(INPUT_KINDS)}")
    h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
    if h == 0 or w == 0:
        raise ValueError(f"{name}: smaller than the scale {scale}")
    hr = np.ascontiguousarray(hr[:h, :w])
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return hr, INPUT_KINDS[kind](hr, scale, rng)


def load_pair(hr_path, lr_path, scale: int = 4, kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(HR, LR) as uint8 RGB, HR cropped to exactly LR size x scale. With ``kind``
    (or no LR file) the LR is made from HR (see :func:`pair_from_hr`)."""
    hr = to_rgb8(read_image(hr_path))
    if lr_path is None or kind is not None:
        return pair_from_hr(hr, scale, Path(hr_path).name, kind or "bicubic")
    lr = to_rgb8(read_image(lr_path))
    h, w = lr.shape[0] * scale, lr.shape[1] * scale
    if hr.shape[0] < h or hr.shape[1] < w:
        raise ValueError(f"{hr_path} is {hr.shape[1]}x{hr.shape[0]}, smaller than "
                         f"LR {lr_path} x{scale} ({w}x{h})")
    return np.ascontiguousarray(hr[:h, :w]), lr


def bicubic_upscaler(scale: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda lr: imresize(lr, scale)


def score(sr: np.ndarray, hr: np.ndarray, crop_border: int, niqe: bool = False,
          name: str = "image") -> dict:
    """PSNR-Y and SSIM-Y of one output against its HR (and NIQE of the output:
    NaN when the image is smaller than one NIQE block). Sizes must match."""
    sr = np.asarray(sr)
    if sr.shape != hr.shape:
        raise ValueError(f"{name}: the upscaler returned shape {sr.shape}, expected {hr.shape} "
                         "(HR cropped to LR size x scale)")
    row = {"name": name, "size": f"{hr.shape[1]}x{hr.shape[0]}",
           "psnr": psnr(sr, hr, crop_border=crop_border), "ssim": ssim(sr, hr, crop_border=crop_border)}
    if niqe:
        from paddle_mmsr.metrics.niqe import niqe as niqe_fn
        try:
            row["niqe"] = niqe_fn(sr, crop_border=crop_border)
        except ValueError:  # image smaller than one NIQE block
            row["niqe"] = math.nan
    return row


def evaluate_images(images: Iterable, upscale_fn: Callable[[np.ndarray], np.ndarray], scale: int = 4,
                    crop_border: int | None = None, niqe: bool = False) -> dict:
    """Score ``upscale_fn`` (uint8 RGB LR -> uint8 RGB SR) on (lr, hr, name) triples.

    ``crop_border`` defaults to ``scale``. Returns ``{"images": [row per image],
    "mean": {metric: mean}}`` (NaN NIQE values are left out of the mean).
    """
    border = scale if crop_border is None else crop_border
    rows = [score(upscale_fn(lr), hr, border, niqe, name) for lr, hr, name in images]
    if not rows:
        raise ValueError("no images to evaluate")
    keys = ["psnr", "ssim"] + (["niqe"] if niqe else [])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN NIQE column
        mean = {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
    return {"images": rows, "mean": mean}


def evaluate_dir(data_dir, upscale_fn: Callable[[np.ndarray], np.ndarray], scale: int = 4,
                 niqe: bool = False, progress: bool = True, kind: str | None = None) -> dict:
    """:func:`evaluate_images` on every pair of a folder (see :func:`find_pairs`),
    plus where the data came from; see :func:`format_result`. ``kind``: make every
    LR from its HR that way (``image.degrade.INPUT_KINDS``) instead of reading it."""
    from tqdm import tqdm

    data_dir = Path(data_dir)
    pairs = find_pairs(data_dir, scale)
    bar = tqdm(pairs, desc=data_dir.name, unit="img", disable=not progress, leave=False)
    images = ((*load_pair(hp, lp, scale, kind)[::-1], name) for name, hp, lp in bar)
    res = evaluate_images(images, upscale_fn, scale, niqe=niqe)
    made = "made from HR" + (f" ({kind})" if kind else "")
    return {"data_dir": str(data_dir), "name": data_dir.name, "scale": scale,
            "lr": "files" if pairs[0][2] is not None and kind is None else made, **res}


def format_result(res: dict) -> str:
    """Per-image table and a mean line, as plain text."""
    has_niqe = "niqe" in res["mean"]
    head = f"{'image':<16} {'size':>9} {'PSNR-Y':>8} {'SSIM-Y':>7}" + (f" {'NIQE':>7}" if has_niqe else "")
    lines = [f"{res['name']} (x{res['scale']}, LR: {res['lr']})", head]

    def cells(r):
        s = f"{r['psnr']:8.2f} {r['ssim']:7.4f}"
        return s + (f" {r['niqe']:7.4f}" if has_niqe else "")

    for r in res["images"]:
        lines.append(f"{r['name']:<16} {r['size']:>9} " + cells(r))
    lines.append(f"{'mean':<16} {len(res['images']):>5} img " + cells(res["mean"]))
    return "\n".join(lines)
