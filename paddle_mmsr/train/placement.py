"""Which process trains which TVAT class.

Under ``python -m paddle.distributed.launch`` every rank gets the classes
``c`` with ``c % world_size == rank`` (round robin): as many ranks as classes
gives one class per rank, fewer ranks train several classes in turn, extra
ranks have nothing to do and exit. Classes are independent, so no gradients
are exchanged and no collective op is called.
"""
from __future__ import annotations

import hashlib
import os
import socket
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class RankInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    run_id: str = ""          # the same on every rank of one launch

    @property
    def host(self) -> str:
        return socket.gethostname()


def rank_info(env=None) -> RankInfo:
    """Rank and world size from the launcher's environment (or a single process)."""
    env = os.environ if env is None else env
    if "PADDLE_TRAINER_ID" not in env:
        return RankInfo(run_id=uuid.uuid4().hex[:12])
    rank = int(env["PADDLE_TRAINER_ID"])
    world = int(env.get("PADDLE_TRAINERS_NUM", "1"))
    local = int(env.get("PADDLE_LOCAL_RANK", env.get("PADDLE_RANK_IN_NODE", rank)))
    # the endpoint list (random ports) and master address identify one launch
    key = env.get("PADDLE_TRAINER_ENDPOINTS", "") + "|" + env.get("PADDLE_MASTER", "")
    run_id = hashlib.sha1(key.encode()).hexdigest()[:12] if key != "|" else "launch"
    return RankInfo(rank=rank, world_size=world, local_rank=local, run_id=run_id)


def classes_for_rank(n_classes: int, rank: int, world_size: int) -> list[int]:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of size {world_size}")
    return [c for c in range(n_classes) if c % world_size == rank]


def owner_of(class_id: int, world_size: int) -> int:
    return class_id % world_size


def device_for_rank(requested: str, info: RankInfo, env=None) -> str:
    """Paddle device string: each rank on its own GPU when GPUs are there."""
    import paddle
    env = os.environ if env is None else env
    has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if requested == "cpu" or (requested == "auto" and not has_gpu):
        return "cpu"
    if not has_gpu:
        raise RuntimeError("device: gpu requested but this Paddle build sees no GPU")
    # the launcher gives each rank FLAGS_selected_gpus (index among visible GPUs)
    selected = env.get("FLAGS_selected_gpus", "")
    if selected and "," not in selected:
        return f"gpu:{int(selected)}"
    return f"gpu:{info.local_rank % paddle.device.cuda.device_count()}"
