"""The demo in one command: tools/prepare_demo.py, then configs/demo_cpu.yaml trains."""
import shlex
import subprocess
import sys

import yaml

from conftest import ROOT


def test_prepare_demo_then_train(tmp_path):
    root = tmp_path / "demo"
    cmd = [sys.executable, str(ROOT / "tools/prepare_demo.py"), "--root", str(root), "--no-vgg"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list((root / "photos").glob("*.png"))) == 8
    assert (root / "val/HR/coffee.png").is_file()
    split = yaml.safe_load((root / "split/split.yaml").read_text())
    counts = [c["count"] for c in split["classes"]]
    assert len(counts) == 3 and min(counts) > 0  # calibrated: no empty class
    ready = [l for l in r.stdout.splitlines() if l.startswith("ready: ")]
    assert ready, r.stdout
    train_cmd = shlex.split(ready[0][len("ready: "):])
    assert train_cmd[:4] == ["python", "tools/train.py", "-c", "configs/demo_cpu.yaml"]
    assert "train.adversarial_iters=0" in train_cmd and f"data.split={root / 'split'}" in train_cmd
    # a second run keeps what is there (a re-split would change the manifests)
    stamp = (root / "split/split.yaml").stat().st_mtime_ns
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0 and "already there" in r.stdout
    assert (root / "split/split.yaml").stat().st_mtime_ns == stamp
    # the printed command trains on what was prepared (iterations cut down)
    r = subprocess.run([sys.executable, *train_cmd[1:], "-o", "train.pretrain_iters=2",
                        "-o", f"output={tmp_path / 'out'}", "-o", "val.routed=false",
                        "-o", "val.curve=false"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (tmp_path / "out/bundle/manifest.yaml").is_file()
