"""PSNR / SSIM / NIQE, the evaluation helper and tools/evaluate.py."""
import json
import math
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT

from paddle_mmsr.metrics.evaluate import bicubic_upscaler, evaluate_dir, find_pairs
from paddle_mmsr.image.io import read_image, write_image
from paddle_mmsr.metrics.psnr_ssim import psnr, rgb_to_y, ssim
from paddle_mmsr.metrics.niqe import niqe
from paddle_mmsr.image.resize import imresize

# ---------------------------------------------------------------- known values


def test_rgb_to_y_matlab_values():
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    # MATLAB rgb2ycbcr(uint8): 16, 235, round(16+65.481), round(16+128.553), round(16+24.966)
    assert rgb_to_y(px).tolist() == [[16, 235, 81, 145, 41]]
    # uint16 input: same Y on the 0..255 scale, rounded at 16-bit precision
    y16 = rgb_to_y(px.astype(np.uint16) * 257)
    assert np.allclose(y16, [[16, 235, 81.481, 144.553, 40.966]], atol=1 / 257)


def test_psnr_identical_and_hand_computed():
    a = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert psnr(a, a) == math.inf
    g = np.full((16, 16), 100, np.uint8)
    h = g + np.uint8(10)  # MSE 100 -> 10*log10(255^2/100)
    assert psnr(g, h, crop_border=0) == pytest.approx(10 * math.log10(65025 / 100), abs=1e-12)
    # gray on uint16 gives the same as on uint8
    assert psnr(g.astype(np.uint16) * 257, h.astype(np.uint16) * 257, crop_border=0) == \
        pytest.approx(psnr(g, h, crop_border=0), abs=1e-9)
    # border: only the differing frame is cropped away
    k = g.copy()
    k[:2] = 0
    assert psnr(g, k, crop_border=2) == math.inf


def test_ssim_properties():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    noisy = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    s1, s2 = ssim(a, noisy), ssim(noisy, a)
    assert s1 == pytest.approx(s2, abs=1e-12) and s1 < 0.99
    assert ssim(a, noisy, y_only=False) < 0.99


def test_ssim_matches_skimage(photos):
    from skimage.metrics import structural_similarity
    img = photos["astronaut"]
    up = imresize(imresize(img, 0.25), 4)
    ya, yb = rgb_to_y(img)[4:-4, 4:-4], rgb_to_y(up)[4:-4, 4:-4]
    ref = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255)
    assert ssim(img, up) == pytest.approx(ref, abs=1e-9)


def test_errors():
    a = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(a, a[:, :19])
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(a, a[..., 0])
    with pytest.raises(TypeError, match="uint8 or uint16"):
        psnr(a.astype(np.float32), a.astype(np.float32))
    with pytest.raises(ValueError, match="crop_border"):
        psnr(a, a, crop_border=10)
    with pytest.raises(ValueError, match="at least 96x96"):
        niqe(np.zeros((64, 64, 3), np.uint8))


# ----------------------------------------------- regression values on a photo
# Obtained once with this code (numpy 2.4, scikit-image 0.26) from
# skimage.data.astronaut(): lr = imresize(img, 0.25); up = imresize(lr, 4).
ASTRO_LR_PIXELS = {(0, 0): [153, 149, 157], (64, 64): [23, 19, 12],
                   (127, 127): [8, 8, 7], (30, 100): [161, 158, 157]}
ASTRO_LR_SUM = 5633895
ASTRO_PSNR_Y = 26.84067624143738
ASTRO_SSIM_Y = 0.8419408747324021
ASTRO_PSNR_RGB = 25.343156919134397
ASTRO_NIQE = (3.1004515, 7.2341219)  # original, x4 down/up


@pytest.fixture(scope="module")
def astro(photos):
    img = photos["astronaut"]
    lr = imresize(img, 0.25)
    return img, lr, imresize(lr, 4)


def test_astronaut_resize_regression(astro):
    img, lr, up = astro
    assert lr.shape == (128, 128, 3) and lr.dtype == np.uint8
    for (y, x), v in ASTRO_LR_PIXELS.items():
        assert lr[y, x].tolist() == v
    assert abs(int(lr.astype(np.int64).sum()) - ASTRO_LR_SUM) <= 20
    assert psnr(up, img) == pytest.approx(ASTRO_PSNR_Y, abs=1e-3)
    assert ssim(up, img) == pytest.approx(ASTRO_SSIM_Y, abs=1e-4)
    assert psnr(up, img, y_only=False) == pytest.approx(ASTRO_PSNR_RGB, abs=1e-3)


def test_niqe_astronaut(astro):
    img, _, up = astro
    t = time.perf_counter()
    q_orig = niqe(img)
    elapsed = time.perf_counter() - t
    q_deg = niqe(up)
    assert q_orig < 4 and q_deg > 6
    assert q_orig == pytest.approx(ASTRO_NIQE[0], abs=0.01)
    assert q_deg == pytest.approx(ASTRO_NIQE[1], abs=0.01)
    assert elapsed < 5
    # gray input works and is close to the Y result
    assert niqe(np.round(rgb_to_y(img)).astype(np.uint8)) == pytest.approx(q_orig, abs=1e-9)


# ------------------------------------------------------- evaluation on folders


def _make_set(tmp_path, photos, layout):
    d = tmp_path / layout
    names = ["astronaut", "coffee"]
    for n in names:
        hr = photos[n][:200, :204]  # not a multiple of 8 in height/width mix
        write_image(d / "HR" / f"{n}.png", hr)
        if layout != "no_lr":
            h, w = hr.shape[0] // 4 * 4, hr.shape[1] // 4 * 4
            lr = imresize(hr[:h, :w], 0.25)
            lr_name = f"{n}x4.png" if layout == "set5" else f"{n}.png"
            write_image(d / "LR_bicubic_X4" / lr_name, lr)
    return d


@pytest.mark.parametrize("layout", ["set5", "same_name", "no_lr"])
def test_evaluate_dir_layouts(tmp_path, photos, layout):
    d = _make_set(tmp_path, photos, layout)
    res = evaluate_dir(d, bicubic_upscaler(4), scale=4, progress=False)
    assert [r["name"] for r in res["images"]] == ["astronaut", "coffee"]
    assert res["lr"] == ("made from HR" if layout == "no_lr" else "files")
    assert all(r["size"] == "204x200" for r in res["images"])
    assert 20 < res["mean"]["psnr"] < 40 and 0.3 < res["mean"]["ssim"] < 1


def test_evaluate_layouts_agree_and_errors(tmp_path, photos):
    a = evaluate_dir(_make_set(tmp_path, photos, "set5"), bicubic_upscaler(4), progress=False)
    b = evaluate_dir(_make_set(tmp_path, photos, "no_lr"), bicubic_upscaler(4), progress=False)
    assert a["mean"]["psnr"] == pytest.approx(b["mean"]["psnr"], abs=1e-9)
    d = _make_set(tmp_path, photos, "same_name")
    (d / "LR_bicubic_X4" / "coffee.png").unlink()
    with pytest.raises(FileNotFoundError, match="no LR image for coffee.png"):
        find_pairs(d, 4)
    with pytest.raises(FileNotFoundError, match="no HR/ folder"):
        find_pairs(tmp_path / "nowhere", 4)
    with pytest.raises(ValueError, match="upscaler returned shape"):
        evaluate_dir(a["data_dir"], lambda lr: lr, progress=False)


def test_training_validation_scores_like_the_folder_evaluation(tmp_path, photos):
    """One evaluation: train/validate.py gives evaluate_dir's numbers and refuses
    an output of the wrong size the same way."""
    pytest.importorskip("paddle")
    from paddle_mmsr.train.validate import load_pairs, val_pairs, validate
    d = _make_set(tmp_path, photos, "same_name")
    ref = evaluate_dir(d, bicubic_upscaler(4), progress=False)
    res = validate(bicubic_upscaler(4), load_pairs(val_pairs(d, 4), 4), 4, 4)
    assert res["psnr"] == ref["mean"]["psnr"] and res["ssim"] == ref["mean"]["ssim"]
    assert res["per_image"]["coffee"][0] == ref["images"][1]["psnr"]
    from paddle_mmsr.image.panels import LABEL_HEIGHT
    assert res["sample"].dtype == np.uint8 and res["sample"].shape[0] == 192 + LABEL_HEIGHT
    assert res["sample"].shape[1] == 4 * 192 + 3 * 4  # LR | bicubic | SR | HR
    with pytest.raises(ValueError, match="coffee: the upscaler returned shape"):
        validate(lambda lr: imresize(lr, 4)[:-4], load_pairs(val_pairs(d, 4), 4)[1:], 4, 4)


def test_evaluate_tool(tmp_path, photos):
    d = _make_set(tmp_path, photos, "set5")
    out = tmp_path / "res.json"
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "evaluate.py"), "--method", "bicubic",
                        str(d), "--niqe", "--json", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "astronaut" in p.stdout and "mean" in p.stdout and "NIQE" in p.stdout
    res = json.loads(out.read_text())
    assert res[0]["name"] == "set5" and set(res[0]["mean"]) == {"psnr", "ssim", "niqe"}
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "evaluate.py"), str(tmp_path / "nope")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "no HR/ folder" in p.stderr


# ---------------------------------------- real benchmark data (developers only)


def test_set5_lr_matches_our_imresize(shared_data):
    d = shared_data / "val" / "Set5"
    for name, hp, lp in find_pairs(d, 4):
        hr, lr = read_image(hp), read_image(lp)
        h, w = lr.shape[0] * 4, lr.shape[1] * 4
        ours = imresize(hr[:h, :w], 0.25)
        diff = np.abs(ours.astype(int) - lr.astype(int)).max()
        assert diff <= 2, f"{name}: max abs diff {diff}"


@pytest.mark.parametrize("name, psnr_ref, ssim_ref", [("Set5", 28.42, 0.8104), ("Set14", 26.09, 0.7043)])
def test_bicubic_benchmark(shared_data, name, psnr_ref, ssim_ref):
    res = evaluate_dir(shared_data / "val" / name, bicubic_upscaler(4), scale=4, progress=False)
    assert res["mean"]["psnr"] == pytest.approx(psnr_ref, abs=0.05)
    assert res["mean"]["ssim"] == pytest.approx(ssim_ref, abs=0.002)
