"""The README's training commands, run as written on what the README's own steps
make, in a folder laid out as a fresh clone (iterations cut down with -o)."""
import json
import re
import shlex
import subprocess
import sys

from conftest import ROOT

SMALL = ["-o", "train.pretrain_iters=2", "-o", "train.adversarial_iters=0",
         "-o", "val.curve=false"]  # small, and no GAN phase: --no-vgg, as the README says


def readme_commands() -> list:
    """Every command line of the README's bash blocks, in order."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    lines = [re.sub(r"\s+#.*$", "", line).strip() for b in blocks for line in b.splitlines()]
    return [line for line in lines if line]


def run(args, cwd, timeout):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_readme_demo_then_multi_rank_cpu_line(tmp_path):
    cmds = readme_commands()
    prepare = cmds.index("python tools/prepare_demo.py")
    train = cmds.index("python tools/train.py -c configs/demo_cpu.yaml")
    ranks = next(i for i, c in enumerate(cmds) if c.startswith("python -m paddle.distributed.launch"))
    vdl = next(i for i, c in enumerate(cmds) if c.startswith("visualdl --logdir"))
    assert prepare < train < ranks  # the multi-rank line comes after the steps it needs
    for name in ("tools", "configs"):  # a clone's layout; the package comes from PYTHONPATH
        (tmp_path / name).symlink_to(ROOT / name)
    python = lambda cmd: [sys.executable, *shlex.split(cmd)[1:]]  # noqa: E731

    r = run(python(cmds[prepare]) + ["--no-vgg"], tmp_path, 300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = run(python(cmds[train]) + SMALL, tmp_path, 600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    logdir = shlex.split(cmds[vdl])[2]
    assert list((tmp_path / logdir).glob("class*/*")), f"the README's VisualDL folder {logdir} is empty"

    r = run(python(cmds[ranks]) + SMALL, tmp_path, 900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = tmp_path / re.search(r"-o output=(\S+)", cmds[ranks]).group(1)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 3 and (out / "bundle" / "manifest.yaml").is_file()
    assert all(c["status"] == "done" and c["steps"] == 2 for c in summary["classes"])
    # what the console shows: our lines, none of the launcher's configuration or Paddle's banners
    console = r.stdout + r.stderr
    assert "[rank 0/3]" in console and "summary:" in console
    for noise in ("LAUNCH INFO", "Modified FLAGS detected", "tcp_store.cc", "tcp_utils.cc"):
        assert noise not in console, noise


def test_readme_upscale_lines_as_written(tmp_path):
    """The README's image and video lines, on the files a clone has, with the default bundle."""
    import numpy as np
    from paddle_mmsr.image.io import read_image
    from paddle_mmsr.image.video_io import probe
    cmds = [c for c in readme_commands() if c.startswith(("python tools/upscale.py",
                                                         "python tools/upscale_video.py"))]
    assert len(cmds) == 2
    for name in ("tools", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    for cmd in cmds:
        r = run([sys.executable, *shlex.split(cmd)[1:]], tmp_path, 600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    lr = read_image(ROOT / "examples" / "chelsea_lr.png")
    out = read_image(tmp_path / "out" / "chelsea_lr.png")
    assert out.shape == (lr.shape[0] * 4, lr.shape[1] * 4, 3) and np.ptp(out) > 100
    video = probe(tmp_path / "out" / "coffee_pan_x4.mp4")
    assert (video.width, video.height, video.frames) == (384, 256, 24) and video.audio
