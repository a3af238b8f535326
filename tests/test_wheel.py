"""The package installs anywhere: a built wheel, installed into a fresh venv and
used outside the checkout, upscales with the shipped default bundle."""
import os
import shutil
import subprocess
import sys
import venv

import numpy as np
import pytest
from setuptools import find_packages

from conftest import ROOT
from paddle_mmsr.core import shipped
from paddle_mmsr.core.shipped import DEFAULT_BUNDLE, resolve_bundle, shipped_bundle

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_pyproject_lists_every_subpackage():
    found = find_packages(str(ROOT), include=["paddle_mmsr*"])
    assert sorted(SETUPTOOLS["packages"]) == sorted(found + ["paddle_mmsr.pretrained"])
    assert SETUPTOOLS["package-dir"] == {"paddle_mmsr.pretrained": "pretrained"}


def test_default_bundle_is_package_data():
    patterns = SETUPTOOLS["package-data"]["paddle_mmsr.pretrained"]
    assert f"{DEFAULT_BUNDLE}/manifest.yaml" in patterns
    assert f"{DEFAULT_BUNDLE}/*.safetensors" in patterns


def test_bundle_names_resolve(tmp_path, monkeypatch):
    assert resolve_bundle(None) == shipped_bundle() == ROOT / "pretrained" / DEFAULT_BUNDLE
    assert resolve_bundle("mmsr_x4_gan") == ROOT / "pretrained" / "mmsr_x4_gan"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mmsr_x4_gan").mkdir()  # a folder here named like a shipped bundle wins
    (tmp_path / "mmsr_x4_gan" / "manifest.yaml").write_text("")
    assert resolve_bundle("mmsr_x4_gan").resolve() == tmp_path / "mmsr_x4_gan"
    with pytest.raises(FileNotFoundError, match="no bundle at nope; pass --bundle"):
        resolve_bundle("nope")
    with pytest.raises(FileNotFoundError, match="no bundle at mmsr_x4_gan/x"):
        resolve_bundle("mmsr_x4_gan/x")
    monkeypatch.setattr(shipped, "INSTALLED", tmp_path / "a")
    monkeypatch.setattr(shipped, "CHECKOUT", tmp_path / "b")
    with pytest.raises(FileNotFoundError) as e:
        resolve_bundle(None)
    assert str(tmp_path / "a" / DEFAULT_BUNDLE) in str(e.value)
    assert str(tmp_path / "b" / DEFAULT_BUNDLE) in str(e.value)


def build_wheel(dest):
    """A wheel built from a copy of what the build reads (a stale build/ in the
    checkout cannot leak into it, and the checkout is not written)."""
    src = dest / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "inference_cache", "provenance",
                                  "vgg19*")
    for name in ("paddle_mmsr", "pretrained"):
        shutil.copytree(ROOT / name, src / name, ignore=junk)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "--no-cache-dir", str(src), "-w", str(dest / "dist")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = (dest / "dist").glob("paddle_mmsr-*.whl")
    return wheel


def test_wheel_installs_and_upscales_outside_the_checkout(tmp_path):
    pytest.importorskip("wheel")  # bdist_wheel for setuptools < 70.1
    wheel = build_wheel(tmp_path)
    assert wheel.stat().st_size < 12e6  # the weights of the shipped bundles, little else
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)  # Paddle etc. from the system
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the checkout is not importable
    work = tmp_path / "elsewhere"
    work.mkdir()

    def run(*cmd):
        r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=work,
                           env=env, timeout=900)
        assert r.returncode == 0, r.stdout + r.stderr
        return r

    run(bindir / "python", "-m", "pip", "install", "--no-deps", "--force-reinstall",
        "--no-cache-dir", wheel)
    r = run(bindir / "python", "-c", "import paddle_mmsr.core.shipped as s; "
            "print(s.__file__); print(s.shipped_bundle())")
    module, bundle = r.stdout.split()
    assert module.startswith(str(env_dir)) and bundle.startswith(str(env_dir))
    from PIL import Image
    lr = (np.random.default_rng(0).random((30, 44, 3)) * 255).astype(np.uint8)
    Image.fromarray(lr).save(work / "small.png")
    run(bindir / "mmsr-upscale", "small.png", "-o", "out", "-q")
    with Image.open(work / "out" / "small.png") as out:
        assert out.size == (44 * 4, 30 * 4)
