"""Which process trains which TVAT class, and on which device.

Classes go to ranks by estimated cost (samples drawn x per-sample cost of the
spec, see ``training_cost``): the costliest class first, each to the rank with
the least estimated work so far (longest-processing-time-first). With more
ranks than classes, every class gets one rank and the extra ranks join the
costliest classes (the one with the highest cost per rank, in turn) as
data-parallel replicas: the class's first rank is its leader (checkpoints,
logs, final weights), the others split each batch with it and sum their
weighted gradients over a ``paddle.distributed`` process group
(``train.replicas``).
"""
from __future__ import annotations

import hashlib
import os
import socket
import uuid
from dataclasses import dataclass

from paddle_mmsr.core.spec import ModelSpec


@dataclass(frozen=True)
class RankInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    run_id: str = ""          # the same on every rank of one launch
    nodes: int = 1            # launchers (machines) in the job

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
    local_size = int(env.get("PADDLE_LOCAL_SIZE", world))
    nodes = -(-world // max(local_size, 1))
    return RankInfo(rank=rank, world_size=world, local_rank=local, run_id=run_id, nodes=nodes)


# ------------------------------------------------------------ cost
def _generator_macs(spec: ModelSpec, g: dict, scale: int) -> float:
    """Multiply-adds of one generator forward pass per LR pixel (convs only)."""
    c, kh, kt = spec.width(g), g.get("head_kernel", 9), g.get("tail_kernel", 9)
    macs = 3 * c * kh * kh + spec.g_blocks * 2 * 9 * c * c + 9 * c * c
    if g.get("form") == "compact":  # one conv to 3 * s^2 channels at LR, then the shuffle
        return macs + 3 * scale * scale * c * kt * kt
    factors = [3] if scale == 3 else [2] * (scale // 2)
    area = 1
    for f in factors:  # conv C -> C*f*f at the current size, then PixelShuffle(f)
        macs += 9 * c * c * f * f * area
        area *= f * f
    return macs + area * 3 * c * kt * kt


def _discriminator_macs(spec: ModelSpec, base: int) -> float:
    """Multiply-adds of one discriminator forward pass per HR pixel (convs only)."""
    macs, cin, area = 0.0, 3, 1.0
    for i in range(spec.d_layers):
        cout = min(base * 2 ** (i // 2), 512)
        if i % 2 == 1:
            area /= 4
        macs += 9 * cin * cout * area
        cin = cout
    return macs


def training_cost(cfg, class_id: int) -> float:
    """Estimated multiply-adds of one class's whole run (forward + backward ~ 3x forward).

    Samples drawn (iterations x batch size, D updates included) times the
    per-sample cost of the class's spec at the training crop. The VGG content
    loss is left out (it is the same for every class)."""
    spec = ModelSpec.parse(cfg.classes[class_id].spec)
    t, crop, scale = cfg.for_class(class_id).train, cfg.data.crop, cfg.scale
    lr_px, hr_px = (crop // scale) ** 2, crop ** 2
    g = _generator_macs(spec, cfg.generator_options(class_id), scale) * lr_px
    d = _discriminator_macs(spec, cfg.model.discriminator_channels) * hr_px
    per_pretrain = 3 * g
    # G step (G and D forward + backward), D steps on real + fake, G forward for extra D batches
    per_adversarial = 3 * g + 3 * d + t.d_updates * 2 * 3 * d + (t.d_updates - 1) * g
    return float(cfg.data.batch_size * (t.pretrain_iters * per_pretrain
                                        + t.adversarial_iters * per_adversarial))


# ------------------------------------------------------------ placement
def place_classes(costs, world_size: int, max_ranks: int | None = None) -> dict:
    """{class: [ranks]}, leader first. ``costs[c]`` is class c's estimated cost;
    ``max_ranks``: most ranks on one class (its batch size: one item each at least).
    Spare ranks beyond that get no class."""
    if world_size < 1:
        raise ValueError(f"world size must be >= 1, got {world_size}")
    n = len(costs)
    order = sorted(range(n), key=lambda c: (-costs[c], c))
    owners = {c: [] for c in range(n)}
    load = [0.0] * world_size
    for c in order:
        r = min(range(world_size), key=lambda k: (load[k], k))
        owners[c].append(r)
        load[r] += costs[c]
    spare = list(range(n, world_size))
    for r in spare:  # extra ranks: data-parallel replicas of the costliest classes
        open_ = [k for k in order if max_ranks is None or len(owners[k]) < max_ranks]
        if not open_:
            break
        c = max(open_, key=lambda k: (costs[k] / len(owners[k]), -k))
        owners[c].append(r)
    return owners


def classes_of_rank(owners: dict, rank: int) -> list:
    """Classes rank ``rank`` works on (as leader or replica), in class order."""
    return [c for c, ranks in owners.items() if rank in ranks]


def rank_loads(owners: dict, costs) -> dict:
    """Estimated work of each rank: a replicated class's cost is shared by its ranks."""
    out = {}
    for c, ranks in owners.items():
        for r in ranks:
            out[r] = out.get(r, 0.0) + costs[c] / len(ranks)
    return out


# ------------------------------------------------------------ device
def visible_gpus() -> int:
    import paddle
    if not paddle.device.is_compiled_with_cuda():
        return 0
    return paddle.device.cuda.device_count()


def device_for_rank(requested: str, info: RankInfo, env=None, gpus=None) -> str:
    """Paddle device string: each rank on its own GPU when GPUs are there."""
    env = os.environ if env is None else env
    gpus = visible_gpus() if gpus is None else gpus
    if requested == "cpu" or (requested == "auto" and not gpus):
        return "cpu"
    if not gpus:
        raise RuntimeError("device: gpu requested but this Paddle build sees no GPU (a CPU "
                           "build runs several ranks with --nproc_per_node N, not --devices)")
    # the launcher gives each rank FLAGS_selected_gpus (index among visible GPUs)
    selected = env.get("FLAGS_selected_gpus", "")
    if selected and "," not in selected:
        if int(selected) >= gpus:
            raise RuntimeError(f"FLAGS_selected_gpus={selected} but only {gpus} GPUs are visible")
        return f"gpu:{int(selected)}"
    return f"gpu:{info.local_rank % gpus}"

