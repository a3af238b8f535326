"""GPU check: the GPU paths of training and reconstruction, in a few minutes
on one to four GPUs, with a pass/fail table at the end.

    mmsr-gpu-check            # on a machine with a GPU build of Paddle
    mmsr-gpu-check --cpu      # the checks that need no GPU, on CPU ranks

Checks (tiny models on scikit-image photos, in a temporary folder):
  ranks        each rank of a launch on its own card (log lines, process-to-GPU map)
  amp_ema      AMP + EMA steps finite, and a stopped-and-resumed run equal to an
               uninterrupted one
  resume_gpus  a checkpoint made with 2 visible GPUs resumed with 1
  upscale      mmsr-upscale --device gpu, inference and dygraph backends,
               within 1/255 of the CPU output
  tensorrt     --tensorrt on the installed Paddle: works (within 1/255) or is
               refused with a clear message
  two_nodes    two launchers on this host forming one job (--nnodes 2)
Exit status 0 when nothing failed (skipped checks do not fail).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

import paddle_mmsr
from paddle_mmsr.cli import needs_paddle
from paddle_mmsr.config import merge_sections

ROOT = Path(paddle_mmsr.__file__).resolve().parents[1]  # the folder that holds the package
TRAIN = [sys.executable, "-m", "paddle_mmsr.cli.train"]
UPSCALE = [sys.executable, "-m", "paddle_mmsr.cli.upscale"]


def launch_script(work: Path) -> str:
    """A script for paddle.distributed.launch (it runs files, not modules)."""
    path = work / "mmsr_train.py"
    path.write_text("from paddle_mmsr.cli.train import main\nraise SystemExit(main())\n")
    return str(path)


def _env(**extra) -> dict:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def make_data(root: Path) -> Path:
    """A 3-class TVAT split of real photos (scikit-image) and a small val folder."""
    from skimage import data
    from paddle_mmsr.data.split import split_folder
    from paddle_mmsr.image.io import write_image
    from paddle_mmsr.image.resize import imresize
    for n in ("astronaut", "coffee", "chelsea", "rocket"):
        write_image(root / "hr" / f"{n}.png", getattr(data, n)()[:192, :192])
    split_folder(root / "hr", root / "split", scale=4, sub_size=64, step=64, n_calibrate=3)
    hr = np.ascontiguousarray(data.coffee()[200:264, 300:364])
    write_image(root / "val/HR/coffee.png", hr)
    write_image(root / "val/LR_bicubic_X4/coffeex4.png", imresize(hr, output_shape=(16, 16)))
    write_image(root / "chelsea_lr.png", imresize(data.chelsea(), 0.25))  # for the upscale checks
    return root


def tiny_config(data: Path, out, device: str, **over) -> dict:
    cfg = {"name": "smoke", "output": str(out), "scale": 4, "device": device, "seed": 3,
           "data": {"split": str(data / "split"), "crop": 32, "batch_size": 2},
           "model": {"generator": {"channels": 8, "form": "fast", "head_kernel": 3,
                                   "tail_kernel": 3}, "discriminator_channels": 8},
           "classes": [{"spec": "1-2"}, {"spec": "1-2"}, {"spec": "2-2"}],
           "train": {"pretrain_iters": 4, "adversarial_iters": 4},
           "loss": {"vgg_layer": "relu2_2", "vgg_weights": "random"},
           "val": {"dir": None},
           "log": {"every": 1, "images_every": 100, "histograms_every": 100, "progress": False},
           "checkpoint": {"every": 2, "minutes": 0}}
    return merge_sections(cfg, over)


def write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(cmd, cwd, timeout=600, **env):
    return subprocess.run(cmd, cwd=cwd, env=_env(**env), capture_output=True, text=True,
                          timeout=timeout)


def worker_logs(folder: Path) -> str:
    return "\n".join(f.read_text() for f in sorted(folder.glob("**/workerlog.*")))


# ------------------------------------------------------------ checks
def check_ranks(work, data, gpus, device):
    n = min(gpus, 4) if device == "gpu" else 3
    out = work / "ranks"
    cfg = write(work / "ranks.yaml", tiny_config(data, out / "out", device,
                                                 train={"pretrain_iters": 3,
                                                        "adversarial_iters": 0}))
    devices = ["--devices", ",".join(map(str, range(n)))] if device == "gpu" else \
        ["--nproc_per_node", str(n)]
    r = run([sys.executable, "-m", "paddle.distributed.launch", *devices, "--log_dir",
             str(out / "logs"), launch_script(work), "-c", str(cfg)], work)
    logs = worker_logs(out / "logs")
    found = dict(re.findall(r"\[rank (\d+)/\d+\] local rank \d+, pid \d+, device (\S+),", logs))
    if r.returncode != 0:
        return False, f"launch exit {r.returncode}: {logs[-400:]}"
    devs = [found.get(str(k)) for k in range(n)]
    if device == "gpu" and len(set(devs)) != n:
        return False, f"ranks share cards: {devs}"
    return True, "process -> device: " + ", ".join(f"rank {k}: {d}" for k, d in enumerate(devs))


def _train_in_process(cfg_dict, stop_after=None):
    import paddle
    from paddle_mmsr.config import parse_config
    from paddle_mmsr.train.builders import load_vgg
    from paddle_mmsr.train.loop import Interrupted, train_class
    from paddle_mmsr.train.run import resolve_jobs
    cfg = parse_config(cfg_dict)
    paddle.set_device("gpu:0" if cfg.device == "gpu" else "cpu")
    jobs, _, _ = resolve_jobs(cfg)
    vgg = load_vgg(cfg.loss, log=lambda m: None, seed=cfg.seed)
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return stop_after is not None and calls["n"] > stop_after
    try:
        return train_class(cfg, jobs[0], vgg=vgg, stop=stop, console=False)
    except Interrupted:
        return None


def check_amp_ema(work, data, gpus, device):
    over = dict(train={"amp": device == "gpu", "ema_decay": 0.9})
    ref = tiny_config(data, work / "amp_ref", device, **over)
    part = tiny_config(data, work / "amp_part", device, **over)
    s = _train_in_process(ref)
    _train_in_process(part, stop_after=6)  # stopped in phase 2, then resumed
    _train_in_process(part)
    from safetensors.numpy import load_file
    from paddle_mmsr.train.checkpoint import G_FINAL, LATEST, load_checkpoint
    a = load_file(str(work / "amp_ref/class0" / G_FINAL))
    b = load_file(str(work / "amp_part/class0" / G_FINAL))
    finite = all(np.isfinite(v).all() for v in a.values())
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    ck = load_checkpoint(work / "amp_part/class0" / LATEST)
    scalers = sorted(ck["progress"].get("scalers", {}))
    ok = finite and worst <= 1e-5 and (device != "gpu" or scalers)
    return ok, (f"finite {finite}, resumed vs uninterrupted max |dw| {worst:.2g}, scaler states "
                f"in checkpoint {scalers or 'none (amp off on CPU)'}, device {s['device']}")


def check_resume_gpus(work, data, gpus, device):
    if device != "gpu" or gpus < 2:
        return None, "needs 2 GPUs"
    cfg = write(work / "resume.yaml", tiny_config(data, work / "resume", "gpu",
                                                  train={"pretrain_iters": 40,
                                                         "adversarial_iters": 0},
                                                  classes=[{"spec": "1-2"}],
                                                  data={"split": None, "sources": [
                                                      str(data / "split/class0.tsv")]}))
    r = run([*TRAIN, "-c", str(cfg), "-o", "train.pretrain_iters=20"], work,
            CUDA_VISIBLE_DEVICES="0,1")
    if r.returncode != 0:
        return False, f"first run: {r.stderr[-300:]}"
    r = run([*TRAIN, "-c", str(cfg)], work, CUDA_VISIBLE_DEVICES="0")
    ok = r.returncode == 0 and "at step 20/40" in r.stdout
    return ok, "made with 2 visible GPUs, resumed with 1" + ("" if ok else f": {r.stdout[-300:]}")


def _bundle(work, data, device):
    out = work / "bundle_run"
    if not (out / "bundle/manifest.yaml").exists():
        cfg = write(work / "bundle.yaml", tiny_config(
            data, out, device, train={"pretrain_iters": 6, "adversarial_iters": 0}))
        r = run([*TRAIN, "-c", str(cfg)], work)
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-300:])
    return out / "bundle"


def _upscale(work, bundle, name, *args):
    from paddle_mmsr.image.io import read_image
    out = work / "up" / name
    r = run([*UPSCALE, str(work / "data/chelsea_lr.png"), "-o", str(out),
             "--bundle", str(bundle), *args], work)
    if r.returncode != 0:
        return None, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"
    return read_image(out / "chelsea_lr.png").astype(np.int16), None


def check_upscale(work, data, gpus, device):
    bundle = _bundle(work, data, device)
    ref, err = _upscale(work, bundle, "cpu", "--device", "cpu", "--backend", "inference")
    if err:
        return False, f"CPU: {err}"
    parts, ok = [], True
    dev = "gpu" if device == "gpu" else "cpu"
    for backend in ("inference", "dygraph"):
        img, err = _upscale(work, bundle, f"{dev}_{backend}", "--device", dev, "--backend", backend)
        if err:
            return False, f"{dev} {backend}: {err}"
        diff = int(np.abs(img - ref).max())
        ok &= diff <= 1
        parts.append(f"{dev} {backend} max diff {diff}/255")
    return ok, ", ".join(parts) + " (against CPU inference)"


def check_tensorrt(work, data, gpus, device):
    if device != "gpu":
        return None, "needs a GPU"
    bundle = _bundle(work, data, device)
    ref, err = _upscale(work, bundle, "cpu", "--device", "cpu", "--backend", "inference")
    img, err = _upscale(work, bundle, "trt", "--device", "gpu", "--tensorrt",
                        "--backend", "inference")
    if err:
        refused = "TensorRT" in err or "tensorrt" in err
        return refused, ("refused: " if refused else "failed: ") + err
    diff = int(np.abs(img - ref).max())
    return diff <= 1, f"ran, max diff {diff}/255 against CPU"


def check_two_nodes(work, data, gpus, device):
    out = work / "nodes"
    cfg = tiny_config(data, "out", device, train={"pretrain_iters": 3, "adversarial_iters": 0})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for n in range(2):
        node = out / f"node{n}"
        node.mkdir(parents=True)
        write(node / "c.yaml", cfg)
        if device == "gpu" and gpus >= 2:
            per = ["--devices", str(n)]
        else:
            per = ["--nproc_per_node", "1"]
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "paddle.distributed.launch", "--master", f"127.0.0.1:{port}",
             "--nnodes", "2", *per, "--log_dir", "logs", launch_script(work), "-c", "c.yaml"],
            cwd=node, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    codes = [p.wait(timeout=600) for p in procs]
    homes = [p for p in out.glob("node*/out/summary.json")]
    if codes != [0, 0] or len(homes) != 1:
        return False, f"exit codes {codes}: {worker_logs(out)[-400:]}"
    s = json.loads(homes[0].read_text())
    return bool(s["bundle"]), (f"exit codes {codes}, bundle on the rank-0 node with "
                               f"{len(s['classes'])} classes, devices "
                               + ", ".join(v["device"] for v in s["ranks"].values()))


CHECKS = {"ranks": check_ranks, "amp_ema": check_amp_ema, "resume_gpus": check_resume_gpus,
          "upscale": check_upscale, "tensorrt": check_tensorrt, "two_nodes": check_two_nodes}


@needs_paddle
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="mmsr-gpu-check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true",
                    help="run what needs no GPU on CPU ranks (GPU-only checks are skipped)")
    ap.add_argument("--only", nargs="+", choices=list(CHECKS), help="run these checks only")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temp dir)")
    a = ap.parse_args(argv)
    import paddle
    gpus = paddle.device.cuda.device_count() if paddle.is_compiled_with_cuda() else 0
    if not gpus and not a.cpu:
        print("no GPU visible to Paddle (CPU build, or CUDA_VISIBLE_DEVICES empty); "
              "run with --cpu for the CPU parts", file=sys.stderr)
        return 2
    device = "cpu" if a.cpu else "gpu"
    if device == "gpu":  # exact resume needs deterministic convolutions
        paddle.set_flags({"FLAGS_cudnn_deterministic": True})
    print(f"Paddle {paddle.__version__}, {gpus} GPU(s) visible, checks on {device}", flush=True)
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="mmsr-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    data = make_data(work / "data")
    rows = []
    for name, fn in CHECKS.items():
        if a.only and name not in a.only:
            continue
        t0 = time.perf_counter()
        try:
            ok, detail = fn(work, data, gpus, device)
        except Exception as e:  # a crash is a failure with its reason
            ok, detail = False, f"{type(e).__name__}: {e}"
        status = "skip" if ok is None else "PASS" if ok else "FAIL"
        rows.append((name, status, time.perf_counter() - t0, detail))
        print(f"{name}: {status} ({detail})", flush=True)
    print(f"\n{'check':<12} {'result':<6} {'seconds':>8}  detail")
    for name, status, sec, detail in rows:
        print(f"{name:<12} {status:<6} {sec:8.1f}  {detail}")
    if not a.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(s == "FAIL" for _, s, _, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
