"""Training checkpoints: one file holding everything to continue a class run.

Written atomically (temp file in the same folder, fsync, rename), so a run
killed at any moment leaves the previous file intact. ``latest.pdckpt`` is
rewritten every checkpoint interval, ``best.pdckpt`` when val PSNR improves.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import paddle

FORMAT = "paddle-mmsr-ckpt/1"
LATEST, BEST = "latest.pdckpt", "best.pdckpt"


class CheckpointError(RuntimeError):
    pass


def rng_state() -> dict:
    return {"paddle": paddle.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    if not state:
        return
    paddle.set_rng_state(state["paddle"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(path, state: dict) -> Path:
    """Atomically write ``state`` (nested dict of tensors and plain values)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        paddle.save({"format": FORMAT, **state}, str(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = paddle.load(str(path))
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable checkpoint ({e})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a paddle-mmsr training checkpoint")
    return state
