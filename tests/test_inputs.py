"""Inputs are validated: API floats, 16-bit TIFF, gray + alpha, animated files, tool
options, the output folder, and stops (SIGTERM) that leave nothing behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")
skdata = pytest.importorskip("skimage.data")
from PIL import Image  # noqa: E402

from conftest import ROOT  # noqa: E402
from paddle_mmsr import MMSR  # noqa: E402
from paddle_mmsr.cli import upscale  # noqa: E402
from paddle_mmsr.core.tvat import TVATSettings  # noqa: E402
from paddle_mmsr.image.io import ImageReadError, list_images, read_image, write_image  # noqa: E402
from paddle_mmsr.models import build_generator  # noqa: E402
from paddle_mmsr.models.weights import make_bundle  # noqa: E402

TINY = dict(channels=8, form="fast", head_kernel=3, tail_kernel=3)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    paddle.seed(0)
    gens = [(s, TINY, build_generator(s, 4, **TINY)) for s in ("1-1", "2-2")]
    make_bundle(root, gens, TVATSettings(bounds=[0.5]))
    return root


def rgb():
    return skdata.astronaut()[100:140, 180:228]  # 40 x 48


def cli(capsys, *args):
    code = upscale.main([str(a) for a in args])
    return code, capsys.readouterr().err


# ---- the Python API ----

@pytest.mark.parametrize("values, message", [
    (lambda a: a * 255.0, r"in \[0, 1\], got values in \[1, 251\].*divide by 255"),
    (lambda a: a - 0.5, r"in \[0, 1\], got values in \[-0.49"),
    (lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7, np.nan, a), "1 NaN or infinite"),
    (lambda a: np.where(a > 0.9, np.inf, a), "NaN or infinite"),
], ids=["0-255", "negative", "nan", "inf"])
def test_float_images_must_be_finite_and_in_0_1(bundle, values, message):
    sr = MMSR.load(bundle, backend="dygraph", tile=32, overlap=8)
    a = rgb().astype(np.float32) / 255
    assert sr.upscale(a).shape == (160, 192, 3)  # in range: fine
    with pytest.raises(ValueError, match=message):
        sr.upscale(values(a).astype(np.float32))


# ---- file kinds ----

def test_16bit_rgb_tiff_keeps_16_bits(bundle, tmp_path, capsys):
    import tifffile
    deep = rgb().astype(np.uint16) * 256 + np.arange(48, dtype=np.uint16)[:, None]  # low byte set
    tifffile.imwrite(tmp_path / "deep.tif", deep.astype(np.uint16), photometric="rgb")
    a = read_image(tmp_path / "deep.tif")
    assert a.dtype == np.uint16 and a.shape == (40, 48, 3)
    np.testing.assert_array_equal(a, deep)
    code, err = cli(capsys, tmp_path / "deep.tif", "-o", tmp_path / "out", "--bundle", bundle,
                    "--tile", 32, "--overlap", 8, "-q")
    assert code == 0, err
    out = read_image(tmp_path / "out" / "deep.png")
    assert out.dtype == np.uint16 and out.shape == (160, 192, 3)
    write_image(tmp_path / "back.tif", out)  # and 16-bit TIFF out
    np.testing.assert_array_equal(read_image(tmp_path / "back.tif"), out)


def test_gray_alpha_png_stays_gray_alpha(bundle, tmp_path, capsys):
    gray = skdata.camera()[100:140, 200:248]
    alpha = np.tile(np.linspace(0, 255, 48).astype(np.uint8), (40, 1))
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(tmp_path / "la.png")
    a = read_image(tmp_path / "la.png")
    assert a.shape == (40, 48, 2)
    code, err = cli(capsys, tmp_path / "la.png", "-o", tmp_path / "out", "--bundle", bundle,
                    "--tile", 32, "--overlap", 8, "-q")
    assert code == 0, err
    with Image.open(tmp_path / "out" / "la.png") as im:
        assert im.mode == "LA" and im.size == (192, 160)
    # TVAT of gray + alpha is the gray's (alpha is not texture)
    s = TVATSettings()
    assert s.score(a) == pytest.approx(s.score(gray))


def test_animated_gif_is_refused_the_same_way_in_a_folder_and_by_name(bundle, tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    frames = [Image.fromarray(rgb()), Image.fromarray(rgb()[::-1].copy())]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    Image.fromarray(rgb()).save(d / "still.gif")
    with pytest.raises(ImageReadError, match="has 2 frames"):
        read_image(d / "anim.gif")
    for inputs, out in (([d], "o1"), ([d / "anim.gif", d / "still.gif"], "o2")):
        code, err = cli(capsys, *inputs, "-o", tmp_path / out, "--bundle", bundle,
                        "--tile", 32, "--overlap", 8, "-q")
        assert code == 1, err
        assert f"error: {d / 'anim.gif'}: has 2 frames" in err
        assert "1 done, 1 failed" in err and "left out" not in err
        assert (tmp_path / out / "still.png").exists()
        assert not (tmp_path / out / "anim.png").exists()


def test_temp_files_of_the_tool_are_never_inputs(tmp_path):
    write_image(tmp_path / "a.png", rgb())
    (tmp_path / ".tmp-k2j4.png").write_bytes(b"")  # left by a killed run
    assert list_images(tmp_path) == [tmp_path / "a.png"]


# ---- options and the output folder ----

@pytest.mark.parametrize("options, message", [
    (["--tile", "0"], "argument --tile: must be at least 1, got 0"),
    (["--tile", "-4"], "argument --tile: must be at least 1, got -4"),
    (["--overlap", "-1"], "argument --overlap: must be at least 0, got -1"),
    (["--batch", "0"], "argument --batch: must be at least 1"),
    (["--tile", "8"], r"--overlap \(16\) must be smaller than --tile \(8\)"),
], ids=["tile-0", "tile-negative", "overlap", "batch", "tile-below-overlap"])
def test_bad_tiling_options_name_the_option(bundle, tmp_path, capsys, options, message):
    write_image(tmp_path / "a.png", rgb())
    with pytest.raises(SystemExit) if "argument" in message else _no_exit() as e:
        code = upscale.main([str(tmp_path / "a.png"), "-o", str(tmp_path / "out"),
                             "--bundle", str(bundle), *options])
    err = capsys.readouterr().err
    assert (e.value.code if e else code) == 2
    import re
    assert re.search(message, err), err
    assert "image side must be positive" not in err
    assert not (tmp_path / "out").exists()


class _no_exit:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_unwritable_output_folder_is_refused_before_any_work(bundle, tmp_path, capsys,
                                                             monkeypatch):
    write_image(tmp_path / "a.png", rgb())
    (tmp_path / "file").write_text("")
    calls = []
    monkeypatch.setattr(MMSR, "reconstruct", lambda *a, **k: calls.append(1))
    for option in (["-o", tmp_path / "file" / "sub"],
                   ["-o", tmp_path / "out", "--routing-map", tmp_path / "file" / "maps"]):
        code, err = cli(capsys, tmp_path / "a.png", *option, "--bundle", bundle, "-q")
        assert code == 2 and "cannot write there" in err and "Not a directory" in err, err
        assert "done" not in err
    assert calls == []
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        code, err = cli(capsys, tmp_path / "a.png", "-o", ro, "--bundle", bundle, "-q")
        assert code == 2 and "cannot write there" in err
    assert not list((tmp_path / "out").glob(".tmp-*")) if (tmp_path / "out").exists() else True


# ---- stops ----

def test_sigterm_stops_cleanly_and_leaves_no_temp_file(bundle, tmp_path):
    d = tmp_path / "in"
    big = np.tile(skdata.astronaut()[:128, :128], (2, 2, 1))  # 256 x 256: many tiles
    for i in range(6):
        write_image(d / f"p{i}.png", np.roll(big, i * 7, axis=1))
    out = tmp_path / "out"
    env = {**os.environ, "GLOG_minloglevel": "2", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "tools/upscale.py"), str(d), "-o",
                             str(out), "--bundle", str(bundle), "--tile", "32", "--overlap", "8",
                             "--backend", "dygraph", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "p0.png").exists():
        time.sleep(0.05)
    assert (out / "p0.png").exists(), "the tool never wrote its first output"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "Fatal" not in err, err
    assert not list(out.glob(".tmp-*")), list(out.iterdir())
    done = sorted(out.glob("p*.png"))
    assert 1 <= len(done) < 6
    for f in done:  # every output left is complete
        assert read_image(f).shape == (1024, 1024, 3)


def test_sigterm_while_writing_leaves_no_partial_file(bundle, tmp_path, capsys, monkeypatch):
    """The signal arrives in the middle of writing an output (in the writer thread):
    the output is then complete or absent, never partial or a temp file."""
    from paddle_mmsr.image import io
    write_image(tmp_path / "a.png", rgb())
    real = io._save_png

    def save_then_signal(tmp, *args):
        real(tmp, *args)
        os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode: mid-write
        time.sleep(1)
    monkeypatch.setattr(io, "_save_png", save_then_signal)
    before = signal.getsignal(signal.SIGTERM)
    code, err = cli(capsys, tmp_path / "a.png", "-o", tmp_path / "out", "--bundle", bundle,
                    "--tile", 32, "--overlap", 8, "-q")
    assert code == 143 and "stopped by SIGTERM" in err
    left = list((tmp_path / "out").iterdir())
    assert [f.name for f in left] in ([], ["a.png"])
    for f in left:
        assert read_image(f).shape == (rgb().shape[0] * 4, rgb().shape[1] * 4, 3)
    assert signal.getsignal(signal.SIGTERM) is before  # restored for the caller
