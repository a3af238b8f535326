import numpy as np
import pytest

from paddle_mmsr.image.degrade import Degradation
from paddle_mmsr.image.resize import bicubic_up, cubic, imresize


def test_shapes_and_dtypes(photos):
    a = photos["astronaut"][:100, :60]
    assert imresize(a, 1 / 4).shape == (25, 15, 3)
    assert imresize(a, 1 / 4).dtype == np.uint8
    assert imresize(a.astype(np.float32) / 255, 2).dtype == np.float64
    assert imresize(a, output_shape=(50, 30)).shape == (50, 30, 3)
    assert imresize(photos["camera"][:40, :40], 1 / 2).shape == (20, 20)
    with pytest.raises(ValueError):
        imresize(a)


def test_one_cubic_kernel_two_parameters():
    # Keys' kernel: 1 at 0, 0 at the other integers; a = -0.5 (MATLAB), -0.75 (Paddle, OpenCV)
    assert cubic([0, 1, 2, 3]).tolist() == [1, 0, 0, 0]
    assert cubic(0.5) == 0.5625 and cubic(1.5) == -0.0625
    assert cubic(0.5, a=-0.75) == 0.59375 and cubic(-1.5, a=-0.75) == -0.09375


def test_bicubic_up_equals_imresize(photos):
    a = photos["coffee"][:37, :51] / 255.0
    np.testing.assert_allclose(bicubic_up(a, 4), imresize(a, 4), atol=1e-5)


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


def test_old_film_degradations(photos):
    hr = photos["coffee"][:96, :96]
    base = Degradation()(hr, 4)
    gray = Degradation(gray=True)(hr, 4)
    assert (gray[:, :, 0] == gray[:, :, 1]).all() and (gray[:, :, 1] == gray[:, :, 2]).all()
    target = Degradation(gray=True).target(hr)  # what a gray-trained model learns to give back
    assert target.shape == hr.shape and (target[:, :, 0] == target[:, :, 2]).all()
    assert Degradation().target(hr) is hr
    # luma of the bicubic LR, within rounding
    luma = base.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(gray[:, :, 0] - luma).max() <= 2.5
    grain = Degradation(grain=8)(hr, 4, np.random.default_rng(1)).astype(int) - base
    assert 5 < grain.std() < 11                       # about the asked sigma (clipping aside)
    assert (np.abs(grain[:, :, 0] - grain[:, :, 1]) <= 1).mean() > 0.97  # one grain, all channels
    # grain is smoothed: neighbours correlate, white noise does not
    white = Degradation(noise=8)(hr, 4, np.random.default_rng(1)).astype(int) - base
    corr = lambda a: np.corrcoef(a[:, :-1, 0].ravel(), a[:, 1:, 0].ravel())[0, 1]
    assert corr(grain) > 0.3 and abs(corr(white)) < 0.2
    for codec, q in (("h264", 40), ("mpeg2", 20)):
        out = Degradation(video=codec, video_q=q)(hr, 4)
        assert out.shape == base.shape and out.dtype == np.uint8
        err = np.abs(out.astype(int) - base).mean()
        assert 1 < err < 20, (codec, err)
    assert Degradation(video="h264", video_q=10)(hr, 4).astype(int).__sub__(base).__abs__().mean() \
        < Degradation(video="h264", video_q=45)(hr, 4).astype(int).__sub__(base).__abs__().mean()
    # all at once, in any combination, and a same-seed rerun is identical
    full = Degradation(gray=True, blur=1.0, grain=5, video="h264", video_q=32, jpeg=50)
    a, b = full(hr, 4, np.random.default_rng(3)), full(hr, 4, np.random.default_rng(3))
    assert np.array_equal(a, b) and (a[:, :, 0] == a[:, :, 2]).all()
    assert Degradation(video="h264")(photos["coffee"][:100, :84], 4).shape == (25, 21, 3)  # odd LR
    for bad in (dict(video="vp9"), dict(video="h264", video_q=60), dict(video="mpeg2", video_q=0),
                dict(grain=-1)):
        with pytest.raises(ValueError):
            Degradation(**bad)


def test_opencv_blur_and_jpeg_match_the_scipy_and_pillow_results(photos):
    """The switch to OpenCV kept the results (speed: docs/old_film.md)."""
    import io
    from PIL import Image
    from scipy.ndimage import gaussian_filter
    from paddle_mmsr.image.degrade import _gaussian, jpeg_roundtrip
    a = photos["astronaut"][:64, :80].astype(np.float64)
    assert np.abs(_gaussian(a, 1.3) - gaussian_filter(a, (1.3, 1.3, 0), mode="reflect")).max() < 1e-6
    lr = photos["astronaut"][:24, :24]
    buf = io.BytesIO()
    Image.fromarray(lr).save(buf, format="JPEG", quality=30)
    pil = np.array(Image.open(io.BytesIO(buf.getvalue())))
    assert np.abs(jpeg_roundtrip(lr, 30).astype(int) - pil).max() <= 1


def test_dataset_pairs_gray_lr_with_gray_hr(tmp_path, photos):
    from paddle_mmsr.data.dataset import SRDataset
    from paddle_mmsr.image.io import write_image
    write_image(tmp_path / "a.png", photos["astronaut"][:128, :128])
    lr, hr = SRDataset([tmp_path], crop=64, degradation={"gray": True, "grain": 3}, seed=0)[0]
    assert lr.shape == (3, 16, 16) and hr.shape == (3, 64, 64)
    assert np.array_equal(hr[0], hr[1]) and np.array_equal(lr[0], lr[2])
    _, hr_colour = SRDataset([tmp_path], crop=64, seed=0)[0]
    assert not np.array_equal(hr_colour[0], hr_colour[1])
