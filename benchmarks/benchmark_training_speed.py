#!/usr/bin/env python
"""Time to quality: how long MMSR trains to reach the single model's final PSNR-Y.

    python benchmarks/benchmark_training_speed.py --single output/srgan_16-8_x4 --mmsr output/mmsr_x4
        [--ranks 3] [-o benchmarks/results/training_speed.json] [--plot benchmarks/results/training_speed.png]
        [--doc docs/benchmark.md]

Reads the routed curves of the two runs' summary.json (PSNR-Y of the routed
reconstruction on the val set at each validation, against cumulative
training seconds; see paddle_mmsr/train/curves.py). The target is the single
model's last routed PSNR-Y. Three times to reach it, linear between
validations:
  single             the single run's training seconds;
  MMSR, one device   the classes trained in turn: the sum of the class times;
  MMSR, ranks        one rank per class (``--ranks`` = number of classes): the
                     slowest class; fewer ranks: the slowest rank's sum under
                     the run's placement (the cost placement for that number
                     of ranks if it ran on another).
A time that is never reached is null. Both runs must have used the same
validation set. ``--doc`` replaces (or appends) the marked time-to-quality
section of a Markdown file.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import yaml

from paddle_mmsr.train.curves import rank_seconds, time_to_reach

PAPER = {"one_device": 1.62, "ranks": 2.9}   # the paper's Table 3 speed-ups
START, END = "<!-- training_speed:start -->", "<!-- training_speed:end -->"


class BenchmarkError(ValueError):
    pass


def load_run(folder) -> dict:
    """summary.json and config.yaml of a finished training run."""
    folder = Path(folder)
    path = folder / "summary.json"
    if not path.is_file():
        raise BenchmarkError(f"{folder}: no summary.json (is the run finished?)")
    summary = json.loads(path.read_text())
    curve = summary.get("routed_curve")
    if not isinstance(curve, list) or not curve:
        why = curve.get("error") if isinstance(curve, dict) else "none recorded"
        raise BenchmarkError(
            f"{path}: no routed curve ({why}); it needs val.dir and val.curve: true while "
            "training (snapshots), then it is made at the end or by tools/train.py -c CONFIG "
            "--assemble")
    cfg_path = folder / "config.yaml"
    config = yaml.safe_load(cfg_path.read_text()) if cfg_path.is_file() else {}
    return {"folder": str(folder), "summary": summary, "config": config}


def _val_key(run: dict) -> dict:
    cfg = run["config"]
    val = cfg.get("val") or {}
    return {"scale": cfg.get("scale"), "dir": val.get("dir"),
            "max_images": val.get("max_images"), "crop_border": val.get("crop_border")}


def owners(summary: dict, ranks: int) -> dict:
    """{class: rank (the class's leader)} for ``ranks`` ranks."""
    from paddle_mmsr.train.placement import place_classes
    n = len(summary["classes"])
    placed = summary.get("placement") or {}
    if summary.get("world_size") != ranks or len(placed) != n:
        costs = summary.get("estimated_cost")
        if not costs:  # a summary from before cost placement
            return {c: c % ranks for c in range(n)}
        placed = place_classes([costs[str(c)] if str(c) in costs else costs[c]
                                for c in range(n)], ranks)
    return {int(c): int(r[0] if isinstance(r, list) else r) for c, r in placed.items()}


def speed(single: dict, mmsr: dict, ranks: int | None = None) -> dict:
    """The three times to the single model's final routed PSNR-Y (None: not reached)."""
    if _val_key(single) != _val_key(mmsr):
        raise BenchmarkError(f"the runs were validated differently: single {_val_key(single)}, "
                             f"MMSR {_val_key(mmsr)}")
    s_pts, m_pts = single["summary"]["routed_curve"], mmsr["summary"]["routed_curve"]
    n = len(mmsr["summary"]["classes"])
    ranks = ranks or n
    owner = owners(mmsr["summary"], ranks)
    target = s_pts[-1]["psnr_y"]
    m_psnr = [p["psnr_y"] for p in m_pts]
    one_device = [p["train_seconds"] for p in m_pts]
    on_ranks = [rank_seconds(p["class_seconds"], owner) for p in m_pts]
    out = {"target_psnr": target,
           "single_s": time_to_reach([p["psnr_y"] for p in s_pts],
                                     [p["train_seconds"] for p in s_pts], target),
           "mmsr_one_device_s": time_to_reach(m_psnr, one_device, target),
           "mmsr_ranks_s": time_to_reach(m_psnr, on_ranks, target),
           "ranks": ranks, "placement": {str(c): r for c, r in owner.items()}}
    for key, t in (("one_device", out["mmsr_one_device_s"]), ("ranks", out["mmsr_ranks_s"])):
        out[f"speedup_{key}"] = round(out["single_s"] / t, 3) if t and out["single_s"] else None
    out["paper_speedup"] = dict(PAPER)
    out["final"] = {
        "single": {"psnr_y": target, "train_seconds": s_pts[-1]["train_seconds"],
                   "iteration": s_pts[-1]["iteration"]},
        "mmsr": {"psnr_y": m_psnr[-1], "train_seconds": one_device[-1],
                 "ranks_seconds": on_ranks[-1], "iteration": m_pts[-1]["iteration"]}}
    out["single_spec"] = (single["summary"]["classes"][0] or {}).get("spec", "16-8")
    out["devices"] = sorted({c.get("device", "?") for run in (single, mmsr)
                             for c in run["summary"]["classes"] if c})
    # step speed per class: the same spec should run alike in both runs; if not, the
    # machine's load differed between them and the times compare badly
    out["step_speed"] = {name: [{"spec": c.get("spec"), "train_seconds": c.get("train_seconds"),
                                 "it_per_s": (c.get("phases") or {}).get("pretrain", {})
                                 .get("it_per_s")} for c in run["summary"]["classes"] if c]
                         for name, run in (("single", single), ("mmsr", mmsr))}
    out["val"] = _val_key(single)
    out["runs"] = {"single": single["folder"], "mmsr": mmsr["folder"]}
    out["curves"] = {
        "single": [[p["train_seconds"], p["psnr_y"]] for p in s_pts],
        "mmsr_one_device": [[t, p] for t, p in zip(one_device, m_psnr)],
        "mmsr_ranks": [[round(t, 3), p] for t, p in zip(on_ranks, m_psnr)]}
    return out


def _s(v) -> str:
    if v is None:
        return "not reached"
    return f"{v:.0f} s" if v >= 100 else f"{v:.3g} s"


def _x(v) -> str:
    return "-" if v is None else f"{v:.2f}×"


def markdown(res: dict, command: str, plot_link: str | None = None) -> str:
    f = res["final"]
    lines = [START, "## Training: time to the single model's final PSNR-Y", "",
             f"Made by `{command}` on {time.strftime('%Y-%m-%d')} ({res.get('machine', '')}). "
             f"Target: the single {res['single_spec']} model's final routed PSNR-Y on {res['val']['dir']}, "
             f"**{res['target_psnr']:.3f} dB**. Times are training seconds (no validation or "
             "checkpoints), linear between validations.", "",
             "| training | time to target | speed-up | paper | final PSNR-Y | total train s |",
             "|---|---|---|---|---|---|",
             f"| single {res['single_spec']} | {_s(res['single_s'])} | 1.00× | | "
             f"{f['single']['psnr_y']:.3f} | {_s(f['single']['train_seconds'])} |",
             f"| MMSR, one device (classes in turn) | {_s(res['mmsr_one_device_s'])} | "
             f"{_x(res['speedup_one_device'])} | {PAPER['one_device']}× | "
             f"{f['mmsr']['psnr_y']:.3f} | {_s(f['mmsr']['train_seconds'])} |",
             f"| MMSR, {res['ranks']} ranks | {_s(res['mmsr_ranks_s'])} | "
             f"{_x(res['speedup_ranks'])} | {PAPER['ranks']}× | {f['mmsr']['psnr_y']:.3f} | "
             f"{_s(f['mmsr']['ranks_seconds'])} (slowest rank) |"]
    speeds = "; ".join(f"{name}: " + ", ".join(f"{c['spec']} {c['it_per_s']:.3g} it/s"
                                              for c in cs if c.get("it_per_s"))
                       for name, cs in res.get("step_speed", {}).items()
                       if any(c.get("it_per_s") for c in cs))
    if speeds:
        lines += ["", f"Phase-1 step speed ({speeds}): the same spec should run alike in "
                      "both runs; if not, the machine's load differed."]
    missed = [k for k in ("mmsr_one_device_s", "mmsr_ranks_s") if res[k] is None]
    if missed:
        lines += ["", "MMSR did not reach the target within its training: the time is "
                      "recorded as null in training_speed.json."]
    if plot_link:
        lines += ["", f"![routed PSNR-Y against training seconds]({plot_link})"]
    return "\n".join(lines + [END]) + "\n"


def update_doc(path, section: str) -> None:
    path = Path(path)
    text = path.read_text() if path.is_file() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    path.write_text(text)


def plot(res: dict, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"single": (f"single {res['single_spec']}", "k"),
              "mmsr_one_device": ("MMSR, one device (sum of class times)", "tab:blue"),
              "mmsr_ranks": (f"MMSR, {res['ranks']} ranks (slowest rank)", "tab:orange")}
    hits = {"single": res["single_s"], "mmsr_one_device": res["mmsr_one_device_s"],
            "mmsr_ranks": res["mmsr_ranks_s"]}
    for key, (label, color) in styles.items():
        pts = res["curves"][key]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-o", ms=3, color=color, label=label)
        if hits[key] is not None:
            ax.axvline(hits[key], color=color, ls=":", lw=1)
    ax.axhline(res["target_psnr"], color="grey", ls="--", lw=1,
               label=f"target {res['target_psnr']:.2f} dB")
    ax.set_xlabel("training seconds (validation and checkpoints excluded)")
    ax.set_ylabel("routed val PSNR-Y (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--single", required=True, help="output folder of the single 16-8 run")
    p.add_argument("--mmsr", required=True, help="output folder of the MMSR run")
    p.add_argument("--ranks", type=int, help="ranks for the parallel time (default: one per class)")
    p.add_argument("-o", "--output", default="benchmarks/results/training_speed.json")
    p.add_argument("--plot", help="write the PSNR-Y / time plot (PNG) here")
    p.add_argument("--doc", help="put the table into this Markdown file (marked section)")
    a = p.parse_args(argv)
    if a.ranks is not None and a.ranks < 1:
        p.error("--ranks must be >= 1")
    try:
        res = speed(load_run(a.single), load_run(a.mmsr), a.ranks)
    except BenchmarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    command = "python benchmarks/benchmark_training_speed.py " + " ".join(argv or sys.argv[1:])
    res["command"] = command
    res["machine"] = (f"read on {platform.machine()}, {os.cpu_count()} CPUs; trained on "
                      f"{', '.join(res['devices'])}")
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(res, indent=1))
    if a.plot:
        plot(res, a.plot)
    link = None
    if a.plot and a.doc:
        link = Path(os.path.relpath(a.plot, Path(a.doc).parent)).as_posix()
    section = markdown(res, command, link)
    if a.doc:
        update_doc(a.doc, section)
    print(section)
    print(f"wrote {a.output}" + (f", {a.plot}" if a.plot else "") + (f", {a.doc}" if a.doc else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
