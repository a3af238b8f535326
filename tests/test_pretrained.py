"""The shipped bundles load and beat bicubic on photos they were not trained on."""
import numpy as np
import pytest

from conftest import ROOT
from paddle_mmsr import MMSR
from paddle_mmsr.image.io import read_image
from paddle_mmsr.metrics.psnr_ssim import psnr
from paddle_mmsr.image.resize import imresize

SHIPPED = ["mmsr_x4_robust", "srgan_16-8_x4_robust", "mmsr_x4_bicubic", "srgan_16-8_x4_bicubic",
           "compare_mmsr_x4", "compare_single_x4"]


def test_default_bundle_is_shipped():
    from paddle_mmsr.core.shipped import DEFAULT_BUNDLE, shipped_bundle
    assert DEFAULT_BUNDLE == "mmsr_x4_robust"
    assert shipped_bundle() == ROOT / "pretrained" / "mmsr_x4_robust"


def test_default_holds_up_on_lr_shrunk_without_antialiasing(tmp_path):
    """LR made by OpenCV's cubic resize (no antialiasing): the robust default stays above
    bicubic, the MATLAB-bicubic bundle sharpens the aliasing and falls below it."""
    import cv2
    robust = MMSR.load(ROOT / "pretrained" / "mmsr_x4_robust", cache_dir=tmp_path)
    matlab = MMSR.load(ROOT / "pretrained" / "mmsr_x4_bicubic", cache_dir=tmp_path)
    hr = read_image(ROOT / "examples" / "coffee.png")[:256, :384]
    lr = cv2.resize(hr, (96, 64), interpolation=cv2.INTER_CUBIC)
    base = psnr(imresize(lr, 4), hr, crop_border=4)
    assert psnr(robust.upscale(lr), hr, crop_border=4) > base + 0.1
    assert psnr(matlab.upscale(lr), hr, crop_border=4) < base


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_bundle_beats_bicubic(name, tmp_path):
    bundle = ROOT / "pretrained" / name
    if not bundle.exists():
        pytest.fail(f"{bundle} is missing")
    sr = MMSR.load(bundle, cache_dir=tmp_path)
    for photo, (y, x) in [("coffee.png", (60, 200)), ("astronaut.png", (40, 160))]:
        hr = read_image(ROOT / "examples" / photo)[y:y + 160, x:x + 160]
        lr = imresize(hr, 1 / 4)
        gain = psnr(sr.upscale(lr), hr, crop_border=4) - psnr(imresize(lr, 4), hr, crop_border=4)
        assert gain > 0.4, f"{name} on {photo}: only {gain:.2f} dB above bicubic"


def test_gan_bundle_is_sharper_and_still_beats_bicubic(tmp_path):
    """The adversarial bundle: lower NIQE than the PSNR bundle, PSNR still above bicubic."""
    from paddle_mmsr.metrics.niqe import niqe
    gan = MMSR.load(ROOT / "pretrained" / "mmsr_x4_gan", cache_dir=tmp_path / "gan")
    ref = MMSR.load(ROOT / "pretrained" / "mmsr_x4_bicubic", cache_dir=tmp_path / "psnr")
    for photo in ("astronaut.png", "coffee.png"):
        hr = read_image(ROOT / "examples" / photo)
        lr = imresize(hr, 1 / 4)
        out_gan, out_ref = gan.upscale(lr), ref.upscale(lr)
        q_gan, q_ref = niqe(out_gan, crop_border=4), niqe(out_ref, crop_border=4)
        assert q_gan < q_ref - 0.3, f"{photo}: NIQE {q_gan:.2f} (GAN) vs {q_ref:.2f} (PSNR)"
        gain = psnr(out_gan, hr, crop_border=4) - psnr(imresize(lr, 4), hr, crop_border=4)
        assert gain > 0.4, f"{photo}: GAN bundle only {gain:.2f} dB above bicubic"
