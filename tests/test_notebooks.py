"""The notebooks run top to bottom with a real kernel, on CPU, with tiny
parameters, on real photos; and they are committed without outputs.

Parameters are injected the way papermill does it: a cell with the new values
is inserted right after the cell tagged ``parameters``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = ["01_quickstart.ipynb", "02_train_mmsr.ipynb"]
CELL_TIMEOUT = 300  # seconds per cell

nbformat = pytest.importorskip("nbformat")


def load(name):
    return nbformat.read(NB_DIR / name, as_version=4)


# ------------------------------------------------------------ static checks
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs(name):
    nb = load(name)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {i} has outputs: strip them before committing"
            assert cell.execution_count is None, f"{name} cell {i} has an execution count"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_one_parameters_cell(name):
    nb = load(name)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    ns = {}
    exec(tagged[0].source, ns)  # plain assignments only
    for key in ("INSTALL", "DEVICE"):
        assert key in ns


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_matches_its_script(name):
    """notebooks/NAME.py (jupytext percent script, the source) and NAME.ipynb hold
    the same cells: after editing one, run `jupytext --sync notebooks/*.py`."""
    jupytext = pytest.importorskip("jupytext")
    script = jupytext.read(NB_DIR / name.replace(".ipynb", ".py"))

    def cells(nb):
        return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]

    assert cells(script) == cells(load(name)), \
        f"{name} and its .py differ: run jupytext --sync notebooks/{name.replace('.ipynb', '.py')}"
    assert load(name).metadata["jupytext"]["formats"] == "ipynb,py:percent"


# ------------------------------------------------------------ helpers
def test_notebook_utils(tmp_path, photos):
    from paddle_mmsr.image.panels import nearest_up
    from paddle_mmsr.notebook import busiest_window, crop_to_multiple, find_path
    img = photos["coffee"]
    assert crop_to_multiple(img[:399, :597], 4).shape == (396, 596, 3)
    assert nearest_up(img[:2, :3], 4).shape == (8, 12, 3)
    flat = np.zeros((200, 200), np.uint8)
    flat[120:150, 40:70] = 255  # one bright square: the window must contain it
    y, x = busiest_window(flat, 64)
    assert y <= 120 and y + 64 >= 150 and x <= 40 and x + 64 >= 70
    (tmp_path / "a" / "b" / "DIV2K_train_HR").mkdir(parents=True)
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "DIV2K_valid_HR.zip").write_bytes(b"")
    assert find_path([tmp_path / "missing", tmp_path], "DIV2K_train_HR") == \
        tmp_path / "a" / "b" / "DIV2K_train_HR"
    assert find_path([tmp_path], "DIV2K_valid_HR.zip", folder=False) == tmp_path / "z" / "DIV2K_valid_HR.zip"
    assert find_path([tmp_path], "DIV2K_valid_HR.zip") is None  # a file, not a folder
    assert find_path([tmp_path], "DIV2K_train_HR", max_depth=1) is None


def test_split_defaults_follow_the_photo_sizes(tmp_path):
    from paddle_mmsr.config import parse_config
    from paddle_mmsr.image.io import write_image
    from paddle_mmsr.notebook import scaled_schedule, small_classes, split_sizes
    for name, (h, w) in {"big": (1020, 1400), "small": (512, 480), "tiny": (300, 200)}.items():
        (tmp_path / name).mkdir()
        for i in range(3):
            write_image(tmp_path / name / f"{i}.png", np.zeros((h, w, 3), np.uint8))
    assert split_sizes(tmp_path / "big")[:2] == (480, 240)  # DIV2K-sized: the paper's
    assert split_sizes(tmp_path / "small")[:2] == (240, 120)
    assert split_sizes(tmp_path / "tiny")[:2] == (192, 96)
    info = {"classes": [{"id": 0, "count": 40}, {"id": 1, "count": 15}, {"id": 2, "count": 0}]}
    assert small_classes(info) == [1, 2]
    cfg = parse_config({"data": {"sources": ["x"]}, "train": {"pretrain_iters": 1000},
                        "optim": {"pretrain": {"milestones": [500, 900]}}})
    assert scaled_schedule(cfg, "pretrain_iters", 100, ["pretrain"]) == \
        ["train.pretrain_iters=100", "optim.pretrain.milestones=[50, 90]"]
    assert scaled_schedule(cfg, "pretrain_iters", None, ["pretrain"]) == []


# ------------------------------------------------------------ execution
def execute(name, params: dict, tmp_path):
    """Run the notebook (cwd notebooks/, as Jupyter would) with ``params``;
    returns the executed notebook. Any cell error fails the test."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    nb = load(name)
    idx = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    src = "# Injected by tests/test_notebooks.py\n" + "\n".join(
        f"{k} = {v!r}" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(src)
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(idx + 1, cell)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(NB_DIR)}})
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as e:
        out = tmp_path / f"failed_{name}"
        nbformat.write(nb, out)
        pytest.fail(f"{name}: a cell failed (executed notebook: {out}):\n{e}")
    print(f"{name}: {time.perf_counter() - start:.1f} s")
    return nb


def outputs_text(nb) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            if o.get("output_type") == "stream":
                parts.append(o["text"])
            elif "data" in o and "text/plain" in o["data"]:
                parts.append(o["data"]["text/plain"])
    return "\n".join(parts)


def n_images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


@pytest.fixture
def kernel_env(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("GLOG_minloglevel", "2")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")


def tiny_bundle(root: Path) -> Path:
    """Three tiny untrained 'fast' generators (output = bicubic + a small residual)."""
    import paddle
    from paddle_mmsr.models.weights import make_bundle
    from paddle_mmsr.models import build_generator
    from paddle_mmsr.core.tvat import TVATSettings
    paddle.seed(0)
    opts = {"channels": 8, "form": "fast", "tail_kernel": 3}
    gens = [(s, opts, build_generator(s, **opts)) for s in ("2-2", "4-6", "8-6")]
    make_bundle(root, gens, TVATSettings(bounds=[2.0, 4.0]),
                produced_by={"config": "tests/test_notebooks.py (untrained)"})
    return root


def test_quickstart_runs(tmp_path, kernel_env, photos):
    from paddle_mmsr.image.io import write_image
    shipped = ROOT / "pretrained" / "mmsr_x4_bicubic"
    bundle = shipped if (shipped / "manifest.yaml").exists() else tiny_bundle(tmp_path / "bundle")
    # "a user's upload": an RGBA photo larger than MAX_SIDE, in the notebook's folder's terms
    rocket = photos["rocket"][100:230, 200:360]  # 160x130
    alpha = np.full(rocket.shape[:2] + (1,), 255, np.uint8)
    alpha[:20] = 0
    upload = tmp_path / "my upload.png"
    write_image(upload, np.concatenate([rocket, alpha], axis=2))
    nb = execute("01_quickstart.ipynb", {
        "INSTALL": False, "BUNDLE": str(bundle), "MY_IMAGE": str(upload), "MAX_SIDE": 120,
        "DEVICE": "cpu", "OUT_DIR": str(tmp_path / "out")}, tmp_path)
    text = outputs_text(nb)
    assert "INSTALL = False" in text
    assert "PSNR-Y" in text and "MMSR" in text
    assert n_images(nb) >= 4  # two comparisons, two routing maps
    assert (tmp_path / "out" / "astronaut_mmsr.png").is_file()
    assert (tmp_path / "out" / "my upload_x4.png").is_file()
    assert (tmp_path / "out" / "cli" / "my upload.png").is_file()
    assert (tmp_path / "out" / "cli" / "routing.png").is_file()


def training_params(tmp_path) -> dict:
    """Tiny run: a few iterations of 8-channel models (both phases), 3 processes
    on CPU, the notebook's default split settings. The notebook's own fallback data
    (scikit-image sample photos, configs/demo_cpu.yaml) is used unless this machine
    has DIV2K where the notebook looks for it."""
    params = {
        "INSTALL": False, "DATA_DIR": None, "EVAL_DIR": None, "EVAL_MAX_IMAGES": 2,
        "DEVICE": "cpu", "NPROC": 3, "CONFIG": None, "ITERS": 3, "ADV_ITERS": 1,
        # phase 2 with an untrained VGG19 (tests only: no download)
        "OVERRIDES": ["model.generator.channels=8", "model.discriminator_channels=8",
                      "loss.vgg_weights=random", "data.batch_size=2", "data.crop=32",
                      "data.workers=0", "val.every=2", "val.max_images=1", "log.every=1",
                      "log.images_every=2", "log.histograms_every=2", "checkpoint.every=2",
                      "train.cpu_threads=1"],
        "WORK_DIR": str(tmp_path / "work dir"),  # a space, as users' paths may have
    }
    if any(Path(r, "DIV2K_train_HR").exists() or Path(r, "DIV2K_train_HR.zip").exists()
           for r in ("/home/aistudio/data", "/home/aistudio/work", ROOT / "data")):
        params.update(DATA_DIR=str(ROOT / "examples"), EVAL_DIR=str(ROOT / "examples"),
                      CONFIG="configs/demo_cpu.yaml", SUB_SIZE=128, STEP=64)
    return params


def test_train_notebook_runs(tmp_path, kernel_env):
    params = training_params(tmp_path)
    nb = execute("02_train_mmsr.ipynb", params, tmp_path)
    work = tmp_path / "work dir"
    text = outputs_text(nb)
    if params["DATA_DIR"] is None:  # the sample photos, with the default split settings
        assert "sub-images: 256 px, step 128 (half the median short side of 512 px" in text
        assert "splitting again with --calibrate 3" in text
    assert "--nproc_per_node 3" in text
    summary = json.loads((work / "mmsr" / "summary.json").read_text())
    assert [c["status"] for c in summary["classes"]] == ["done"] * 3
    assert [c["phases"]["adversarial"]["iterations"] for c in summary["classes"]] == [1] * 3
    assert (work / "mmsr" / "bundle" / "manifest.yaml").is_file()
    assert (work / "srgan_16-8" / "bundle" / "manifest.yaml").is_file()
    assert sorted(p.name for p in (work / "mmsr" / "logs").glob("workerlog.*")) == \
        ["workerlog.0", "workerlog.1", "workerlog.2"]
    for name in ("bicubic", "srgan16-8", "mmsr"):
        res = json.loads((work / f"eval_{name}.json").read_text())
        assert np.isfinite(res[0]["mean"]["psnr"])
    assert (work / "upscaled" / "chelsea_lr.png").is_file()
    assert "train.pretrain_iters=3" in text
    assert n_images(nb) >= 4  # histogram, curves, comparison, routing, upscaled
    assert "visualdl --logdir" in text and "--language en" in text


def test_seconds_curves_are_labelled_in_seconds():
    from paddle_mmsr.notebook import x_label
    assert x_label("routed/psnr_y_by_train_seconds") == "training seconds"
    assert x_label("routed/psnr_y_by_slowest_class_seconds") == "training seconds"
    assert x_label("routed/psnr_y") == x_label("loss/g_total") == "iteration"
