"""Training checkpoints: one file holding everything to continue a class run.

A safetensors file: the tensors (weights, optimizer moments, numpy's random
state array) as tensors, everything else (step, random states, optimizer
scalars, schedule) as JSON in its header's metadata (see core/safe_files.py).
Nothing in it can run code when loaded. Old ``.pdckpt`` files are refused
with the command that converts them.

Written atomically (temp file in the same folder, fsync, rename), so a run
killed at any moment leaves the previous file intact. ``latest.ckpt.safetensors`` is
rewritten every checkpoint interval, ``best.ckpt.safetensors`` when val PSNR improves.
"""
from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import numpy as np
import paddle

from paddle_mmsr.core.safe_files import (LegacyFile, UnsafeFile, checked_file, dumps, load_tensors,
                                    pack_state, read_header, refuse_legacy, save_tensors,
                                    unpack_state)

FORMAT = "paddle-mmsr-ckpt/1"
LATEST, BEST = "latest.ckpt.safetensors", "best.ckpt.safetensors"
LEGACY_LATEST = "latest.pdckpt"
G_FINAL = "g_final.safetensors"  # a class's final generator weights (bundle.save_weights)
# temp files of save_tensors: .<name>.<pid>.tmp
_TMP = re.compile(r"^\.(?:latest|best)\.(?:ckpt\.safetensors|pdckpt)\.(\d+)\.tmp$")


class CheckpointError(RuntimeError):
    pass


def _gpu_index(device: str):
    """N of "gpu:N" ("gpu" = 0); None for other devices."""
    if device == "gpu":
        return 0
    if device.startswith("gpu:"):
        return int(device[4:])
    return None


def rng_state(device: str | None = None) -> dict:
    """The random state of this process: numpy, Python, Paddle's CPU generator and
    the generator of the GPU this rank uses (only that one: a checkpoint made with
    4 visible GPUs resumes with 1, and a CPU one with GPUs visible)."""
    device = device or paddle.get_device()
    state = {"device": device, "cpu": paddle.get_rng_state("cpu")[0],
             "numpy": np.random.get_state(), "python": random.getstate()}
    gpu = _gpu_index(device)
    if gpu is not None:
        state["gpu"] = paddle.get_cuda_rng_state()[gpu]
    return state


def set_rng_state(state: dict, device: str | None = None, log=None) -> None:
    """Restore ``rng_state()``; the saved GPU generator goes to this rank's GPU."""
    if not state:
        return
    device = device or paddle.get_device()
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cpu" in state:
        paddle.set_rng_state([state["cpu"]], device="cpu")
    elif "paddle" in state:  # older checkpoints: the list of every device's generator
        try:
            paddle.set_rng_state(state["paddle"])
        except ValueError as e:  # saved with another number of devices
            if log:
                log(f"Paddle random state not restored ({e}); numpy and Python states are")
    gpu = _gpu_index(device)
    if gpu is not None and "gpu" in state:
        states = paddle.get_cuda_rng_state()
        states[gpu] = state["gpu"]
        paddle.set_cuda_rng_state(states)


def scaler_state(scalers: dict) -> dict:
    """{name: GradScaler state with plain numbers} of the enabled AMP loss scalers."""
    out = {}
    for k, sc in scalers.items():
        st = sc.state_dict() if sc is not None else {}
        if st:
            out[k] = {n: [float(v[0])] if n == "scale" else v for n, v in st.items()}
    return out


def load_scaler_state(scalers: dict, saved: dict) -> None:
    for k, st in (saved or {}).items():
        if scalers.get(k) is not None:
            scalers[k].load_state_dict(st)


def save_checkpoint(path, state: dict) -> Path:
    """Atomically write ``state`` (nested dict of tensors and plain values)."""
    tensors: dict = {}
    tree = pack_state({"format": FORMAT, **state}, tensors)
    return save_tensors(path, tensors, {"format": FORMAT, "state": dumps(tree)})


def load_checkpoint(path) -> dict:
    path = Path(path)
    if path.suffix == ".pdckpt" or not path.is_file():
        if not path.is_file() and path.name == LATEST and path.with_name(LEGACY_LATEST).exists():
            path = path.with_name(LEGACY_LATEST)  # an older run's: refused, with the fix
        try:
            refuse_legacy(path, "training checkpoint")
        except LegacyFile as e:
            raise CheckpointError(str(e)) from None
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        checked_file(path, what="checkpoint")
        _, meta = read_header(path, "checkpoint")
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not a paddle-mmsr training checkpoint")
        state = unpack_state(json.loads(meta["state"]), load_tensors(path), paddle.to_tensor)
    except (UnsafeFile, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}: "
                              f"{str(e).strip()[:200]}){_what_now(path)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a paddle-mmsr training checkpoint")
    return state


def remove_orphan_temps(folder) -> list:
    """Remove checkpoint temp files (``.latest.ckpt.safetensors.<pid>.tmp``, and the
    older ``.latest.pdckpt.<pid>.tmp``) that a killed run left: only regular files
    of this name pattern whose process is gone."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TMP.match(p.name)
        if m and not _alive(int(m.group(1))) and p.is_file() and not p.is_symlink():
            p.unlink()
            removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a temp of ours that outlived its write
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by another user
    return True


def _what_now(path: Path) -> str:
    """For a damaged latest checkpoint: the ways to go on, with the steps they restart from."""
    if path.name != LATEST:
        return ""
    best, log = path.with_name(BEST), path.with_name("log.txt")
    steps = []
    if log.is_file():
        steps = [ln.split("checkpoint at step ")[1].split()[0]
                 for ln in log.read_text(errors="replace").splitlines()
                 if "checkpoint at step " in ln]
    ways = []
    if best.is_file():
        try:
            step = load_checkpoint(best)["progress"]["step"]
            ways.append(f"continue from the best checkpoint (step {step}): "
                        f"cp {best} {path}, then run again")
        except Exception:
            ways.append(f"{best} is unreadable too")
    ways.append("start again with --fresh (all classes of this run restart at step 0)")
    last = f" (the damaged file was written at step {steps[-1]}, says log.txt)" if steps else ""
    return last + ". To go on: " + "; or ".join(ways)


# Optimizer state dicts are keyed by parameter *names* (e.g. conv2d_75.w_0_moment1_0),
# which depend on how many layers the process built before. Checkpoints store them
# keyed by structural names ("g.blocks.0.body.0.weight") instead.
def _param_names(nets: dict) -> dict:
    """{runtime parameter name: structural name} over ``nets`` (prefix -> layer)."""
    out = {}
    for prefix, net in nets.items():
        if net is not None:
            for n, p in net.named_parameters():
                out[p.name] = f"{prefix}.{n}"
    return out


def _rename_keys(state: dict, rename: dict) -> dict:
    """Rename keys ``<old><suffix>`` to ``<new><suffix>`` for ``old -> new`` in rename."""
    olds = sorted(rename, key=len, reverse=True)
    out = {}
    for k, v in state.items():
        if isinstance(v, dict):  # master_weights: {param name: tensor}
            out[k] = _rename_keys(v, rename)
            continue
        for old in olds:
            if k == old or k.startswith(old + "_"):
                k = rename[old] + k[len(old):]
                break
        out[k] = v
    return out


def portable_optimizer_state(opt, nets: dict) -> dict:
    return _rename_keys(opt.state_dict(), {k: "@" + v for k, v in _param_names(nets).items()})


def load_portable_optimizer_state(opt, state: dict, nets: dict) -> None:
    back = {"@" + v: k for k, v in _param_names(nets).items()}
    opt.set_state_dict(_rename_keys(state, back))
