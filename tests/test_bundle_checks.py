"""Bundles are checked, not trusted: manifest keys, weights against the manifest,
the inference cache, and what backend="auto" may fall back for."""
from __future__ import annotations

import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import yaml

paddle = pytest.importorskip("paddle")

from conftest import ROOT  # noqa: E402
from paddle_mmsr import MMSR  # noqa: E402
from paddle_mmsr.core.tvat import TVATSettings  # noqa: E402
from paddle_mmsr.models import build_generator  # noqa: E402
from paddle_mmsr.sr import inference  # noqa: E402
from paddle_mmsr.core.manifest import BundleError, load_bundle  # noqa: E402
from paddle_mmsr.models.weights import make_bundle  # noqa: E402
from paddle_mmsr.sr.inference import export_generator, make_runner  # noqa: E402

TINY = dict(channels=8, form="fast", head_kernel=3, tail_kernel=3)


@pytest.fixture
def bundle(tmp_path):
    """Two classes: 1-1 and 2-2 generators, 8 channels, x4, a flat bound."""
    paddle.seed(0)
    gens = [(s, TINY, build_generator(s, 4, **TINY)) for s in ("1-1", "2-2")]
    make_bundle(tmp_path / "b", gens, TVATSettings(bounds=[1.0]), flat_bound=0.1)
    return tmp_path / "b"


def edit_manifest(root, change):
    m = yaml.safe_load((root / "manifest.yaml").read_text())
    change(m)
    (root / "manifest.yaml").write_text(yaml.safe_dump(m, sort_keys=False))


def photo():
    from skimage import data
    return data.astronaut()[100:140, 200:250]


# ---- weights against the manifest ----

@pytest.mark.parametrize("change, names", [
    (lambda m: m["classes"][0]["generator"].update(channels=16),
     [r"wrong shape", r"head\.0\.weight \[8, 3, 3, 3\] in the file, \[16, 3, 3, 3\] expected"]),
    (lambda m: m["classes"][0].update(spec="3-1"),
     [r"missing keys: blocks\.1\.body\.0\.weight", "spec 3-1"]),
    (lambda m: m["classes"][1].update(spec="1-2"),
     [r"unexpected keys: .*blocks\.1\.body\.0\.weight", "class 1"]),
    (lambda m: m.update(scale=2), [r"unexpected keys: .*upsample\.3\.weight", "scale 2"]),
    (lambda m: m.update(scale=3), [r"upsample\.0\.weight \[32, 8, 3, 3\] in the file, "
                                   r"\[72, 8, 3, 3\] expected"]),
], ids=["channels", "spec-fewer-blocks", "spec-more-blocks", "scale-2", "scale-3"])
def test_weights_must_fit_the_manifest(bundle, change, names):
    edit_manifest(bundle, change)
    for backend in ("dygraph", "auto"):
        with pytest.raises(BundleError) as e:
            MMSR.load(bundle, backend=backend)
        for pattern in names:
            assert e.match(pattern), str(e.value)


def test_mismatched_bundle_fails_the_command(bundle, tmp_path):
    edit_manifest(bundle, lambda m: m["classes"][0]["generator"].update(channels=64))
    from paddle_mmsr.image.io import write_image
    write_image(tmp_path / "in.png", photo())
    r = subprocess.run([sys.executable, str(ROOT / "tools/upscale.py"), str(tmp_path / "in.png"),
                        "-o", str(tmp_path / "out"), "--bundle", str(bundle)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "do not fit" in r.stderr and "head.0.weight" in r.stderr
    assert "Skip loading" not in r.stdout + r.stderr
    assert not (tmp_path / "out" / "in.png").exists()


# ---- manifest keys ----

@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(scael=m.pop("scale")), r"unknown key 'scael'; did you mean 'scale'"),
    (lambda m: m.update(flat_bonud=m.pop("flat_bound")),
     r"unknown key 'flat_bonud'; did you mean 'flat_bound'"),
    (lambda m: m["classes"][1].update(wieghts=m["classes"][1].pop("weights")),
     r"classes\[1\]: unknown key 'wieghts'; did you mean 'weights'"),
    (lambda m: m["tvat"].update(bonuds=m["tvat"].pop("bounds")),
     r"tvat: unknown key 'bonuds'; did you mean 'bounds'"),
    (lambda m: m["classes"][0]["generator"].update(tail_kernal=3),
     r"classes\[0\]\.generator: unknown key 'tail_kernal'; did you mean 'tail_kernel'"),
], ids=["scale", "flat_bound", "weights", "tvat", "generator"])
def test_unknown_manifest_keys_are_refused(bundle, change, message):
    edit_manifest(bundle, change)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle)


def test_a_width_contradicting_the_spec_is_refused(tmp_path):
    shutil.copytree(ROOT / "pretrained" / "mmsr_x4_bicubic", tmp_path / "b")
    assert load_bundle(tmp_path / "b").classes[0].spec == "4-6w16"
    edit_manifest(tmp_path / "b", lambda m: m["classes"][0]["generator"].update(channels=32))
    with pytest.raises(BundleError, match="class 0: model spec 4-6w16 sets the width to 16, "
                                          "but channels is 32"):
        load_bundle(tmp_path / "b")


def test_every_key_the_code_writes_is_allowed(bundle):
    """Allowed keys come from the dataclasses and the generator's constructor: what
    make_bundle writes (all GeneratorOptions fields included) loads."""
    from dataclasses import fields
    from paddle_mmsr.core.spec import GeneratorOptions
    b = load_bundle(bundle)
    assert b.flat_bound == 0.1 and b.scale == 4
    edit_manifest(bundle, lambda m: m["classes"][0]["generator"].update(
        {f.name: getattr(GeneratorOptions(), f.name) for f in fields(GeneratorOptions)},
        **TINY))
    load_bundle(bundle)


# ---- the inference cache ----

@pytest.mark.parametrize("damage", ["truncate_params", "garble_model"])
def test_damaged_export_is_rebuilt(bundle, damage):
    b = load_bundle(bundle)
    model, params = export_generator(b, b.classes[0])
    if damage == "truncate_params":
        params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])
    else:
        model.write_bytes(b"{not a model")
    x = np.random.default_rng(0).random((1, 3, 12, 12), dtype=np.float32)
    ref = make_runner(b, b.classes[0], backend="dygraph").run(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "falling back to dygraph"
        runner = make_runner(b, b.classes[0], backend="auto")
    assert runner.name == "inference"
    np.testing.assert_allclose(runner.run(x), ref, atol=1e-4)


# ---- backend="auto" ----

def test_auto_falls_back_only_for_a_known_limitation(bundle, monkeypatch):
    b = load_bundle(bundle)

    def broken_save(*args, **kw):
        raise ValueError("an export bug")
    monkeypatch.setattr(paddle.jit, "save", broken_save)
    with pytest.raises(ValueError, match="an export bug"):
        make_runner(b, b.classes[0], backend="auto")
    monkeypatch.setitem(sys.modules, "paddle.inference", None)  # a build without it
    with pytest.warns(UserWarning, match="no Paddle Inference.*using dygraph"):
        runner = make_runner(b, b.classes[0], backend="auto")
    assert runner.name == "dygraph"
    with pytest.raises(inference.ExportLimitation, match="no Paddle Inference"):
        make_runner(b, b.classes[0], backend="inference")


def test_unwritable_cache_is_a_named_limitation(bundle, tmp_path, monkeypatch):
    b = load_bundle(bundle)
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.warns(UserWarning, match="no writable folder for the export cache"):
        runner = make_runner(b, b.classes[0], backend="auto", cache_dir=blocked / "cache")
    assert runner.name == "dygraph"
    assert inference.BACKENDS == ("auto", "inference", "dygraph")
