"""The shipped bundles load and beat bicubic on photos they were not trained on."""
import numpy as np
import pytest

from conftest import ROOT
from paddle_mmsr import MMSR
from paddle_mmsr.image.io import read_image
from paddle_mmsr.metrics.psnr_ssim import psnr
from paddle_mmsr.image.resize import imresize

SHIPPED = ["mmsr_x4_bicubic", "srgan_16-8_x4_bicubic", "compare_mmsr_x4", "compare_single_x4"]


def test_default_bundle_is_shipped():
    assert (ROOT / "pretrained" / "mmsr_x4_bicubic" / "manifest.yaml").exists()


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
