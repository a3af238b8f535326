"""GPU code paths, as far as a CPU build can exercise them: device strings, the
random state of the rank's own device, AMP scaler state in checkpoints,
TensorRT refusals, in-place EMA, DataLoader shared-memory sizing."""
import copy
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT


# ---------------------------------------------------------------- devices
def test_device_strings_and_visible_gpus():
    from paddle_mmsr.core.devices import parse_device
    from paddle_mmsr.sr.inference import check_device
    assert parse_device("cpu") == ("cpu", None)
    assert parse_device("gpu") == ("gpu", 0) and parse_device("gpu:3") == ("gpu", 3)
    for bad in ("gpu:x", "cuda", "gpu:-1", ""):
        with pytest.raises(ValueError, match="cpu, gpu or gpu:N"):
            parse_device(bad)
    check_device("cpu")
    check_device("gpu:1", visible=2)
    with pytest.raises(RuntimeError, match="sees no GPU"):
        check_device("gpu", visible=0)
    with pytest.raises(RuntimeError, match=r"only 2 GPU\(s\) visible"):
        check_device("gpu:2", visible=2)
    import paddle
    if not paddle.is_compiled_with_cuda():
        with pytest.raises(RuntimeError, match="no CUDA support"):
            check_device("gpu:0")


def test_rank_device_from_the_launcher():
    from paddle_mmsr.train.placement import RankInfo, device_for_rank
    info = RankInfo(rank=5, world_size=8, local_rank=1)
    assert device_for_rank("auto", info, env={}, gpus=0) == "cpu"
    assert device_for_rank("auto", info, env={"FLAGS_selected_gpus": "3"}, gpus=4) == "gpu:3"
    assert device_for_rank("gpu", info, env={}, gpus=4) == "gpu:1"  # local, not global rank
    with pytest.raises(RuntimeError, match="--nproc_per_node"):
        device_for_rank("gpu", info, env={}, gpus=0)
    with pytest.raises(RuntimeError, match="only 2 GPUs"):
        device_for_rank("gpu", info, env={"FLAGS_selected_gpus": "2"}, gpus=2)


def test_upscale_cli_refuses_a_gpu_it_cannot_use(tmp_path):
    import paddle
    tool = str(ROOT / "tools/upscale.py")
    img = ROOT / "examples/chelsea_lr.png"
    r = subprocess.run([sys.executable, tool, str(img), "-o", str(tmp_path), "--device", "gpu1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "use cpu, gpu or gpu:N" in r.stderr
    r = subprocess.run([sys.executable, tool, str(img), "-o", str(tmp_path), "--tensorrt"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--tensorrt needs --device gpu" in r.stderr
    if not paddle.is_compiled_with_cuda():
        r = subprocess.run([sys.executable, tool, str(img), "-o", str(tmp_path),
                            "--device", "gpu:1"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "no CUDA support" in r.stderr
        assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- random state
def test_rng_state_holds_only_the_rank_device(tmp_path):
    import paddle
    from paddle_mmsr.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
    paddle.set_device("cpu")
    paddle.seed(7)
    np.random.seed(7)
    state = rng_state()
    assert state["device"] == "cpu" and "gpu" not in state and "paddle" not in state
    a = paddle.rand([4]).numpy(), np.random.rand(3)
    # (a tensor beside it, as in every real checkpoint: paddle.load reads
    # tensor-free files differently)
    save_checkpoint(tmp_path / "c.ckpt.safetensors", {"rng": state, "w": paddle.ones([1])})
    set_rng_state(load_checkpoint(tmp_path / "c.ckpt.safetensors")["rng"])
    b = paddle.rand([4]).numpy(), np.random.rand(3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_rng_state_of_another_device_count_is_not_fatal():
    """An older checkpoint held one generator per visible device (4 GPUs here):
    restoring it with another count restores numpy/Python and says what it skipped."""
    import paddle
    from paddle_mmsr.train.checkpoint import rng_state, set_rng_state
    old = {"paddle": paddle.get_rng_state("cpu") * 4, "numpy": np.random.get_state(),
           "python": rng_state()["python"]}
    x = np.random.rand(2)
    notes = []
    set_rng_state(old, device="cpu", log=notes.append)
    np.testing.assert_array_equal(np.random.rand(2), x)
    assert notes and "not restored" in notes[0]


# ---------------------------------------------------------------- AMP
class _Scaler:
    """The GradScaler interface (a real one is disabled on CPU and keeps no state)."""

    def __init__(self, scale):
        self.state = {"scale": np.array([scale], np.float32), "incr_count": 7,
                      "use_dynamic_loss_scaling": True}

    def state_dict(self):
        return self.state

    def load_state_dict(self, st):
        self.state = st


def test_scaler_state_goes_through_the_checkpoint(tmp_path):
    from paddle_mmsr.train.checkpoint import load_checkpoint, load_scaler_state, save_checkpoint, scaler_state
    from paddle_mmsr.train.loop import Progress
    from dataclasses import asdict
    p = Progress(step=3)
    p.scalers = scaler_state({"pretrain": _Scaler(1024.0), "g": None, "d": _Scaler(8.0)})
    import paddle
    save_checkpoint(tmp_path / "c.ckpt.safetensors", {"progress": asdict(p), "w": paddle.ones([1])})
    back = Progress(**load_checkpoint(tmp_path / "c.ckpt.safetensors")["progress"])
    fresh = {"pretrain": _Scaler(1.0), "g": None, "d": _Scaler(1.0)}
    load_scaler_state(fresh, back.scalers)
    assert fresh["pretrain"].state["scale"] == [1024.0] and fresh["d"].state["scale"] == [8.0]
    assert fresh["d"].state["incr_count"] == 7
    assert Progress(**{k: v for k, v in asdict(p).items() if k != "scalers"}).scalers == {}


def test_bfloat16_step_runs_without_loss_scaling():
    import paddle
    from paddle_mmsr.models import build_generator
    from paddle_mmsr.train.steps import make_scaler, pixel_loss_fn, pretrain_step
    paddle.set_device("cpu")
    g = build_generator("1-2", scale=4, channels=8, form="fast", head_kernel=3, tail_kernel=3)
    opt = paddle.optimizer.Adam(parameters=g.parameters(), learning_rate=1e-3)
    w0 = g.parameters()[0].numpy().copy()
    scaler = make_scaler("bfloat16")
    assert scaler.amp_dtype == "bfloat16" and not scaler.state_dict()
    out = pretrain_step(g, opt, paddle.rand([2, 3, 8, 8]), paddle.rand([2, 3, 32, 32]),
                        pixel_loss_fn("l1"), scaler)
    assert np.isfinite(float(out["g_pixel"])) and (g.parameters()[0].numpy() != w0).any()


# ---------------------------------------------------------------- EMA
def test_ema_update_in_place():
    import paddle
    from paddle_mmsr.models import build_generator
    from paddle_mmsr.train.steps import ema_update
    paddle.set_device("cpu")
    g = build_generator("1-2", scale=4, channels=8, form="srgan", head_kernel=3, tail_kernel=3)
    ema = copy.deepcopy(g)
    for p in ema.parameters():
        p.stop_gradient = True
    before = [p.numpy().copy() for p in ema.parameters()]
    ptrs = [p.data_ptr() for p in ema.parameters()]
    with paddle.no_grad():
        for p in g.parameters():
            p.set_value(p + 1.0)
    ema_update(ema, g, 0.9)
    for pe, b, pg in zip(ema.parameters(), before, g.parameters()):
        np.testing.assert_allclose(pe.numpy(), 0.9 * b + 0.1 * pg.numpy(), atol=1e-6)
    assert [p.data_ptr() for p in ema.parameters()] == ptrs  # same storage: updated in place


# ---------------------------------------------------------------- TensorRT
def test_tensorrt_refused_on_pir_models_and_small_images_allowed():
    from paddle_mmsr.sr.inference import ExportLimitation, check_tensorrt, tensorrt_shapes
    with pytest.raises(ExportLimitation, match=r"\.pdmodel models only"):
        check_tensorrt("cache/abc/model.json")
    check_tensorrt("cache/abc/model.pdmodel")
    lo, hi, opt = tensorrt_shapes((4, 128))
    assert lo == {"x": [1, 3, 1, 1]} and hi == opt == {"x": [4, 3, 128, 128]}


# ---------------------------------------------------------------- DataLoader
def test_shared_memory_plan():
    from paddle_mmsr.train.batches import shm_plan
    mb = 2 ** 20
    assert shm_plan(4, 2 * mb, None) == (4, True, None)          # no /dev/shm to measure
    assert shm_plan(4, 2 * mb, 1024 * mb) == (4, True, None)     # plenty
    prefetch, shm, note = shm_plan(4, 2 * mb, 64 * mb)           # a container's 64 MB
    assert (prefetch, shm) == (4, True) and note is None          # 4 x 4 x 2 MB = 32 MB: fits
    prefetch, shm, note = shm_plan(4, 6 * mb, 64 * mb)
    assert (prefetch, shm) == (1, True) and "lowered from 4 to 1" in note
    prefetch, shm, note = shm_plan(4, 20 * mb, 64 * mb)
    assert shm is False and "--shm-size" in note


def test_loader_without_workers_gives_the_inline_batches(tmp_path, photos):
    """The GPU path with workers: 0 (DataLoader buffer thread) draws the same batches."""
    from paddle_mmsr.data.dataset import SRDataset
    from paddle_mmsr.image.io import write_image
    from paddle_mmsr.train.batches import _inline_stream, _loader_stream
    for n in ("coffee", "chelsea"):
        write_image(tmp_path / f"{n}.png", photos[n][:96, :96])
    ds = SRDataset(tmp_path, scale=4, crop=32, seed=5)
    inline = _inline_stream(ds, 2, 1, 3, (1, 2))
    loader = _loader_stream(ds, 2, 1, 3, (1, 2), workers=0)
    for _ in range(3):
        (la, ha), (lb, hb) = next(inline), next(loader)
        np.testing.assert_array_equal(la.numpy(), lb.numpy())
        np.testing.assert_array_equal(ha.numpy(), hb.numpy())


def test_gpu_check_cpu_parts():
    import paddle
    tool = "-m", "paddle_mmsr.cli.gpu_check"
    if not paddle.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
        r = subprocess.run([sys.executable, *tool], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "--cpu" in r.stderr
    r = subprocess.run([sys.executable, *tool, "--cpu", "--only", "amp_ema", "tensorrt"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    table = r.stdout[r.stdout.index("check "):]
    assert re.search(r"amp_ema\s+PASS .*max \|dw\| 0", table)
    assert re.search(r"tensorrt\s+skip .*needs a GPU", table)
