"""Training engine on CPU with tiny models on real photos (scikit-image)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT
from conftest import load_weights  # noqa: E402
from paddle_mmsr.config import merge_sections

TOOL = str(ROOT / "tools/train.py")
VGG_FILE = "vgg19_relu2_2.safetensors"  # in train_data: real-shaped, untrained, fixed weights


@pytest.fixture(scope="session")
def train_data(tmp_path_factory, photos):
    """A 3-class TVAT split of real photos, a 2-image validation folder and VGG19 weights.

    The VGG19 file has the real layout (conv1_1 .. conv2_2) with fixed untrained
    weights, so no test depends on weights cached on the machine."""
    import paddle
    from paddle_mmsr.image.io import write_image
    from paddle_mmsr.image.resize import imresize
    from paddle_mmsr.data.split import split_folder
    from paddle_mmsr.models.vgg import random_vgg19_state
    root = tmp_path_factory.mktemp("train_data")
    from paddle_mmsr.core.safe_files import save_tensors
    save_tensors(root / VGG_FILE, random_vgg19_state("relu2_2", 7))
    for n in ("astronaut", "coffee", "chelsea", "rocket"):
        write_image(root / "hr" / f"{n}.png", photos[n][:192, :192])
    split_folder(root / "hr", root / "split", scale=4, sub_size=64, step=64, n_calibrate=3)
    for n, (y, x) in (("coffee", (200, 300)), ("chelsea", (100, 200))):
        hr = np.ascontiguousarray(photos[n][y:y + 64, x:x + 64])
        write_image(root / "val" / "HR" / f"{n}.png", hr)
        write_image(root / "val" / "LR_bicubic_X4" / f"{n}x4.png",
                    imresize(hr, output_shape=(16, 16)))
    return root


def tiny_config(root: Path, out: Path, pretrain=3, adversarial=2, **sections) -> dict:
    cfg = {
        "name": "tiny", "output": str(out), "scale": 4, "device": "cpu", "seed": 3,
        "data": {"split": str(root / "split"), "crop": 32, "batch_size": 2},
        "model": {"generator": {"channels": 8, "form": "fast", "head_kernel": 3,
                                "tail_kernel": 3}, "discriminator_channels": 8},
        "classes": [{"spec": "1-2"}, {"spec": "1-2"}, {"spec": "2-2"}],
        "train": {"pretrain_iters": pretrain, "adversarial_iters": adversarial},
        "optim": {"pretrain": {"lr": 1e-3, "milestones": [2], "gamma": 0.5}},
        "loss": {"vgg_layer": "relu2_2", "vgg_weights": str(root / VGG_FILE)},
        "val": {"dir": str(root / "val"), "every": 2, "backend": "dygraph"},
        "log": {"every": 1, "images_every": 2, "histograms_every": 3, "progress": False},
        "checkpoint": {"every": 2, "minutes": 0},
    }
    return merge_sections(cfg, sections)


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def read_vdl(vdl_dir: Path, kind: str, tag: str, value) -> list:
    """[(step, value(record))] of one VisualDL tag ("scalar", "image", ...), all record files."""
    from visualdl import LogReader
    out = []
    for f in sorted(vdl_dir.glob("vdlrecords.*.log")):
        reader = LogReader(file_path=str(f))
        if tag in reader.get_tags().get(kind, []):
            out += [(r.id, value(r)) for r in reader.get_data(kind, tag)]
    return out


def read_scalars(vdl_dir: Path, tag: str) -> list:
    return read_vdl(vdl_dir, "scalar", tag, lambda r: r.value)


def read_images(vdl_dir: Path, tag: str) -> list:
    """[(step, uint8 array)] of a VisualDL image tag."""
    import io
    from PIL import Image
    return read_vdl(vdl_dir, "image", tag, lambda r: np.asarray(
        Image.open(io.BytesIO(r.image.encoded_image_string)).convert("RGB")))


def ckpt_step(path: Path) -> int:
    from paddle_mmsr.train.checkpoint import load_checkpoint
    return load_checkpoint(path)["progress"]["step"]


# ---------------------------------------------------------------- tests
def test_full_run_single_process(tmp_path, train_data):
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.yaml", tiny_config(train_data, out,
                                                        train={"ema_decay": 0.9}))
    r = subprocess.run([sys.executable, TOOL, "-c", str(cfg)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for i in range(3):
        d = out / f"class{i}"
        assert (d / "latest.ckpt.safetensors").exists() and (d / "best.ckpt.safetensors").exists()
        assert (d / "g_final.safetensors").exists() and (d / "log.txt").exists()
        assert ckpt_step(d / "latest.ckpt.safetensors") == 5
        s = json.loads((d / "summary.json").read_text())
        assert s["phases"]["pretrain"]["iterations"] == 3
        assert s["phases"]["adversarial"]["iterations"] == 2
        assert s["phases"]["adversarial"]["samples_per_s"] > 0 and s["last_val"]["psnr"] > 15
        steps = [st for st, _ in read_scalars(out / "vdl" / f"class{i}", "loss/d_total")]
        assert steps == sorted(steps) and steps[-1] == 5
        g_steps = [st for st, _ in read_scalars(out / "vdl" / f"class{i}", "loss/g_pixel")]
        assert g_steps == [1, 2, 3]
        assert read_scalars(out / "vdl" / f"class{i}", "val/psnr")
    summary = json.loads((out / "summary.json").read_text())
    assert [c["status"] for c in summary["classes"]] == ["done"] * 3
    assert summary["routed_val"]["psnr"] > 15
    # time to quality: per class and routed, PSNR-Y against cumulative train seconds
    for c in summary["classes"]:
        assert [p["iteration"] for p in c["curve"]] == [2, 3, 4, 5]  # every 2 + phase ends
        times = [p["train_seconds"] for p in c["curve"]]
        assert times == sorted(times) and 0 < times[-1] <= c["train_seconds"]
        assert c["curve"][-1]["psnr_y"] == pytest.approx(c["last_val"]["psnr"], abs=1e-4)
    routed = summary["routed_curve"]
    assert [p["iteration"] for p in routed] == [2, 3, 4, 5]
    for k, p in enumerate(routed):
        per_class = [c["curve"][k]["train_seconds"] for c in summary["classes"]]
        assert p["class_seconds"] == pytest.approx(per_class)
        assert p["train_seconds"] == pytest.approx(sum(per_class), abs=1e-2)
    # the last point is the final bundle, scored by the same routed reconstruction
    assert routed[-1]["psnr_y"] == pytest.approx(summary["routed_val"]["psnr"], abs=1e-3)
    assert [s for s, _ in read_scalars(out / "vdl" / "routed", "routed/psnr_y")] == [2, 3, 4, 5]
    assert read_scalars(out / "vdl" / "class0", "val/psnr_y_by_train_seconds")
    # VisualDL pictures: labelled LR | bicubic | SR | HR strips; the train/ one is a crop
    # of the class's own training data (its first sub-image), the val/ one of the val photo
    from paddle_mmsr.data.manifest import read_manifest
    from paddle_mmsr.image.io import read_image
    hr_panels = []
    for i in range(3):
        steps, pictures = zip(*read_images(out / "vdl" / f"class{i}", "train/lr_bicubic_sr_hr"))
        assert steps == (2, 3, 4, 5)
        pic = pictures[-1]
        from paddle_mmsr.image.panels import LABEL_HEIGHT
        band, strip = pic[:LABEL_HEIGHT], pic[LABEL_HEIGHT:]
        assert (band < 128).any() and strip.shape[1] == 4 * strip.shape[0] + 3 * 4
        first = read_image(read_manifest(train_data / f"split/class{i}.tsv")[0]["path"])
        side = strip.shape[0]
        y, x = (first.shape[0] - side) // 2, (first.shape[1] - side) // 2
        hr_panel = strip[:, 3 * (side + 4):]
        np.testing.assert_array_equal(hr_panel, first[y:y + side, x:x + side, :3])
        hr_panels.append(hr_panel)
        (_, val_pic), = read_images(out / "vdl" / f"class{i}", "val/lr_bicubic_sr_hr")[-1:]
        assert val_pic.shape != pic.shape or not np.array_equal(val_pic, pic)
    assert not np.array_equal(hr_panels[0], hr_panels[2])  # each class its own data
    from paddle_mmsr.core.manifest import load_bundle
    from paddle_mmsr.sr.reconstruct import MMSR
    b = load_bundle(out / "bundle")
    assert [c.spec for c in b.classes] == ["1-2", "1-2", "2-2"]
    assert b.tvat.bounds == yaml.safe_load((train_data / "split/split.yaml").read_text()
                                           )["tvat"]["bounds"]
    assert b.classes[0].generator["form"] == "fast"
    lr = (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)
    assert MMSR.load(out / "bundle", backend="dygraph").upscale(lr).shape == (80, 96, 3)
    assert "UNTRAINED VGG19" not in r.stdout


def _train_in_process(cfg_dict, class_id=0, resume="auto", stop=lambda: False):
    import paddle
    from paddle_mmsr.config import parse_config
    from paddle_mmsr.train.builders import load_vgg
    from paddle_mmsr.train.loop import train_class
    from paddle_mmsr.train.run import resolve_jobs
    paddle.set_device("cpu")
    cfg = parse_config(cfg_dict)
    jobs, _, _ = resolve_jobs(cfg)
    vgg = (load_vgg(cfg.loss, log=lambda m: None, seed=cfg.seed)
           if cfg.train.adversarial_iters else None)
    return train_class(cfg, jobs[class_id], vgg=vgg, resume=resume, stop=stop, console=False)


def test_resume_continues_exactly(tmp_path, train_data):
    """Stopped mid phase 2 and resumed == uninterrupted: same weights, step, lr, batches."""
    import paddle
    ref = tiny_config(train_data, tmp_path / "ref", pretrain=3, adversarial=3)
    _train_in_process(ref)
    part = tiny_config(train_data, tmp_path / "part", pretrain=3, adversarial=3)
    calls = {"n": 0}

    def stop_after_four():
        calls["n"] += 1
        return calls["n"] > 4  # checked before each step: stops at step 4

    from paddle_mmsr.train.loop import Interrupted
    with pytest.raises(Interrupted):
        _train_in_process(part, stop=stop_after_four)
    assert ckpt_step(tmp_path / "part/class0/latest.ckpt.safetensors") == 4
    _train_in_process(part, resume="require")
    a = load_weights(tmp_path / "ref/class0/g_final.safetensors")
    b = load_weights(tmp_path / "part/class0/g_final.safetensors")
    for k in a:
        np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    from paddle_mmsr.train.checkpoint import load_checkpoint
    sa = load_checkpoint(tmp_path / "ref/class0/latest.ckpt.safetensors")
    sb = load_checkpoint(tmp_path / "part/class0/latest.ckpt.safetensors")
    assert sa["progress"]["batches"] == sb["progress"]["batches"] == 6
    assert sa["sched_pretrain"]["last_lr"] == sb["sched_pretrain"]["last_lr"] == pytest.approx(5e-4)
    log = (tmp_path / "part/class0/log.txt").read_text()
    assert "resumed from" in log and "at step 4/6" in log
    vdl = tmp_path / "part/vdl/class0"  # the resumed run appends to the same VisualDL file
    assert len(list(vdl.glob("vdlrecords.*.log"))) == 1
    assert [s for s, _ in read_scalars(vdl, "loss/g_total")] == [4, 5, 6]
    assert [s for s, _ in read_scalars(vdl, "loss/g_pixel")] == [1, 2, 3]
    # a config with fewer iterations than the checkpoint is refused, not silently "done"
    short = tiny_config(train_data, tmp_path / "part", pretrain=3, adversarial=2)
    with pytest.raises(RuntimeError, match="past this config's 3 \\+ 2 iterations"):
        _train_in_process(short)


def test_ema_switched_on_at_resume_starts_from_the_trained_generator(tmp_path, train_data):
    """A phase-1 run saved without EMA, continued with ema_decay: EMA starts at G, not at init."""
    import paddle
    out = tmp_path / "run"
    _train_in_process(tiny_config(train_data, out, pretrain=3, adversarial=0))
    g3 = load_weights(out / "class0/g_final.safetensors")
    _train_in_process(tiny_config(train_data, out, pretrain=3, adversarial=1,
                                  train={"ema_decay": 0.999}))
    ema = load_weights(out / "class0/g_final.safetensors")  # the export is the EMA
    for k in g3:  # one step at decay 0.999 moves EMA by 0.1% of the gap: it stays at G
        np.testing.assert_allclose(ema[k].numpy(), g3[k].numpy(), rtol=1e-2, atol=1e-4,
                                   err_msg=k)


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, train_data, monkeypatch):
    import paddle
    from paddle_mmsr.train import loop
    real = loop.pretrain_step
    n = {"steps": 0}

    def poisoned(*args, **kw):
        n["steps"] += 1
        out = real(*args, **kw)
        if n["steps"] >= 5:
            out["g_pixel"] = paddle.to_tensor(float("nan"))
        return out

    monkeypatch.setattr(loop, "pretrain_step", poisoned)
    cfg = tiny_config(train_data, tmp_path / "out", pretrain=8, adversarial=0,
                      val={"dir": None}, log={"every": 3}, checkpoint={"every": 4})
    with pytest.raises(loop.NonFiniteLoss, match=r"non-finite loss.*g_pixel.*step 4\)"):
        _train_in_process(cfg)
    assert ckpt_step(tmp_path / "out/class0/latest.ckpt.safetensors") == 4
    assert "non-finite" in (tmp_path / "out/class0/log.txt").read_text()


def test_nonfinite_loss_before_any_checkpoint_names_no_missing_file(tmp_path, train_data,
                                                                   monkeypatch):
    import paddle
    from paddle_mmsr.train import loop
    real = loop.pretrain_step

    def poisoned(*args, **kw):
        return {**real(*args, **kw), "g_pixel": paddle.to_tensor(float("nan"))}
    monkeypatch.setattr(loop, "pretrain_step", poisoned)
    cfg = tiny_config(train_data, tmp_path / "out", pretrain=8, adversarial=0,
                      val={"dir": None}, log={"every": 2}, checkpoint={"every": 100})
    with pytest.raises(loop.NonFiniteLoss, match="no checkpoint was written yet") as e:
        _train_in_process(cfg)
    assert "last good checkpoint is" not in str(e.value)
    assert not (tmp_path / "out/class0/latest.ckpt.safetensors").exists()


def test_sigkill_then_auto_resume(tmp_path, train_data):
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.yaml", tiny_config(
        train_data, out, pretrain=400, adversarial=0, classes=[{"spec": "1-2"}],
        data={"split": None, "sources": [str(train_data / "split/class0.tsv")]},
        val={"dir": None}, checkpoint={"every": 3}, log={"every": 5}))
    proc = subprocess.Popen([sys.executable, TOOL, "-c", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    latest = out / "class0/latest.ckpt.safetensors"
    deadline = time.time() + 120
    while time.time() < deadline and not (latest.exists() and ckpt_step(latest) >= 9):
        time.sleep(0.2)
    proc.kill()  # SIGKILL: no chance to save
    proc.wait()
    step = ckpt_step(latest)
    assert 9 <= step < 400
    r = subprocess.run([sys.executable, TOOL, "-c", str(cfg),
                        "-o", f"train.pretrain_iters={step + 4}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resumed from {latest} at step {step}/" in r.stdout
    assert ckpt_step(latest) == step + 4
    assert (out / "bundle/manifest.yaml").exists()


def test_missing_vgg_weights_fail_before_training(tmp_path, train_data):
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.yaml", tiny_config(
        train_data, out, loss={"vgg_weights": str(tmp_path / "no_vgg.safetensors")}))
    r = subprocess.run([sys.executable, TOOL, "-c", str(cfg)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0
    assert "VGG19 weights" in r.stderr and "get_vgg19.py" in r.stderr
    assert not (out / "class0").exists()


def test_assemble_only_refuses_unfinished_classes(tmp_path, train_data):
    cfg = write_config(tmp_path / "c.yaml", tiny_config(train_data, tmp_path / "out"))
    r = subprocess.run([sys.executable, TOOL, "-c", str(cfg), "--assemble"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "bundle NOT assembled" in r.stdout
    s = json.loads((tmp_path / "out/summary.json").read_text())
    assert [c["status"] for c in s["classes"]] == ["missing"] * 3
    assert os.path.exists(tmp_path / "out/summary.json")


def test_loader_workers_give_the_same_batches(train_data):
    from paddle_mmsr.data.dataset import SRDataset
    from paddle_mmsr.train.batches import batch_stream
    ds = SRDataset(train_data / "split/class0.tsv", scale=4, crop=32, seed=5)
    inline = batch_stream(ds, 4, seed=1, start=3, workers=0)
    workers = batch_stream(ds, 4, seed=1, start=3, workers=2)
    for _ in range(2):
        (la, ha), (lb, hb) = next(inline), next(workers)
        np.testing.assert_array_equal(la.numpy(), lb.numpy())
        np.testing.assert_array_equal(ha.numpy(), hb.numpy())


def test_train_seconds_survive_resume_and_exclude_validation(tmp_path, train_data, monkeypatch):
    """The time-to-quality curve: cumulative train seconds across a stop/resume,
    without the time spent validating."""
    from paddle_mmsr.train import loop
    from paddle_mmsr.train.checkpoint import load_checkpoint
    real, pause = loop.validate_generator, 0.4

    def slow_validation(*args, **kw):
        time.sleep(pause)
        return real(*args, **kw)

    monkeypatch.setattr(loop, "validate_generator", slow_validation)
    cfg = tiny_config(train_data, tmp_path / "out", pretrain=3, adversarial=3)
    calls = {"n": 0}

    def stop_after_four():
        calls["n"] += 1
        return calls["n"] > 4

    t0 = time.perf_counter()
    with pytest.raises(loop.Interrupted):
        _train_in_process(cfg, stop=stop_after_four)
    wall_first = time.perf_counter() - t0
    saved = load_checkpoint(tmp_path / "out/class0/latest.ckpt.safetensors")["progress"]
    assert [p["iteration"] for p in saved["curve"]] == [2, 3, 4]
    first_s = sum(saved["seconds"].values())
    assert first_s + 3 * pause <= wall_first  # three validations, none of them counted
    summary = _train_in_process(cfg, resume="require")
    curve = summary["curve"]
    assert [p["iteration"] for p in curve] == [2, 3, 4, 6]
    assert curve[:3] == saved["curve"]  # kept from the checkpoint, not measured again
    times = [p["train_seconds"] for p in curve]
    assert times == sorted(times) and times[3] > times[2] >= first_s - 1e-3
    assert summary["train_seconds"] >= times[3] > first_s  # continues, not restarted at 0
    assert summary["train_seconds"] == pytest.approx(
        sum(ph["seconds"] for ph in summary["phases"].values()), abs=2e-3)
    snaps = sorted(p.name for p in (tmp_path / "out/class0/snapshots").iterdir())
    assert snaps == [f"step{i:08d}.safetensors" for i in (2, 3, 4, 6)]


def test_changed_split_is_not_silently_reused(tmp_path, train_data):
    import shutil
    split = tmp_path / "split"
    shutil.copytree(train_data / "split", split)
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.yaml", tiny_config(
        train_data, out, pretrain=2, adversarial=0, data={"split": str(split)},
        val={"dir": None}))
    cmd = [sys.executable, TOOL, "-c", str(cfg)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = (split / "class1.tsv").read_text().splitlines()
    (split / "class1.tsv").write_text("\n".join(rows[:-1]) + "\n")  # one sub-image fewer
    r = subprocess.run(cmd + ["-o", "train.pretrain_iters=3"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode != 0
    assert "class1: the training split changed since its checkpoint" in r.stderr
    assert "manifest class1.tsv changed" in r.stderr and "--fresh" in r.stderr
    assert ckpt_step(out / "class0/latest.ckpt.safetensors") == 2  # stopped before training anything
    meta = yaml.safe_load((split / "split.yaml").read_text())
    meta["tvat"]["bounds"] = [b + 0.5 for b in meta["tvat"]["bounds"]]
    (split / "split.yaml").write_text(yaml.safe_dump(meta))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "tvat.bounds" in r.stderr
    r = subprocess.run(cmd + ["--fresh"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run(cmd + ["-o", "train.pretrain_iters=3"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and ckpt_step(out / "class1/latest.ckpt.safetensors") == 3


def _render(raw: str) -> list:
    """Terminal lines as shown: each carriage return rewrites from column 0."""
    out = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        shown = ""
        for seg in line.split("\r"):
            shown = seg + shown[len(seg):]
        out.append(shown.rstrip())
    return out


def _run_in_terminal(cmd, timeout=300, signal_after=None, returncode=0) -> str:
    """Output of ``cmd`` run on a pseudo-terminal (150 columns); ``signal_after``:
    send SIGTERM once a line with this text is written and the bar drawn below it."""
    import fcntl
    import pty
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 150, 0, 0))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
        seen = b"".join(chunks)
        at = seen.find(signal_after.encode()) if signal_after else -1
        end = seen.find(b"\n", at) if at >= 0 else -1
        if end >= 0 and b"%|" in seen[end:]:  # that line written, the bar drawn again
            proc.terminate()
            signal_after = None
    proc.wait(timeout=timeout)
    os.close(master)
    assert proc.returncode == returncode, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_console_lines_stay_off_the_progress_bar(tmp_path, train_data):
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.yaml", tiny_config(
        train_data, out, pretrain=40, adversarial=0, classes=[{"spec": "1-2"}],
        data={"split": None, "sources": [str(train_data / "split/class0.tsv")], "crop": 64,
              "batch_size": 4},  # slow enough for the bar to redraw between log lines
        log={"every": 20, "progress": True}, val={"every": 20}, checkpoint={"every": 20}))
    raw = _run_in_terminal([sys.executable, TOOL, "-c", str(cfg)])
    assert "%|" in raw  # a bar was drawn on the terminal
    lines = [l for l in _render(raw) if "[class0]" in l]
    assert any(" step 20 pretrain" in l for l in lines)
    for l in lines:  # every log line on its own line, none glued to the bar
        assert l[:4].isdigit() and "%|" not in l, l
    # a resumed run in a pipe (notebook cell, launcher worker log): no bar, no carriage
    # returns, progress in the log lines; no notices the user cannot act on
    r = subprocess.run([sys.executable, TOOL, "-c", str(cfg), "-o", "train.pretrain_iters=44",
                        "-o", "log.every=2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    text = r.stdout + r.stderr
    assert "\r" not in text and "%|" not in text
    assert "step 44 pretrain" in r.stdout and "(44/44, 0:00:00 left)" in r.stdout
    for noise in ("No ccache found", "VisualDL will add logs", "is exists"):
        assert noise not in raw + text


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_stop_message_stays_off_the_progress_bar(tmp_path, train_data):
    cfg = write_config(tmp_path / "c.yaml", tiny_config(
        train_data, tmp_path / "out", pretrain=400, adversarial=0, classes=[{"spec": "1-2"}],
        data={"split": None, "sources": [str(train_data / "split/class0.tsv")], "crop": 64,
              "batch_size": 4},
        log={"every": 20, "progress": True}, val={"dir": None}, checkpoint={"every": 1000}))
    raw = _run_in_terminal([sys.executable, TOOL, "-c", str(cfg)],
                           signal_after="step 20 pretrain", returncode=128 + 15)
    lines = _render(raw)
    assert "signal 15: saving a checkpoint and stopping" in lines
    assert any(l.endswith("(stop requested)") and l[:4].isdigit() for l in lines)



def test_warm_start_draws_from_all_sub_images_then_the_class(train_data):
    """classes.N.warm_iters: the first batches come from the split's all.tsv, the
    rest from the class's own manifest, and a resume mid-way gets the same batches."""
    from paddle_mmsr.data.dataset import SRDataset
    from paddle_mmsr.train.batches import batch_stream, warm_then
    split = train_data / "split"
    own = SRDataset(split / "class0.tsv", scale=4, crop=32, seed=5)
    every = SRDataset(split / "all.tsv", scale=4, crop=32, seed=5)
    assert len(every) > len(own)
    stream = lambda data, start: batch_stream(data, 2, seed=1, start=start)  # noqa: E731
    full = [h.numpy() for _, h in
            (b for _, b in zip(range(5), warm_then(stream, every, 3, own)))]
    expect = [h.numpy() for _, h in (b for _, b in zip(range(3), stream(every, 0)))]
    expect += [h.numpy() for _, h in (b for _, b in zip(range(2), stream(own, 0)))]
    for a, b in zip(full, expect):
        np.testing.assert_array_equal(a, b)
    for start in (2, 4):  # resumed at batch 2 (still warm) and 4 (past it)
        resumed = [h.numpy() for _, h in
                   (b for _, b in zip(range(5 - start), warm_then(stream, every, 3, own, start)))]
        for a, b in zip(resumed, full[start:]):
            np.testing.assert_array_equal(a, b)


def test_warm_iters_run_and_are_checked(tmp_path, train_data):
    from paddle_mmsr.config import ConfigError, parse_config
    cfg = tiny_config(train_data, tmp_path / "warm", pretrain=3, adversarial=0,
                      classes=[{"spec": "1-2", "warm_iters": 2}, {"spec": "1-2"},
                               {"spec": "2-2"}])
    _train_in_process(cfg)
    log = (tmp_path / "warm/class0/log.txt").read_text()
    assert "warm start: the first 2 steps on" in log and "all.tsv" in log
    too_long = merge_sections(cfg, {"classes": [{"spec": "1-2", "warm_iters": 4},
                                                {"spec": "1-2"}, {"spec": "2-2"}]})
    with pytest.raises(ConfigError, match="classes.0.warm_iters: 4 is not within its 3"):
        parse_config(too_long)
    no_split = merge_sections(cfg, {"data": {"split": None, "sources": [str(train_data / "hr")]},
                                    "classes": [{"spec": "1-2", "warm_iters": 1}],
                                    "tvat": {"bounds": []}})
    with pytest.raises(ConfigError, match="warm_iters needs data.split"):
        parse_config(no_split)


def _bundle_states(root: Path) -> list:
    from paddle_mmsr.core.manifest import load_bundle
    from paddle_mmsr.models.weights import build_class_generator
    b = load_bundle(root)
    return [{k: v.numpy() for k, v in build_class_generator(b, e).state_dict().items()} for e in b.classes]


def test_init_bundle_starts_every_class_from_the_bundle(tmp_path, train_data):
    """A fine-tuning run starts G from the given bundle (a tiny lr keeps it there; a
    random start would not match), and a bundle of other networks is refused."""
    quiet = {"val": {"dir": None}}
    a = tiny_config(train_data, tmp_path / "a", pretrain=2, adversarial=0, **quiet)
    r = subprocess.run([sys.executable, TOOL, "-c", str(write_config(tmp_path / "a.yaml", a))],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    b = tiny_config(train_data, tmp_path / "b", pretrain=1, adversarial=0,
                    train={"init_bundle": str(tmp_path / "a/bundle")},
                    optim={"pretrain": {"lr": 1e-12}}, **quiet)
    r = subprocess.run([sys.executable, TOOL, "-c", str(write_config(tmp_path / "b.yaml", b))],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for sa, sb in zip(_bundle_states(tmp_path / "a/bundle"), _bundle_states(tmp_path / "b/bundle")):
        for k in sa:
            np.testing.assert_allclose(sa[k], sb[k], atol=1e-8, err_msg=k)
    from paddle_mmsr.core.manifest import BundleError
    other = tiny_config(train_data, tmp_path / "d", pretrain=1, adversarial=0,
                        classes=[{"spec": "2-2"}, {"spec": "1-2"}, {"spec": "2-2"}],
                        train={"init_bundle": str(tmp_path / "a/bundle")}, **quiet)
    with pytest.raises(BundleError, match="init_bundle.*missing keys|init_bundle.*unexpected keys"):
        _train_in_process(other)
