import numpy as np
import pytest

from paddle_mmsr.image.degrade import Degradation
from paddle_mmsr.image.resize import imresize


def test_shapes_and_dtypes(photos):
    a = photos["astronaut"][:100, :60]
    assert imresize(a, 1 / 4).shape == (25, 15, 3)
    assert imresize(a, 1 / 4).dtype == np.uint8
    assert imresize(a.astype(np.float32) / 255, 2).dtype == np.float64
    assert imresize(a, output_shape=(50, 30)).shape == (50, 30, 3)
    assert imresize(photos["camera"][:40, :40], 1 / 2).shape == (20, 20)
    with pytest.raises(ValueError):
        imresize(a)


def test_constant_image_is_preserved():
    c = np.full((37, 41, 3), 77, np.uint8)
    assert (imresize(c, 1 / 4) == 77).all() and (imresize(c, 3) == 77).all()


def test_down_up_close_to_original(photos):
    a = photos["astronaut"][:256, :256].astype(np.float64)
    up = imresize(imresize(a, 1 / 2), 2)
    assert np.abs(up - a).mean() < 6


def test_reproduces_matlab_lr_set5(shared_data):
    from paddle_mmsr.image.io import read_image
    for hr_path in sorted((shared_data / "val/Set5/HR").glob("*.png")):
        hr = read_image(hr_path)
        lr = read_image(shared_data / "val/Set5/LR_bicubic_X4" / f"{hr_path.stem}x4.png")
        h, w = lr.shape[:2]
        mine = imresize(hr[:4 * h, :4 * w], 1 / 4)
        assert np.abs(mine.astype(int) - lr.astype(int)).max() <= 2, hr_path.name


def test_degradations_differ_and_are_valid(photos):
    hr = photos["coffee"][:96, :96]
    base = Degradation()(hr, 4)
    assert base.shape == (24, 24, 3) and base.dtype == np.uint8
    for d in (Degradation(kernel="bilinear"), Degradation(blur=1.2), Degradation(noise=8),
              Degradation(jpeg=20)):
        out = d(hr, 4, np.random.default_rng(0))
        assert out.shape == base.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - base).mean() > 0.3, d
    with pytest.raises(ValueError):
        Degradation(kernel="lanczos")
    with pytest.raises(ValueError):
        Degradation()(hr[:95], 4)
