import subprocess
import sys

import yaml

from conftest import ROOT
from paddle_mmsr.data.dataset import read_manifest
from paddle_mmsr.image.io import write_image


def test_split_tool_on_real_photos(tmp_path, photos):
    hr = tmp_path / "DIV2K_train_HR"
    for n in ("astronaut", "coffee", "chelsea", "rocket"):
        write_image(hr / f"{n}.png", photos[n][:256, :256])
    (hr / "broken.png").write_text("not an image")
    out = tmp_path / "split"
    r = subprocess.run([sys.executable, str(ROOT / "tools/split_tvat.py"), str(hr), str(out),
                        "--sub-size", "128", "--step", "64", "--calibrate", "3"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "broken.png" in r.stderr and "skipped 1" in r.stderr
    info = yaml.safe_load((out / "split.yaml").read_text())
    assert info["n_subimages"] == 4 * 9
    counts = [c["count"] for c in info["classes"]]
    assert sum(counts) == 36 and min(counts) >= 10  # calibrated: balanced classes
    b = info["tvat"]["bounds"]
    for c in range(3):
        for row in read_manifest(out / f"class{c}.tsv"):
            lo = b[c - 1] if c else float("-inf")
            hi = b[c] if c < 2 else float("inf")
            assert lo <= row["tvat"] < hi
    assert (out / "histogram.png").stat().st_size > 1000
    assert "| class |" in (out / "summary.md").read_text()


def test_split_bad_args(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "tools/split_tvat.py"), str(tmp_path / "nope"),
                        str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "not a folder" in r.stderr


def test_split_of_a_folder_without_usable_images_says_so_and_leaves_nothing(tmp_path):
    tool = [sys.executable, str(ROOT / "tools/split_tvat.py")]
    empty, broken = tmp_path / "empty", tmp_path / "broken"
    empty.mkdir()
    broken.mkdir()
    (broken / "a.png").write_text("not an image")
    for hr, why in ((empty, f"no images found in {empty}"), (broken, "no sub-images were made")):
        out = tmp_path / f"out_{hr.name}"
        r = subprocess.run([*tool, str(hr), str(out)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith(f"error: {why}")
        assert not out.exists()
