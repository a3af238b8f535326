"""The whole experiment as one process sees it: train the classes placed on
this rank, then (rank 0) assemble the bundle and write summary.json."""
from __future__ import annotations

import json
import signal
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import yaml

from paddle_mmsr.data.tvat import TVATSettings
from paddle_mmsr.train.placement import classes_for_rank, device_for_rank, owner_of, rank_info
from paddle_mmsr.train.preflight import check_inputs

SPLIT_FILE = "split.yaml"


class StopFlag:
    """Set by SIGTERM/SIGINT: the loop saves a checkpoint and stops at the next step."""

    def __init__(self):
        self.signal = None
        self._pending = None  # the message, while a progress bar is on screen

    def __call__(self) -> bool:
        if self._pending:  # polled by the training loop: safe to write above the bar
            from tqdm import tqdm
            tqdm.write(self._pending, file=sys.stderr)
            self._pending = None
        return self.signal is not None

    def install(self) -> None:
        def handler(signum, _frame):
            if self.signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # second Ctrl-C: stop now
            self.signal = signum
            msg = f"signal {signum}: saving a checkpoint and stopping"
            from tqdm import tqdm
            if getattr(tqdm, "_instances", None):  # a bar may be half drawn: the loop prints it
                self._pending = msg
            else:
                print(msg, file=sys.stderr, flush=True)
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, handler)


# ------------------------------------------------------------ config -> jobs
def read_split(split_dir) -> dict:
    path = Path(split_dir) / SPLIT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{split_dir}: no {SPLIT_FILE} (make one with tools/split_tvat.py)")
    return yaml.safe_load(path.read_text())


def resolve_jobs(cfg) -> tuple[list, TVATSettings, dict | None]:
    """One ClassJob per class, the TVAT settings and the split info (or None)."""
    from paddle_mmsr.train.loop import ClassJob, data_identity
    out = cfg.output_dir
    split, degradation = None, None
    n = len(cfg.classes)
    if cfg.data.split:
        split = read_split(cfg.data.split)
        if int(split["scale"]) != cfg.scale:
            raise ValueError(f"{cfg.data.split}: split made for x{split['scale']}, "
                             f"config trains x{cfg.scale}")
        if len(split["classes"]) != n:
            raise ValueError(f"{cfg.data.split}: the split has {len(split['classes'])} classes, "
                             f"the config lists {n} (classes: one spec per TVAT class)")
        tvat = TVATSettings(**split["tvat"])
        degradation = split.get("degradation")
    else:
        tvat = cfg.tvat or TVATSettings(bounds=[])
    if tvat.n_classes != n:
        raise ValueError(f"{n} classes need {n - 1} TVAT bounds, got {tvat.bounds}")
    if cfg.data.degradation is not None:
        degradation = asdict(cfg.data.degradation)
    jobs = []
    for i, c in enumerate(cfg.classes):
        if c.sources:
            sources = list(c.sources)
        elif split is not None:
            sources = [str(Path(cfg.data.split) / split["classes"][i]["manifest"])]
        else:
            sources = list(cfg.data.sources)
        jobs.append(ClassJob(id=i, spec=c.spec, generator=cfg.generator_options(i),
                             sources=sources, degradation=degradation or {},
                             dir=out / f"class{i}", vdl_dir=out / "vdl" / f"class{i}",
                             data_id=data_identity(sources, split)))
    return jobs, tvat, split


# ------------------------------------------------------------ the run
def _setup_device(cfg, info) -> str:
    import paddle
    device = device_for_rank(cfg.device, info)
    paddle.set_device(device)
    if device == "cpu" and cfg.train.cpu_threads > 0:
        from paddle.base import core
        core.set_num_threads(cfg.train.cpu_threads)
    return device


def _record_failure(job, error: BaseException, info) -> None:
    job.dir.mkdir(parents=True, exist_ok=True)
    (job.dir / "failed.json").write_text(json.dumps({
        "class": job.id, "spec": job.spec, "rank": info.rank, "run_id": info.run_id,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"), "error": f"{type(error).__name__}: {error}",
        "traceback": traceback.format_exc()}, indent=1))


def run_training(cfg, resume: str = "auto", info=None, log=print) -> int:
    """Train this rank's classes; rank 0 also finalizes. Returns the exit code."""
    from paddle_mmsr.train.loop import Interrupted, train_class
    from paddle_mmsr.train.peers import RankStatus, wait_for_ranks
    info = info or rank_info()
    jobs, tvat, split = resolve_jobs(cfg)
    check_inputs(cfg, jobs, split)  # before any class trains: paths exist, no class is empty
    mine = classes_for_rank(len(jobs), info.rank, info.world_size)
    out = cfg.output_dir
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"[rank {info.rank}/{info.world_size}]"
    if info.rank == 0:
        (out / "config.yaml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=False))
    if not mine:
        log(f"{prefix} no class to train ({len(jobs)} classes on {info.world_size} ranks; "
            "extra ranks idle). Exiting.")
        return 0
    if resume != "fresh":  # before any training: a changed split stops the run
        from paddle_mmsr.train.loop import check_split_unchanged
        for c in mine:
            check_split_unchanged(jobs[c])
    device = _setup_device(cfg, info)
    log(f"{prefix} device {device}, classes {mine} "
        f"({', '.join(jobs[c].spec for c in mine)}) -> {out}")

    if cfg.val.dir:  # fail now, not at the first validation
        import paddle_mmsr.metrics.psnr_ssim  # noqa: F401
        from paddle_mmsr.train.validate import val_pairs
        val_pairs(cfg.val.dir, cfg.scale, cfg.val.max_images)
    stop = StopFlag()
    stop.install()
    vgg = None
    if cfg.train.adversarial_iters > 0 and cfg.loss.content_weight > 0:
        from paddle_mmsr.train.builders import load_vgg
        vgg = load_vgg(cfg.loss, log, seed=cfg.seed)  # fails here, before any training, if weights are missing

    status = RankStatus(out, info, mine)
    failed, interrupted = [], False
    try:
        for c in mine:
            job = jobs[c]
            status.set_class(c, "running")
            (job.dir / "summary.json").unlink(missing_ok=True)
            try:
                summary = train_class(cfg, job, vgg=vgg, resume=resume, stop=stop)
                (job.dir / "failed.json").unlink(missing_ok=True)
                status.set_class(c, "done", seconds=summary["train_seconds"])
            except Interrupted as e:
                log(f"{prefix} {e}")
                status.set_class(c, "interrupted")
                interrupted = True
                break
            except Exception as e:  # one class failing does not stop the others
                _record_failure(job, e, info)
                status.set_class(c, "failed", error=f"{type(e).__name__}: {e}")
                log(f"{prefix} class {c} FAILED: {type(e).__name__}: {e}")
                failed.append(c)
        status.set_phase("finished")
        if interrupted:
            return 128 + int(stop.signal or signal.SIGTERM)
        if info.rank == 0:
            others = [r for r in range(1, min(info.world_size, len(jobs)))]
            lost = []
            if others:
                peers = wait_for_ranks(out, info.run_id, others, stop=stop,
                                       log=lambda m: log(f"{prefix} {m}"))
                lost = [c for c in range(len(jobs)) if peers.get(owner_of(c, info.world_size),
                                                                 True) is None]
            assemble_results(cfg, jobs, tvat, split, info, device, lost=lost,
                     log=lambda m: log(f"{prefix} {m}"))
            status.set_phase("finalized")
        elif failed:  # stay alive until rank 0 is done, else the launcher kills it
            wait_for_ranks(out, info.run_id, [0], phases=("finalized",),
                           log=lambda m: log(f"{prefix} {m}"), stop=stop)
    finally:
        status.close()
    return 1 if failed else 0


def _routed_curve(cfg, jobs, classes, tvat, device, log):
    """PSNR-Y of the routed system against training seconds (see train/curves.py)."""
    from paddle_mmsr.train.curves import routed_curve, write_routed_vdl
    try:
        points = routed_curve(cfg.output_dir, jobs, {c: v.get("curve") for c, v in classes.items()},
                              tvat, cfg.scale, cfg.val,
                              "gpu" if device.startswith("gpu") else "cpu", log)
        write_routed_vdl(cfg.output_dir / "vdl" / "routed", points)
        return points
    except Exception as e:  # the bundle stays valid; report the problem
        log(f"routed curve failed: {type(e).__name__}: {e}")
        return {"error": f"{type(e).__name__}: {e}"}


def assemble_results(cfg, jobs, tvat, split, info=None, device: str = "cpu", lost=(), log=print) -> dict:
    """Bundle (if every class is done), routed validation, summary.json.

    ``lost``: classes whose rank vanished (their files may be from an older run).
    """
    from paddle_mmsr.train.finalize import assemble_bundle, read_class_summaries, routed_validation, write_summary
    from paddle_mmsr.sr.bundle import earlier_bundle
    out = cfg.output_dir
    classes = read_class_summaries(jobs)
    for c in lost:
        classes[c] = {"status": "lost", "class": c, "spec": jobs[c].spec}
    result = {"name": cfg.name, "output": str(out), "scale": cfg.scale,
              "world_size": info.world_size if info else 1,
              "placement": {c: owner_of(c, info.world_size if info else 1) for c in classes},
              "tvat": tvat.to_dict(), "classes": list(classes.values()),
              "bundle": None, "routed_val": None}
    train_s = [c.get("train_seconds") for c in classes.values() if c["status"] == "done"]
    if train_s:
        result["train_seconds_sum"] = round(sum(train_s), 3)
        result["train_seconds_max"] = round(max(train_s), 3)  # the parallel (one GPU per class) time
    if all(c["status"] == "done" for c in classes.values()):
        produced = {"config": cfg.name, "split": cfg.data.split,
                    "iterations": {"pretrain": cfg.train.pretrain_iters,
                                   "adversarial": cfg.train.adversarial_iters},
                    "batch_size": cfg.data.batch_size, "crop": cfg.data.crop,
                    "data": split.get("sources") if split else cfg.data.sources,
                    "trained": time.strftime("%Y-%m-%d")}
        bundle = assemble_bundle(out / "bundle", jobs, tvat, cfg.scale, produced)
        result["bundle"] = str(bundle)
        log(f"bundle written: {bundle}")
        if cfg.val.dir and cfg.val.routed:
            try:
                rv = routed_validation(bundle, cfg.val, cfg.scale,
                                       "gpu" if device.startswith("gpu") else "cpu")
                result["routed_val"] = rv
                log(f"routed system on {cfg.val.dir}: PSNR-Y {rv['psnr']:.3f} dB, "
                    f"SSIM-Y {rv['ssim']:.4f}")
            except Exception as e:  # the bundle stays valid; report the problem
                result["routed_val"] = {"error": f"{type(e).__name__}: {e}"}
                log(f"routed validation failed: {e}")
        if cfg.val.dir and cfg.val.curve:
            result["routed_curve"] = _routed_curve(cfg, jobs, classes, tvat, device, log)
    else:
        bad = {c: v["status"] for c, v in classes.items() if v["status"] != "done"}
        log(f"bundle NOT assembled: classes {bad}")
        result["bundle"] = earlier_bundle(out / "bundle", log)
    write_summary(out / "summary.json", result)
    log(f"summary: {out / 'summary.json'}")
    return result
