"""tools/upscale.py end to end: every input kind, bad files, overwrite rules."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")
skdata = pytest.importorskip("skimage.data")
from PIL import Image  # noqa: E402

from paddle_mmsr.models.weights import make_bundle  # noqa: E402
from paddle_mmsr.image.io import read_image, write_image  # noqa: E402
from paddle_mmsr.models import build_generator  # noqa: E402
from paddle_mmsr.core.tvat import TVATSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(channels=8, form="fast", head_kernel=3, tail_kernel=3)


def run_cli(*args):
    env = {**os.environ, "GLOG_minloglevel": "2"}
    return subprocess.run([sys.executable, str(ROOT / "tools" / "upscale.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    paddle.seed(0)
    gens = [(s, TINY, build_generator(s, 4, **TINY)) for s in ("1-1", "2-2")]
    make_bundle(root, gens, TVATSettings(bounds=[0.5]), flat_bound=0.1)
    return root


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder with every input kind and every kind of bad file, plus a glob set."""
    d = tmp_path_factory.mktemp("in")
    rgb = skdata.astronaut()[100:148, 180:236]            # 48 x 56
    gray = skdata.camera()[100:140, 200:244]               # 40 x 44
    write_image(d / "rgb.png", rgb)
    write_image(d / "gray.png", gray)
    write_image(d / "rgba.png", np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)]))
    write_image(d / "rgb16.png", rgb.astype(np.uint16) * 257)
    write_image(d / "gray16.png", gray.astype(np.uint16) * 257)
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(d / "palette.png")
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise when shown
    Image.fromarray(rgb).save(d / "rotated.jpg", exif=exif)
    write_image(d / "small.png", rgb[:12, :20])          # smaller than a tile
    data = (d / "rgb.png").read_bytes()
    (d / "corrupt.png").write_bytes(data[:len(data) // 2])
    (d / "notimage.png").write_text("this is not an image\n")
    (d / "empty.png").write_bytes(b"")
    g = tmp_path_factory.mktemp("glob")
    write_image(g / "coffee.jpg", skdata.coffee()[100:140, 200:240])
    write_image(g / "chelsea.jpg", skdata.chelsea()[50:90, 50:90])
    return d, g


@pytest.fixture(scope="module")
def first_run(bundle, inputs, tmp_path_factory):
    d, g = inputs
    out = tmp_path_factory.mktemp("out")
    maps = out / "maps"
    (out / "gray.png").write_bytes(b"an earlier output")  # kept: no --overwrite
    res = run_cli(d, f"{g}/*.jpg", d / "missing.png", "-o", out, "--bundle", bundle,
                  "--tile", 32, "--overlap", 8, "--routing-map", maps, "--backend", "inference")
    return res, out, maps


def test_folder_and_glob_inputs_all_processed(first_run):
    res, out, _ = first_run
    assert res.returncode == 1, res.stderr  # some inputs are bad
    for name in ("rgb", "rgba", "rgb16", "gray16", "palette", "cmyk", "rotated",
                 "small", "coffee", "chelsea"):
        assert (out / f"{name}.png").exists(), f"{name}: no output\n{res.stderr}"
    assert "10 done, 4 failed, 1 skipped" in res.stderr


def test_each_bad_file_gets_one_clear_line(first_run):
    res, _, _ = first_run
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 4, res.stderr
    expect = {"corrupt.png": "corrupt", "notimage.png": "not an image", "empty.png": "empty",
              "missing.png": "no such file"}
    for name, reason in expect.items():
        lines = [ln for ln in errors if name in ln]
        assert len(lines) == 1 and reason in lines[0], (name, errors)


def test_outputs_keep_the_input_kind(first_run, inputs):
    _, out, _ = first_run
    d, _ = inputs
    cases = {"rgb": ((192, 224, 3), np.uint8),
             "rgba": ((192, 224, 4), np.uint8), "rgb16": ((192, 224, 3), np.uint16),
             "gray16": ((160, 176), np.uint16), "palette": ((192, 224, 3), np.uint8),
             "cmyk": ((192, 224, 3), np.uint8), "rotated": ((224, 192, 3), np.uint8),
             "small": ((48, 80, 3), np.uint8)}
    for name, (shape, dtype) in cases.items():
        img = read_image(out / f"{name}.png")
        assert img.shape == shape and img.dtype == dtype, (name, img.shape, img.dtype)
    rgba = read_image(out / "rgba.png")
    assert np.abs(rgba[:, :, 3].astype(int) - 128).max() <= 1  # alpha kept (bicubic)
    # 16-bit output matches the 8-bit run (the networks see the same values)
    deep, flat = read_image(out / "rgb16.png"), read_image(out / "rgb.png")
    assert np.abs(deep / 257.0 - flat).max() <= 1.0


def test_routing_maps_written(first_run):
    _, _, maps = first_run
    pic = read_image(maps / "rgb_routing.png")
    assert pic.ndim == 3 and pic.shape[1] >= 512
    assert (maps / "coffee_routing.png").exists()


def test_summary_reports_routing_share(first_run):
    res, _, _ = first_run
    last = res.stderr.strip().splitlines()[-1]
    assert "tiles:" in last and "class 0" in last and "%" in last


def test_no_overwrite_without_flag_and_never_over_input(bundle, inputs, first_run):
    d, _ = inputs
    res, out, _ = first_run
    target = out / "gray.png"
    assert "gray.png exists (pass --overwrite to replace it)" in res.stderr
    assert target.read_bytes() == b"an earlier output"
    res = run_cli(d / "gray.png", "-o", out, "--bundle", bundle, "--tile", 32, "--overwrite",
                  "--backend", "dygraph", "-q")
    assert res.returncode == 0, res.stderr
    gray = read_image(target)  # replaced, and gray stays gray
    assert gray.shape == (160, 176) and gray.dtype == np.uint8
    # an output path equal to an input file is refused, the input untouched
    src = (d / "rgb.png").read_bytes()
    res = run_cli(d / "rgb.png", "-o", d, "--format", "same", "--overwrite", "--bundle", bundle)
    assert res.returncode == 1 and "would overwrite an input file" in res.stderr
    assert (d / "rgb.png").read_bytes() == src


def test_missing_bundle_is_a_clear_error(tmp_path):
    res = run_cli(tmp_path / "x.png", "-o", tmp_path, "--bundle", tmp_path / "nope")
    assert res.returncode == 2
    assert f"no bundle at {tmp_path / 'nope'}; pass --bundle or see README" in res.stderr


def test_bad_options_stop_before_any_work(bundle, inputs, tmp_path):
    d, g = inputs
    (tmp_path / "out.png").write_bytes(b"a file")
    res = run_cli(d / "rgb.png", "-o", tmp_path / "out.png", "--bundle", bundle)
    assert res.returncode == 2 and "is a file, not a folder" in res.stderr
    res = run_cli(d / "rgb.png", "-o", tmp_path, "--bundle", bundle, "--tensorrt")
    assert res.returncode == 2 and "--tensorrt needs --device gpu" in res.stderr
    res = run_cli(f"{g}/*.jpg", "-o", tmp_path, "--bundle", bundle, "--routing-map", "map.png")
    assert res.returncode == 2 and "several inputs; give a folder" in res.stderr
    res = run_cli(d / "rgb.png", "-o", tmp_path, "--bundle", bundle, "--png-compression", "10")
    assert res.returncode == 2 and "zlib levels are 0..9, got 10" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_missing_input_fails_even_when_its_output_exists(bundle, tmp_path):
    (tmp_path / "typo.png").write_bytes(b"an earlier output")
    res = run_cli(tmp_path / "in" / "typo.png", "-o", tmp_path, "--bundle", bundle)
    assert res.returncode == 1, res.stderr
    assert "no such file" in res.stderr and "0 done, 1 failed, 0 skipped" in res.stderr


def test_non_image_files_in_a_folder_are_named_not_silently_dropped(bundle, tmp_path):
    d = tmp_path / "in"
    write_image(d / "a.png", skdata.astronaut()[:24, :24])
    (d / "notes.txt").write_text("not an image\n")
    (d / "clip.mov").write_bytes(b"\x00\x00\x00\x18ftypqt")
    res = run_cli(d, "-o", tmp_path / "out", "--bundle", bundle, "--tile", 32, "-q")
    assert res.returncode == 0, res.stderr
    assert f"note: {d}: 2 file(s) without an image extension left out" in res.stderr
    assert (tmp_path / "out" / "a.png").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_says_permission_denied(tmp_path):
    from paddle_mmsr.image.io import ImageReadError
    f = tmp_path / "locked.png"
    write_image(f, skdata.astronaut()[:8, :8])
    f.chmod(0)
    with pytest.raises(ImageReadError, match="permission denied"):
        read_image(f)


def test_first_use_is_announced_once_and_warm_runs_do_no_export(bundle, inputs, first_run,
                                                                 tmp_path):
    res, _, _ = first_run
    assert res.stderr.count("preparing models (first use)") == 1
    d, _ = inputs
    args = (d / "rgb.png", "-o", tmp_path, "--bundle", bundle, "--tile", 32,
            "--backend", "inference", "--overwrite")
    cold = run_cli(*args)  # this test's own HOME: an empty export cache
    assert cold.returncode == 0 and cold.stderr.count("preparing models (first use)") == 1
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr
    assert "preparing models (first use)" not in res.stderr
    assert "precision: fp32" in res.stderr
