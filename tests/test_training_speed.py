"""Time to quality: the curve helpers and benchmarks/benchmark_training_speed.py,
on synthetic curves and on two real tiny training runs."""
import importlib.util
import json
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from test_train import train_data  # noqa: F401 (the fixture)
from paddle_mmsr.train.curves import crossing, rank_seconds, time_to_reach

TOOL = ROOT / "benchmarks" / "benchmark_training_speed.py"


def _tool():
    spec = importlib.util.spec_from_file_location("benchmark_training_speed", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_time_to_reach_interpolates_between_validations():
    psnr, t = [25.0, 27.0, 28.0, 27.5], [100.0, 200.0, 300.0, 400.0]
    assert crossing(psnr, 27.5) == (2, 0.5)
    assert time_to_reach(psnr, t, 27.5) == pytest.approx(250.0)
    assert time_to_reach(psnr, t, 28.0) == pytest.approx(300.0)  # reached exactly at a point
    assert time_to_reach(psnr, t, 24.0) == 100.0                 # already at the first point
    assert time_to_reach(psnr, t, 28.1) is None                  # never
    assert time_to_reach([26.0, 26.0, 27.0], [1, 2, 3], 26.0) == 1.0
    # the first crossing counts, not a later one after a dip
    assert time_to_reach([25, 28, 26, 29], [1, 2, 3, 4], 27.0) == pytest.approx(1 + 2 / 3)


def test_rank_seconds_is_the_slowest_rank():
    assert rank_seconds([10.0, 20.0, 5.0], {0: 0, 1: 1, 2: 2}) == 20.0
    assert rank_seconds([10.0, 20.0, 5.0], {0: 0, 1: 1, 2: 0}) == 20.0
    assert rank_seconds([10.0, 20.0, 15.0], {0: 0, 1: 1, 2: 0}) == 25.0
    assert rank_seconds([10.0, 20.0, 15.0], {0: 0, 1: 0, 2: 0}) == 45.0


def _run(curve, classes=1, world_size=1, val_dir="val"):
    return {"folder": "x", "config": {"scale": 4, "val": {"dir": val_dir, "max_images": 0}},
            "summary": {"classes": [{}] * classes, "world_size": world_size,
                        "placement": {str(c): c % world_size for c in range(classes)},
                        "routed_curve": curve}}


def _point(it, class_seconds, psnr):
    return {"iteration": it, "class_seconds": class_seconds,
            "train_seconds": sum(class_seconds), "psnr_y": psnr}


SINGLE = [_point(100, [100.0], 26.0), _point(200, [200.0], 27.0), _point(300, [300.0], 28.0)]
MMSR = [_point(100, [20.0, 30.0, 40.0], 26.5), _point(200, [40.0, 60.0, 80.0], 27.5),
        _point(300, [60.0, 90.0, 120.0], 28.5)]


def test_speed_on_synthetic_curves():
    bench = _tool()
    res = bench.speed(_run(SINGLE), _run(MMSR, classes=3))
    assert res["target_psnr"] == 28.0 and res["single_s"] == 300.0 and res["ranks"] == 3
    # 28.0 is half way from iteration 200 to 300: sums 180 -> 270, slowest class 80 -> 120
    assert res["mmsr_one_device_s"] == pytest.approx(225.0)
    assert res["mmsr_ranks_s"] == pytest.approx(100.0)
    assert res["speedup_one_device"] == pytest.approx(300 / 225, abs=1e-3)
    assert res["speedup_ranks"] == pytest.approx(3.0)
    # two ranks: the run's own placement (round robin here) -> classes 0+2 on rank 0
    two = bench.speed(_run(SINGLE), _run(MMSR, classes=3, world_size=2), ranks=2)
    assert two["placement"] == {"0": 0, "1": 1, "2": 0}
    assert two["mmsr_ranks_s"] == pytest.approx(150.0)  # rank 0: 40+80=120 -> 60+120=180
    # a target MMSR never reaches is null, and the table says so
    low = [dict(p, psnr_y=p["psnr_y"] - 1.0) for p in MMSR]
    miss = bench.speed(_run(SINGLE), _run(low, classes=3))
    assert miss["mmsr_one_device_s"] is None and miss["mmsr_ranks_s"] is None
    assert miss["speedup_one_device"] is None
    text = bench.markdown(miss, "cmd")
    assert "not reached" in text and "null" in text
    with pytest.raises(bench.BenchmarkError, match="validated differently"):
        bench.speed(_run(SINGLE), _run(MMSR, classes=3, val_dir="other"))


def test_cli_writes_json_and_one_doc_section(tmp_path):
    for name, run in (("single", _run(SINGLE)), ("mmsr", _run(MMSR, classes=3))):
        d = tmp_path / name
        d.mkdir()
        (d / "summary.json").write_text(json.dumps(run["summary"]))
        (d / "config.yaml").write_text(yaml.safe_dump(run["config"]))
    doc = tmp_path / "benchmark.md"
    doc.write_text("# Benchmark\n\nhand-written text\n")
    cmd = [sys.executable, str(TOOL), "--single", str(tmp_path / "single"),
           "--mmsr", str(tmp_path / "mmsr"), "-o", str(tmp_path / "speed.json"),
           "--plot", str(tmp_path / "speed.png"), "--doc", str(doc)]
    for _ in range(2):  # the second run replaces the section
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "speed.json").read_text())
    for k in ("target_psnr", "single_s", "mmsr_one_device_s", "mmsr_ranks_s", "ranks"):
        assert k in res
    assert res["mmsr_ranks_s"] == pytest.approx(100.0)
    text = doc.read_text()
    assert text.startswith("# Benchmark\n\nhand-written text\n")
    assert text.count("<!-- training_speed:start -->") == 1 and "(speed.png)" in text
    assert (tmp_path / "speed.png").stat().st_size > 5000
    (tmp_path / "mmsr" / "summary.json").write_text(json.dumps({"classes": []}))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no routed curve" in r.stderr


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, train_data):
    """A real 3-class MMSR run and a real single-model run, validated alike."""
    from test_train import TOOL as TRAIN, tiny_config, write_config
    root = tmp_path_factory.mktemp("speed")
    common = dict(pretrain=6, adversarial=0, log={"every": 2, "images_every": 6,
                                                   "histograms_every": 6, "progress": False})
    mmsr = tiny_config(train_data, root / "mmsr", **common)
    single = tiny_config(train_data, root / "single", classes=[{"spec": "2-2"}],
                         data={"split": None, "sources": [str(train_data / "split/all.tsv")]},
                         **common)
    for name, cfg in (("mmsr", mmsr), ("single", single)):
        r = subprocess.run([sys.executable, TRAIN, "-c", str(write_config(root / f"{name}.yaml",
                                                                           cfg))],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
    return root


def test_benchmark_on_real_tiny_runs(tiny_runs, tmp_path):
    out = tmp_path / "training_speed.json"
    r = subprocess.run([sys.executable, str(TOOL), "--single", str(tiny_runs / "single"),
                        "--mmsr", str(tiny_runs / "mmsr"), "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    single = json.loads((tiny_runs / "single/summary.json").read_text())
    mmsr = json.loads((tiny_runs / "mmsr/summary.json").read_text())
    assert res["ranks"] == 3
    assert res["target_psnr"] == single["routed_curve"][-1]["psnr_y"]
    assert res["target_psnr"] == pytest.approx(single["routed_val"]["psnr"], abs=1e-3)
    assert 0 < res["single_s"] <= single["train_seconds_sum"] + 1e-3
    m_best = max(p["psnr_y"] for p in mmsr["routed_curve"])
    if m_best < res["target_psnr"]:
        assert res["mmsr_one_device_s"] is None and res["mmsr_ranks_s"] is None
    else:
        assert 0 < res["mmsr_ranks_s"] <= res["mmsr_one_device_s"] <= mmsr["train_seconds_sum"]
    assert [p["iteration"] for p in mmsr["routed_curve"]] == [2, 4, 6]
    # --assemble again: the routed points come from routed_curve.json, not scored again
    from test_train import TOOL as TRAIN
    r = subprocess.run([sys.executable, TRAIN, "-c", str(tiny_runs / "mmsr.yaml"), "--assemble"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "routed curve" not in r.stdout
    again = json.loads((tiny_runs / "mmsr/summary.json").read_text())
    assert again["routed_curve"] == mmsr["routed_curve"]
