"""The ways real LR is made: downscalers, the robust random mix, benchmark input kinds."""
import cv2
import numpy as np
import pytest
from PIL import Image

from paddle_mmsr.image.degrade import (DOWNSCALERS, INPUT_KINDS, ROBUST_KERNELS, Degradation,
                                       DegradationMix, make_degradation)

CV = {"bicubic_noaa": cv2.INTER_CUBIC, "bilinear_noaa": cv2.INTER_LINEAR,
      "lanczos_noaa": cv2.INTER_LANCZOS4, "area": cv2.INTER_AREA}
PIL = {"pil_bicubic": Image.BICUBIC, "pil_bilinear": Image.BILINEAR, "pil_lanczos": Image.LANCZOS}


@pytest.fixture(scope="module")
def hr(photos):
    return np.ascontiguousarray(photos["astronaut"][100:196, 140:228])   # 96 x 88


@pytest.mark.parametrize("kernel", DOWNSCALERS)
def test_each_downscaler_size_dtype_and_repeatable(hr, kernel):
    d = Degradation(kernel=kernel)
    lr = d(hr, 4)
    assert lr.shape == (24, 22, 3) and lr.dtype == np.uint8
    assert np.array_equal(lr, d(hr, 4))
    assert lr.std() > 10   # a real picture, not a constant
    gray = d(np.ascontiguousarray(hr[:, :, 0]), 4)
    assert gray.shape == (24, 22)


@pytest.mark.parametrize("kernel", sorted({**CV, **PIL}))
def test_downscalers_are_the_libraries_own(hr, kernel):
    """Each kind is what OpenCV's or Pillow's resize gives on the 8-bit image (within
    rounding: the 8-bit paths round, and Pillow's clips, between their two passes)."""
    if kernel in CV:
        ref = cv2.resize(hr, (22, 24), interpolation=CV[kernel])
    else:
        ref = np.asarray(Image.fromarray(hr).resize((22, 24), PIL[kernel]))
    diff = np.abs(Degradation(kernel=kernel)(hr, 4).astype(int) - ref.astype(int))
    assert diff.max() <= 4 and diff.mean() < 0.3, kernel


def test_antialiasing_kinds_differ_from_plain_ones(hr):
    matlab = Degradation()(hr, 4).astype(float)
    for k in ("bicubic_noaa", "area", "lanczos_noaa"):
        assert np.abs(Degradation(kernel=k)(hr, 4) - matlab).mean() > 0.2, k
    # without antialiasing more of the HR detail (aliasing) survives
    assert Degradation(kernel="bicubic_noaa")(hr, 4).std() > matlab.std()


def test_mix_is_seeded_and_matches_its_documented_probabilities():
    mix = DegradationMix()
    a = [mix.sample(np.random.default_rng([5, i])) for i in range(4000)]
    b = [mix.sample(np.random.default_rng([5, i])) for i in range(4000)]
    assert a == b
    total = sum(ROBUST_KERNELS.values())
    for k, w in ROBUST_KERNELS.items():
        share = sum(d.kernel == k for d in a) / len(a)
        assert abs(share - w / total) < 0.03, (k, share)
    for field, p, (lo, hi) in (("blur", mix.blur_p, mix.blur), ("noise", mix.noise_p, mix.noise),
                               ("jpeg", mix.jpeg_p, mix.jpeg)):
        on = [getattr(d, field) for d in a if getattr(d, field)]
        assert abs(len(on) / len(a) - p) < 0.03, field
        assert lo <= min(on) and max(on) <= hi, field


def test_mix_makes_repeatable_lr_of_the_right_size(hr):
    mix = make_degradation({"mix": {"kernels": {"area": 1, "pil_lanczos": 1}, "jpeg_p": 1.0}})
    assert isinstance(mix, DegradationMix) and set(mix.kernels) == {"area", "pil_lanczos"}
    lr = mix(hr, 4, np.random.default_rng(3))
    assert lr.shape == (24, 22, 3) and lr.dtype == np.uint8
    assert np.array_equal(lr, mix(hr, 4, np.random.default_rng(3)))
    assert np.array_equal(mix.target(hr), hr)


@pytest.mark.parametrize("bad", [{"kernels": {"nearest": 1}}, {"kernels": {"area": -1}},
                                 {"blur_p": 1.5}, {"jpeg": [90, 50]}, {"noise": [1]}])
def test_mix_refuses_bad_settings(bad):
    with pytest.raises(ValueError):
        DegradationMix(**bad)


def test_config_takes_a_mix_or_a_fixed_degradation_not_both():
    from paddle_mmsr.config import ConfigError, parse_config
    base = {"data": {"sources": ["x"]}}
    cfg = parse_config({**base, "data": {"sources": ["x"], "degradation_mix": {"noise_p": 0.5}}})
    assert cfg.data.degradation_mix.noise_p == 0.5
    assert cfg.data.degradation_mix.kernels == ROBUST_KERNELS
    with pytest.raises(ConfigError, match="not both"):
        parse_config({"data": {"sources": ["x"], "degradation": {"kernel": "area"},
                               "degradation_mix": {}}})
    with pytest.raises(ConfigError, match="bicubic_noaa"):
        parse_config({"data": {"sources": ["x"], "degradation": {"kernel": "bicubic_noa"}}})


def test_dataset_draws_a_new_degradation_per_crop(photos, tmp_path):
    from paddle_mmsr.data.dataset import SRDataset
    from paddle_mmsr.image.io import write_image
    write_image(tmp_path / "a.png", photos["coffee"][:128, :128])
    ds = SRDataset(tmp_path, scale=4, crop=64, degradation={"mix": {}}, seed=1, length=40)
    lr0, hr0 = ds[0]
    assert lr0.shape == (3, 16, 16) and hr0.shape == (3, 64, 64)
    assert np.array_equal(lr0, ds[0][0])
    kernels = {ds.degradation.sample(np.random.default_rng([1, 0, i])).kernel for i in range(40)}
    assert len(kernels) >= 4


@pytest.mark.parametrize("kind", sorted(INPUT_KINDS))
def test_benchmark_input_kinds(photos, kind):
    from paddle_mmsr.metrics.evaluate import pair_from_hr
    hr, lr = pair_from_hr(photos["chelsea"][:130, :170], 4, "chelsea", kind)
    assert hr.shape == (128, 168, 3) and lr.shape == (32, 42, 3) and lr.dtype == np.uint8
    assert np.array_equal(lr, pair_from_hr(photos["chelsea"][:130, :170], 4, "chelsea", kind)[1])
    if kind != "bicubic":
        ref = pair_from_hr(photos["chelsea"][:130, :170], 4, "chelsea")[1]
        assert not np.array_equal(lr, ref)
