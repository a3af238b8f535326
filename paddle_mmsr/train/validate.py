"""Validation of one generator on a folder of HR/LR pairs (PSNR/SSIM on Y)."""
from __future__ import annotations

import numpy as np
import paddle

from paddle_mmsr.image.io import to_float, to_uint
from paddle_mmsr.image.resize import imresize
from paddle_mmsr.image.panels import nearest_up, side_by_side


def val_pairs(root, scale: int, max_images: int = 0) -> list:
    """[(name, hr_path, lr_path or None)] of a folder with HR/ (and LR_bicubic_X<scale>/),
    paired as ``paddle_mmsr.metrics.evaluate`` pairs them."""
    from paddle_mmsr.metrics.evaluate import find_pairs
    pairs = find_pairs(root, scale)
    return pairs[:max_images] if max_images else pairs


def load_pairs(pairs, scale: int) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Preloaded (lr, hr, name), uint8 RGB, HR cropped to LR size x scale."""
    from paddle_mmsr.metrics.evaluate import load_pair
    out = []
    for name, hr_path, lr_path in pairs:
        hr, lr = load_pair(hr_path, lr_path, scale)
        out.append((lr, hr, name))
    return out


@paddle.no_grad()
def upscale(g, lr: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 LR -> uint8 SR through generator ``g`` (eval mode)."""
    x = paddle.to_tensor(to_float(lr).transpose(2, 0, 1)[None])
    y = g(x)[0].clip(0, 1).numpy().transpose(1, 2, 0)
    return to_uint(y)


def picture(lr: np.ndarray, sr: np.ndarray, hr: np.ndarray, scale: int,
            size: int = 192) -> np.ndarray:
    """Labelled LR (pixels) | bicubic | SR | HR strip of the centre of one image,
    at most ``size`` HR px square, on the LR pixel grid."""
    n = max(1, min(size, sr.shape[0], sr.shape[1], hr.shape[0], hr.shape[1]) // scale)
    y, x = (lr.shape[0] - n) // 2, (lr.shape[1] - n) // 2
    lr_c = lr[y:y + n, x:x + n]
    hr_win = (slice(y * scale, (y + n) * scale), slice(x * scale, (x + n) * scale))
    bic = imresize(lr_c, output_shape=(n * scale, n * scale))
    return side_by_side(nearest_up(lr_c, scale), bic, sr[hr_win], hr[hr_win],
                        labels=("LR", "bicubic", "SR", "HR"))


def validate(upscale_fn, images, scale: int, crop_border: int, sample_size: int = 192) -> dict:
    """Mean PSNR/SSIM (Y) of ``upscale_fn`` over preloaded (lr, hr, name) triples,
    scored by ``paddle_mmsr.metrics.evaluate`` (the project's one evaluation).

    Returns {"psnr", "ssim", "per_image": {name: (psnr, ssim)}, "sample": the
    ``picture`` of the first image, ``sample_size`` HR px square}.
    """
    from paddle_mmsr.metrics.evaluate import evaluate_images
    outputs = []

    def keep_first(lr):
        sr = upscale_fn(lr)
        if not outputs:
            outputs.append(sr)
        return sr

    res = evaluate_images(images, keep_first, scale, crop_border=crop_border)
    sample = None
    if outputs:
        lr, hr, _ = images[0]
        sample = picture(lr, outputs[0], hr, scale, sample_size)
    return {"psnr": res["mean"]["psnr"], "ssim": res["mean"]["ssim"],
            "per_image": {r["name"]: (float(r["psnr"]), float(r["ssim"])) for r in res["images"]},
            "sample": sample}


def validate_generator(g, images, scale: int, crop_border: int) -> dict:
    was_training = g.training
    g.eval()
    try:
        return validate(lambda lr: upscale(g, lr), images, scale, crop_border)
    finally:
        if was_training:
            g.train()
