"""benchmarks/benchmark.py: the report is built from real runs and real images."""
import importlib.util
import json

from conftest import ROOT, crop
from paddle_mmsr.image.io import write_image
from paddle_mmsr.image.resize import imresize


def _tool():
    spec = importlib.util.spec_from_file_location("benchmark", ROOT / "benchmarks" / "benchmark.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_training_table_reads_shipped_summaries():
    bench = _tool()
    paths = sorted((ROOT / "pretrained" / "provenance" / "runs").glob("*_summary.json"))
    paths = [p for p in paths if "classes" in json.loads(p.read_text())]
    assert paths, "no training summaries shipped"
    rows, runs = bench.training_table(paths)
    per_run = {}
    for p in paths:
        s = json.loads(p.read_text())
        per_run[s["name"]] = s
        assert sum(r["run"] == s["name"] for r in rows) == len(s["classes"])
    for r in runs:
        assert r["max"] <= r["sum"]
        assert r["sum"] == per_run[r["run"]]["train_seconds_sum"]
    text = bench.markdown([], (rows, runs), "cmd")
    names = {r["run"] for r in runs}
    table_lines = [l for l in text.splitlines() if l.split(" | ")[0][2:] in names]
    assert len(table_lines) == len(rows) + len(runs)


def test_bicubic_row_on_a_real_photo(tmp_path, photos):
    bench = _tool()
    hr = crop(photos["coffee"], 96, 60, 200)
    (tmp_path / "HR").mkdir()
    write_image(tmp_path / "HR" / "coffee.png", hr)
    rows = bench.quality_table([tmp_path], bench.methods([], None, "auto"), niqe=False)
    assert [r["method"] for r in rows] == ["bicubic"]
    # a bicubic round trip of a detailed photo is far from perfect but not noise
    assert 20 < rows[0]["psnr"] < 35 and rows[0]["sec_per_image"] > 0
    text = bench.markdown(rows, ([], []), "cmd")
    assert f"| {tmp_path.name} | bicubic |" in text
    import os
    assert f"on {len(os.sched_getaffinity(0))} CPU cores (" in text  # the machine it ran on


def test_plot_has_a_psnr_and_a_niqe_row_per_data_set(tmp_path):
    from PIL import Image
    bench = _tool()
    rows = [{"data": d, "method": m, "psnr": p, "niqe": n, "sec_per_image": t}
            for d in ("Set5", "Set14")
            for m, p, n, t in (("bicubic", 28.4, 8.5, 0.02), ("MMSR routed", 30.3, 9.1, 0.2))]
    bench.plot(rows, tmp_path / "p.png")
    two_rows = Image.open(tmp_path / "p.png").size
    bench.plot([{**r, "niqe": None} for r in rows], tmp_path / "q.png")
    one_row = Image.open(tmp_path / "q.png").size
    assert two_rows[0] == one_row[0] and two_rows[1] > one_row[1] * 1.5
