"""Time to quality: validation PSNR-Y against cumulative training time.

Each class run appends ``{"train_seconds", "iteration", "psnr_y"}`` to its
curve at every validation (``train_seconds`` counts training steps only, not
validation, pictures or checkpoints, and is kept in the checkpoint, so it
continues across resumes) and keeps the validated generator as
``class<c>/snapshots/step<iteration>.safetensors``. After the last class the
routed curve puts the class snapshots of one iteration together as a bundle
and scores the whole routed reconstruction on the val set. A class whose run
ended earlier takes part with its last snapshot.

The paddle-free helpers at the end (``crossing``, ``time_to_reach``,
``rank_seconds``) read these curves for ``benchmarks/benchmark_training_speed.py``.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

SNAPSHOTS = "snapshots"
ROUTED_CACHE = "routed_curve.json"
_STEP = re.compile(r"step(\d+)\.safetensors$")


def snapshot_path(class_dir, iteration: int) -> Path:
    return Path(class_dir) / SNAPSHOTS / f"step{iteration:08d}.safetensors"


def snapshot_steps(class_dir) -> dict:
    """{iteration: snapshot file} of one class folder."""
    out = {}
    for p in (Path(class_dir) / SNAPSHOTS).glob("step*.safetensors"):
        m = _STEP.search(p.name)
        if m:
            out[int(m.group(1))] = p
    return out


def _file_key(path: Path) -> list:
    st = path.stat()
    return [path.name, st.st_size, st.st_mtime_ns]


def routed_curve(out_dir, jobs, class_curves: dict, tvat, scale: int, val_cfg,
                 device: str = "cpu", log=print) -> list:
    """[{"iteration", "train_seconds" (classes in turn: the sum), "class_seconds",
    "psnr_y", "ssim_y"}] of the routed system at each validated iteration.

    ``class_curves``: {class id: that class's curve}. Scores are cached in
    ``<out_dir>/routed_curve.json`` by snapshot file (name, size, mtime).
    """
    from paddle_mmsr.core.manifest import Bundle, ClassEntry
    from paddle_mmsr.sr.reconstruct import MMSR
    from paddle_mmsr.train.validate import load_pairs, val_pairs, validate

    out_dir = Path(out_dir)
    snaps = {j.id: snapshot_steps(j.dir) for j in jobs}
    seconds = {c: {p["iteration"]: p["train_seconds"] for p in class_curves.get(c) or []}
               for c in snaps}
    steps = sorted(set().union(*(set(s) for s in snaps.values())))
    cache_path = out_dir / ROUTED_CACHE
    try:
        cache = {p["iteration"]: p for p in json.loads(cache_path.read_text())}
    except (OSError, ValueError, KeyError, TypeError):
        cache = {}
    images, border, points = None, (val_cfg.crop_border if val_cfg.crop_border is not None
                                    else scale), []
    todo = []
    for it in steps:
        chosen = {}
        for c, s in snaps.items():
            done = [k for k in s if k <= it and k in seconds[c]]
            if not done:
                break
            chosen[c] = max(done)
        if len(chosen) == len(snaps):
            todo.append((it, chosen))
    for n, (it, chosen) in enumerate(todo, 1):
        key = [_file_key(snaps[c][k]) for c, k in sorted(chosen.items())]
        point = {"iteration": it,
                 "train_seconds": round(sum(seconds[c][k] for c, k in chosen.items()), 3),
                 "class_seconds": [round(seconds[c][chosen[c]], 3) for c in sorted(chosen)],
                 "class_iterations": [chosen[c] for c in sorted(chosen)]}
        old = cache.get(it)
        if old and old.get("key") == key:
            points.append(old)
            continue
        if images is None:
            images = load_pairs(val_pairs(val_cfg.dir, scale, val_cfg.max_images), scale)
        entries = [ClassEntry(id=j.id, spec=j.spec, generator=dict(j.generator),
                              weights=os.path.relpath(snaps[j.id][chosen[j.id]], out_dir))
                   for j in jobs]
        bundle = Bundle(root=out_dir, scale=scale, tvat=tvat, classes=entries)
        # dygraph: the same tiles, routing and stitching as the shipped path,
        # without exporting an inference model per point
        sr = MMSR(bundle, backend="dygraph", device=device)
        res = validate(sr.upscale, images, scale, border)
        point.update(psnr_y=round(res["psnr"], 4), ssim_y=round(res["ssim"], 5), key=key)
        points.append(point)
        log(f"routed curve {n}/{len(todo)}: iteration {it}, {point['train_seconds']:.1f} s "
            f"of training, PSNR-Y {point['psnr_y']:.3f} dB")
        _write_json(cache_path, points)
    _write_json(cache_path, points)
    return [{k: v for k, v in p.items() if k != "key"} for p in points]


def write_routed_vdl(vdl_dir, points: list) -> None:
    """The routed curve as VisualDL scalars (rewritten whole: it is derived data)."""
    from visualdl import LogWriter
    vdl_dir = Path(vdl_dir)
    for old in vdl_dir.glob("vdlrecords.*.log"):
        old.unlink()
    with LogWriter(logdir=str(vdl_dir)) as w:
        for p in points:
            w.add_scalar("routed/psnr_y", p["psnr_y"], p["iteration"])
            # step axis = training seconds (classes in turn / one class per rank)
            w.add_scalar("routed/psnr_y_by_train_seconds", p["psnr_y"],
                         int(round(p["train_seconds"])))
            w.add_scalar("routed/psnr_y_by_slowest_class_seconds", p["psnr_y"],
                         int(round(max(p["class_seconds"]))))


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


# ------------------------------------------------------------ reading curves (paddle-free)
def crossing(psnrs: list, target: float):
    """(i, f): the curve first reaches ``target`` a fraction ``f`` of the way from
    point i-1 to point i (linear between validations); f = 1 at the first
    point. None if it never does."""
    for i, p in enumerate(psnrs):
        if p >= target:
            if i == 0 or p == psnrs[i - 1]:
                return i, 1.0
            return i, (target - psnrs[i - 1]) / (p - psnrs[i - 1])
    return None


def time_to_reach(psnrs: list, times: list, target: float):
    """Seconds at which the curve (psnrs over times) first reaches ``target``, or None."""
    hit = crossing(psnrs, target)
    if hit is None:
        return None
    i, f = hit
    if i == 0:
        return float(times[0])
    return float(times[i - 1] + f * (times[i] - times[i - 1]))


def rank_seconds(class_seconds: list, owner: dict) -> float:
    """Wall time of ranks training their classes in turn: the slowest rank's sum.
    ``owner``: {class id: rank}."""
    per_rank = {}
    for c, s in enumerate(class_seconds):
        per_rank[owner[c]] = per_rank.get(owner[c], 0.0) + s
    return max(per_rank.values())
