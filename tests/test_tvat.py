import time

import numpy as np
import pytest

from paddle_mmsr.image.resize import imresize
from paddle_mmsr.core.tvat import TVATSettings, calibrate, classify, tvat, vsp


def vsp_loop(img):
    """Direct transcription of eq. 1 with explicit loops (reference)."""
    a = img.astype(np.float64)
    h, w = a.shape[:2]
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if dy or dx:
                        y, x = min(max(i + dy, 0), h - 1), min(max(j + dx, 0), w - 1)
                        out[i, j] += ((a[i, j] - a[y, x]) ** 2).sum()
    return out


def test_vsp_matches_loop_reference(photos):
    img = photos["astronaut"][100:112, 200:215]
    np.testing.assert_allclose(vsp(img), vsp_loop(img), rtol=1e-5)


def test_tvat_formula_and_threshold():
    img = np.zeros((4, 4, 3), np.uint8)
    img[1, 1, 0] = 10  # one bright pixel: VSP 800 at centre, 100 at 8 neighbours
    v = vsp(img)
    assert v[1, 1] == 800 and v[0, 0] == 100 and v[3, 3] == 0
    assert tvat(img, tau=5, norm=1) == pytest.approx((800 + 8 * 100) / 16)
    assert tvat(img, tau=100, norm=1) == pytest.approx(800 / 16)  # strictly greater than tau


def test_gray_rgb_16bit_float_agree(photos):
    g = photos["camera"][:64, :64]
    rgb = np.repeat(g[:, :, None], 3, axis=2)
    assert tvat(rgb) == pytest.approx(tvat(g), rel=1e-5)
    g16 = g.astype(np.uint16) * 257
    assert tvat(g16) == pytest.approx(tvat(g), rel=1e-4)
    assert tvat(g / 255.0) == pytest.approx(tvat(g), rel=1e-4)
    rgba = np.dstack([rgb, np.full(g.shape, 7, np.uint8)])
    assert tvat(rgba) == pytest.approx(tvat(rgb))


def test_scale_matches_paper_range_on_photos(photos):
    # LR (x4) of real photos should score in the paper's 0.05-6 range,
    # and a flat patch far below a textured one
    scores = [tvat(imresize(photos[n], 1 / 4)) for n in ("astronaut", "coffee", "chelsea", "rocket")]
    assert all(0.05 < s < 8 for s in scores), scores
    flat = np.full((64, 64, 3), 120, np.uint8)
    assert tvat(flat) == 0


def test_textured_scores_higher(photos):
    img = photos["astronaut"]
    smooth = tvat(img[20:84, 20:84])  # dark background
    busy = tvat(img[350:414, 150:214])  # patterned suit / flag
    assert busy > 5 * max(smooth, 1e-6)


def test_classify_and_calibrate():
    assert list(classify([0.0, 1.99, 2.0, 3.9, 4.0, 10], [2, 4])) == [0, 0, 1, 1, 2, 2]
    s = np.random.default_rng(0).exponential(1.0, 3000)
    b = calibrate(s, 3)
    counts = np.bincount(classify(s, b), minlength=3)
    assert counts.min() > 900
    with pytest.raises(ValueError):
        TVATSettings(bounds=[4, 2])
    with pytest.raises(ValueError):
        calibrate([1.0], 3)


def test_speed_2000px_is_vectorised():
    img = np.random.default_rng(0).integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    t = time.perf_counter()
    tvat(img)
    # generous: the loop version would take minutes; recorded speed is ~0.6 s
    assert time.perf_counter() - t < 10
