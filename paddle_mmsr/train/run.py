"""The whole experiment as one process sees it: train the classes placed on
this rank, meet the other ranks (``train.ranks``), then (rank 0) assemble
the bundle from what the ranks sent and write summary.json."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import yaml

from paddle_mmsr.data.split import ALL_MANIFEST
from paddle_mmsr.core.tvat import TVATSettings
from paddle_mmsr.train.placement import (training_cost, classes_of_rank, device_for_rank, place_classes,
                                         rank_info, rank_loads)
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
    if cfg.data.degradation_mix is not None:
        degradation = {"mix": cfg.data.degradation_mix.to_dict()}
    jobs = []
    for i, c in enumerate(cfg.classes):
        if c.sources:
            sources = list(c.sources)
        elif split is not None:
            sources = [str(Path(cfg.data.split) / split["classes"][i]["manifest"])]
        else:
            sources = list(cfg.data.sources)
        warm = [str(Path(cfg.data.split) / ALL_MANIFEST)] if c.warm_iters else []
        jobs.append(ClassJob(id=i, spec=c.spec, generator=cfg.generator_options(i),
                             sources=sources, degradation=degradation or {},
                             dir=out / f"class{i}", vdl_dir=out / "vdl" / f"class{i}",
                             data_id=data_identity(sources + warm, split),
                             warm_sources=warm, warm_iters=c.warm_iters))
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


def _record_failure(job, error: BaseException, info, write: bool = True) -> dict:
    failure = {"class": job.id, "spec": job.spec, "rank": info.rank, "run_id": info.run_id,
               "time": time.strftime("%Y-%m-%d %H:%M:%S"),
               "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
    if write:
        job.dir.mkdir(parents=True, exist_ok=True)
        (job.dir / "failed.json").write_text(json.dumps(failure, indent=1))
    return failure


def _replica_groups(owners: dict) -> dict:
    """{class: process group} for every class trained by several ranks. Every rank
    creates every group, in class order, as paddle.distributed.new_group requires."""
    import paddle.distributed as dist
    return {c: dist.new_group(ranks) for c, ranks in owners.items() if len(ranks) > 1}


def _rank_report(info, device: str, busy: float, results: dict, jobs) -> dict:
    """What rank 0 needs from this rank: each class's status (and reason), its final
    generator weights (bytes of g_final.safetensors, a few MB) and the busy time."""
    classes = {}
    for c, res in results.items():
        entry = dict(res)
        if res["status"] == "done":
            from paddle_mmsr.train.checkpoint import G_FINAL
            entry["weights"] = (jobs[c].dir / G_FINAL).read_bytes()
        classes[c] = entry
    return {"rank": info.rank, "host": info.host, "device": device,
            "busy_seconds": round(busy, 3), "classes": classes}


def run_training(cfg, resume: str = "auto", info=None, log=print) -> int:
    """Train this rank's classes; rank 0 also assembles the results. Returns the exit code: non-zero
    when a class of this rank failed or (every rank) when the bundle was not assembled."""
    from paddle_mmsr.locks import OutputLock
    info = info or rank_info()
    # one run per output folder: each rank locks its own file, so the ranks of one
    # run never block each other and a second run's ranks stop at once
    lock = OutputLock(cfg.output_dir / f".train-rank{info.rank}.lock",
                      f"training output {cfg.output_dir} (rank {info.rank})",
                      "wait for that run to finish, or train into another folder "
                      "(-o output=...)")
    with lock:
        return _run_training(cfg, resume, info, log)


def _run_training(cfg, resume: str, info, log) -> int:
    from paddle_mmsr.train.loop import Interrupted, train_class
    from paddle_mmsr.train.replicas import Replica
    jobs, tvat, split = resolve_jobs(cfg)
    costs = [training_cost(cfg, c) for c in range(len(jobs))]
    owners = place_classes(costs, info.world_size, max_ranks=cfg.data.batch_size)
    mine = classes_of_rank(owners, info.rank)
    # before any class trains: paths exist, no class is empty. On several nodes a
    # node needs the data of its own classes only.
    check_inputs(cfg, jobs if info.nodes == 1 else [jobs[c] for c in mine], split)
    out = cfg.output_dir
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"[rank {info.rank}/{info.world_size}]"
    say = lambda m: log(f"{prefix} {m}")  # noqa: E731
    if info.rank == 0:
        (out / "config.yaml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=False))
    device = _setup_device(cfg, info)
    team = None
    if info.world_size > 1:
        from paddle_mmsr.train.ranks import Team
        team = Team(info)
    try:
        groups = _replica_groups(owners) if team else {}
        roles = [f"{c} ({jobs[c].spec}" + (f", replica {owners[c].index(info.rank)}/"
                                            f"{len(owners[c])}" if len(owners[c]) > 1 else "")
                 + ")" for c in mine]
        say(f"local rank {info.local_rank}, pid {os.getpid()}, device {device}, classes "
            f"{mine} {' '.join(roles)} -> {out}")
        if not mine:
            say(f"no class to train ({len(jobs)} classes on {info.world_size} ranks)")
        if resume != "fresh":  # before any training: a changed split stops the run
            from paddle_mmsr.train.loop import check_split_unchanged
            for c in mine:
                if owners[c][0] == info.rank:
                    check_split_unchanged(jobs[c])
        vgg = None
        stop = StopFlag()
        stop.install()
        if mine and cfg.train.adversarial_iters > 0 and cfg.loss.content_weight > 0:
            from paddle_mmsr.train.builders import load_vgg
            vgg = load_vgg(cfg.loss, say, seed=cfg.seed)  # fails here, before any training, if weights are missing

        results, failed, interrupted = {}, [], False
        t0 = time.perf_counter()
        for c in mine:
            job, ranks = jobs[c], owners[c]
            leader = ranks[0] == info.rank
            replica = (Replica(groups[c], ranks.index(info.rank), len(ranks), cfg.data.batch_size)
                       if len(ranks) > 1 else None)
            if leader:
                (job.dir / "summary.json").unlink(missing_ok=True)
            try:
                summary = train_class(cfg.for_class(c), job, vgg=vgg, resume=resume, stop=stop,
                                      replica=replica)
                if leader:
                    (job.dir / "failed.json").unlink(missing_ok=True)
                    results[c] = {"status": "done", **summary}
            except Interrupted as e:
                say(str(e))
                interrupted = True
                break
            except Exception as e:  # one class failing does not stop the others
                results[c] = {"status": "failed", **_record_failure(job, e, info, leader)}
                say(f"class {c} FAILED: {type(e).__name__}: {e}")
                failed.append(c)
        report = _rank_report(info, device, time.perf_counter() - t0, results, jobs)

        if interrupted:
            if team is not None:
                team.leave()
            if info.rank == 0:  # say what is known; the other ranks cannot be asked now
                assemble_results(cfg, jobs, tvat, split, info, device, reports={0: report},
                         trouble={0: "stopped: signal"}, owners=owners, costs=costs, log=say)
            return 128 + int(stop.signal or signal.SIGTERM)
        if team is None:
            res = assemble_results(cfg, jobs, tvat, split, info, device, reports={0: report},
                           owners=owners, costs=costs, log=say)
            return 0 if res["bundle_assembled"] and not failed else 1

        peers = team.wait_for_all(stop, say)
        trouble = {r: v for r, v in peers.items() if v != "finished"}
        if info.rank != 0:
            if trouble:
                say("bundle NOT assembled: " + "; ".join(f"rank {r} {v}"
                                                         for r, v in sorted(trouble.items())))
                return 1
            team.gather_reports(report)
            assembled = team.share_outcome(None)
            say("rank 0 assembled the bundle" if assembled else "bundle NOT assembled (see rank 0)")
            return 0 if assembled and not failed else 1
        reports = {0: report}
        if not trouble:
            try:
                reports = team.gather_reports(report)
            except Exception as e:  # a rank died between finishing and sending
                trouble = {"gather": f"failed: {type(e).__name__}: {e}"}
        if trouble:
            team.call_off()
        res = assemble_results(cfg, jobs, tvat, split, info, device, reports=reports, trouble=trouble,
                       owners=owners, costs=costs, log=say,
                       on_bundle=None if trouble else team.share_outcome)
        return 0 if res["bundle_assembled"] else 1
    except Exception as e:  # a setup problem on this rank: the others need not wait for it
        if team is not None:
            team.leave(f"failed: {type(e).__name__}: {e}")
        raise
    finally:
        if team is not None:
            team.close()


def _merge_reports(jobs, reports: dict, trouble: dict, owners: dict) -> tuple:
    """({class: status dict}, {class: weights bytes}) from the ranks' reports; a class
    nobody reported is "lost", with what is known of its ranks."""
    classes, weights = {}, {}
    for r in sorted(reports):
        for c, entry in reports[r]["classes"].items():
            entry = dict(entry)
            w = entry.pop("weights", None)
            if w is not None:
                weights[c] = w
            if c not in classes or entry["status"] == "failed":  # a failing replica counts
                classes[c] = entry
    for job in jobs:
        if job.id not in classes:
            ranks = owners[job.id]
            why = "; ".join(f"rank {r} {trouble[r]}" for r in ranks if r in trouble)
            if not why:
                why = "not reported" + (f" ({'; '.join(f'{k}: {v}' for k, v in trouble.items())})"
                                        if trouble else "")
            classes[job.id] = {"status": "lost", "class": job.id, "spec": job.spec,
                               "ranks": ranks, "error": why}
    return dict(sorted(classes.items())), weights


def _busy_report(reports: dict, world: int) -> dict:
    busy = {r: reports[r]["busy_seconds"] for r in sorted(reports)}
    out = {"ranks": {r: {**{k: reports[r][k] for k in ("host", "device", "busy_seconds")},
                         "classes": sorted(reports[r]["classes"])} for r in sorted(reports)}}
    if len(busy) == world:
        total = sum(busy.values())
        out.update(busy_seconds_max=round(max(busy.values()), 3),
                   busy_seconds_ideal=round(total / world, 3),
                   balance=round(total / world / max(max(busy.values()), 1e-9), 4))
    return out


def _routed_curve(cfg, jobs, classes, tvat, device, log):
    """PSNR-Y of the routed system against training seconds (see train/curves.py)."""
    from paddle_mmsr.train.curves import routed_curve, write_routed_vdl
    try:
        points = routed_curve(cfg.output_dir, jobs, {c: v.get("curve") for c, v in classes.items()},
                              tvat, cfg.scale, cfg.val, device, log)
        write_routed_vdl(cfg.output_dir / "vdl" / "routed", points)
        return points
    except Exception as e:  # the bundle stays valid; report the problem
        log(f"routed curve failed: {type(e).__name__}: {e}")
        return {"error": f"{type(e).__name__}: {e}"}


def assemble_results(cfg, jobs, tvat, split, info=None, device: str = "cpu", reports=None, trouble=None,
             owners=None, costs=None, on_bundle=None, log=print) -> dict:
    """Bundle (if every class is done), routed validation, summary.json.

    ``reports``: {rank: report} received from the ranks (None: read the class
    folders, as ``--assemble`` does). ``trouble``: {rank: what went wrong}.
    ``on_bundle(assembled)`` is called once it is known whether the bundle was
    written, before the (long) routed validation.
    """
    from paddle_mmsr.train.finalize import assemble_bundle, read_class_summaries, routed_validation, write_summary
    from paddle_mmsr.core.manifest import earlier_bundle
    out = cfg.output_dir
    world = info.world_size if info else 1
    trouble = trouble or {}
    if owners is None:
        costs = [training_cost(cfg, c) for c in range(len(jobs))]
        owners = place_classes(costs, world, max_ranks=cfg.data.batch_size)
    if reports is None:
        classes, weights = read_class_summaries(jobs), None
    else:
        classes, weights = _merge_reports(jobs, reports, trouble, owners)
    result = {"name": cfg.name, "output": str(out), "scale": cfg.scale, "world_size": world,
              "placement": owners,
              "estimated_cost": {c: float(f"{v:.4g}") for c, v in enumerate(costs)},
              "estimated_load": {r: round(v / max(sum(costs), 1e-9), 4)
                                 for r, v in sorted(rank_loads(owners, costs).items())},
              "tvat": tvat.to_dict(), "classes": list(classes.values()),
              "bundle": None, "bundle_assembled": False, "routed_val": None}
    if reports is not None:
        result.update(_busy_report(reports, world))
        if "busy_seconds_max" in result:
            log("busy time per rank: " + ", ".join(
                f"rank {r} {v['busy_seconds']:.1f} s" for r, v in result["ranks"].items())
                + f"; slowest {result['busy_seconds_max']:.1f} s against the ideal "
                f"{result['busy_seconds_ideal']:.1f} s (sum / {world} ranks), balance "
                f"{result['balance']:.0%}")
    train_s = [c.get("train_seconds") for c in classes.values() if c["status"] == "done"]
    if train_s:
        result["train_seconds_sum"] = round(sum(train_s), 3)
        result["train_seconds_max"] = round(max(train_s), 3)  # the parallel (one GPU per class) time
    for c, v in classes.items():
        if v["status"] not in ("done",):
            log(f"class {c} ({v.get('spec')}) {v['status'].upper()}: {v.get('error', 'no result')}")
    if all(c["status"] == "done" for c in classes.values()):
        produced = {"config": cfg.name, "split": cfg.data.split,
                    "iterations": {"pretrain": cfg.train.pretrain_iters,
                                   "adversarial": cfg.train.adversarial_iters},
                    "batch_size": cfg.data.batch_size, "crop": cfg.data.crop,
                    "data": split.get("sources") if split else cfg.data.sources,
                    "trained": time.strftime("%Y-%m-%d")}
        try:
            bundle = assemble_bundle(out / "bundle", jobs, tvat, cfg.scale, produced, weights)
        except Exception:
            if on_bundle:
                on_bundle(False)
            raise
        if on_bundle:
            on_bundle(True)
        result["bundle"], result["bundle_assembled"] = str(bundle), True
        log(f"bundle written: {bundle}")
        if cfg.val.dir and cfg.val.routed:
            try:
                rv = routed_validation(bundle, cfg.val, cfg.scale, device)
                result["routed_val"] = rv
                log(f"routed system on {cfg.val.dir}: PSNR-Y {rv['psnr']:.3f} dB, "
                    f"SSIM-Y {rv['ssim']:.4f}")
            except Exception as e:  # the bundle stays valid; report the problem
                result["routed_val"] = {"error": f"{type(e).__name__}: {e}"}
                log(f"routed validation failed: {e}")
        if cfg.val.dir and cfg.val.curve:
            result["routed_curve"] = _routed_curve(cfg, jobs, classes, tvat, device, log)
    else:
        if on_bundle:
            on_bundle(False)
        bad = {c: v["status"] for c, v in classes.items() if v["status"] != "done"}
        log(f"bundle NOT assembled: classes {bad}")
        result["bundle"] = earlier_bundle(out / "bundle", log)
    write_summary(out / "summary.json", result)
    log(f"summary: {out / 'summary.json'}")
    return result


