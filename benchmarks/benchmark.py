#!/usr/bin/env python
"""MMSR against the single 16-8 model: quality, speed and training cost.

    python benchmarks/benchmark.py --mmsr pretrained/mmsr_x4_bicubic [OTHER_MMSR_BUNDLE ...] \
        --single pretrained/srgan_16-8_x4_bicubic \
        --data ../shared/data/val/Set5 ../shared/data/val/Set14 \
        --train-summary RUN_DIR/summary.json [OTHER_SUMMARY ...] \
        --out report.md --plot benchmarks/results/benchmark.png --json benchmarks/results/benchmark.json
    python benchmarks/results_page.py    # docs/results.md from the JSON

Methods, run on the same images in one process: bicubic; the single model on
the whole image (one tile); the single model tiled; MMSR routed (one row per
MMSR bundle given). Columns:
PSNR-Y, SSIM-Y, NIQE, seconds per image, output megapixels/s, routing share.
All networks run through Paddle Inference (oneDNN), exported before timing.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path


import numpy as np

from paddle_mmsr.metrics.evaluate import evaluate_dir
from paddle_mmsr.image.resize import imresize
from paddle_mmsr.core.devices import BACKENDS


def timed(fn, log: list):
    """Wrap an upscaler: record (seconds, output megapixels, shares) per call."""
    def run(lr):
        t = time.perf_counter()
        out, shares = fn(lr)
        log.append((time.perf_counter() - t, out.shape[0] * out.shape[1] / 1e6, shares))
        return out
    return run


def methods(mmsr_dirs, single_dir, backend):
    from paddle_mmsr import MMSR
    out = {"bicubic": lambda lr: (imresize(lr, 4), {})}
    if single_dir:
        single = MMSR.load(single_dir, backend=backend)
        single.prepare("tvat")

        def whole(lr):
            r = single.reconstruct(lr, tile=max(lr.shape[:2]), overlap=0)
            return r.image, {}
        out["single 16-8, whole image"] = whole
        out["single 16-8, tiled"] = lambda lr: (single.upscale(lr), {})
    for d in mmsr_dirs or []:
        name = "MMSR routed" if len(mmsr_dirs) == 1 else f"MMSR routed ({Path(d).name})"
        out[name] = _routed(MMSR.load(d, backend=backend))
    return out


def _routed(mm):
    mm.prepare("tvat")

    def run(lr):
        r = mm.reconstruct(lr)
        return r.image, {mm.label(k): v for k, v in r.shares().items()}
    return run


def quality_table(data_dirs, fns, niqe=True):
    rows = []
    for d in data_dirs:
        for name, fn in fns.items():
            log = []
            res = evaluate_dir(d, timed(fn, log), scale=4, niqe=niqe, progress=False)
            secs = sum(t for t, _, _ in log)
            mp = sum(m for _, m, _ in log)
            shares = {}
            for _, _, s in log:
                for k, v in s.items():
                    shares[k] = shares.get(k, 0) + v / len(log)
            rows.append({"data": Path(d).name, "method": name, **res["mean"],
                         "sec_per_image": secs / len(log), "mp_per_s": mp / secs,
                         "shares": shares})
            print(f"{Path(d).name:6} {name:28} PSNR {res['mean']['psnr']:.2f} "
                  f"SSIM {res['mean']['ssim']:.4f} {secs / len(log):.2f} s/img", flush=True)
    return rows


def training_table(summaries):
    """One row per trained class, plus the sum and max of each run's training time."""
    rows, runs = [], []
    for path in summaries:
        s = json.loads(Path(path).read_text())
        name = s.get("name", Path(path).parent.name)
        for c in s.get("classes", []):
            phases = c.get("phases") or {}
            pre, adv = phases.get("pretrain") or {}, phases.get("adversarial") or {}
            rows.append({"run": name, "class": c.get("class"), "spec": c.get("spec"),
                         "iters": pre.get("iterations"), "adv_iters": adv.get("iterations"),
                         "seconds": c.get("train_seconds"),
                         "samples_per_s": pre.get("samples_per_s"),
                         "adv_samples_per_s": adv.get("samples_per_s"),
                         "best_psnr": (c.get("best_val") or {}).get("psnr")})
        runs.append({"run": name, "sum": s.get("train_seconds_sum"), "max": s.get("train_seconds_max"),
                     "routed_psnr": (s.get("routed_val") or {}).get("psnr")})
    return rows, runs


def cpu_cores() -> int:
    from paddle_mmsr.sr.inference import default_threads
    return default_threads()


def machine(backend: str = "inference") -> str:
    """The machine the timings come from, as measured now: CPU model and usable
    cores, GPUs Paddle sees (the networks run on the CPU either way), Paddle."""
    import platform

    import paddle
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), model)
    except OSError:
        pass
    n_gpu = paddle.device.cuda.device_count() if paddle.device.is_compiled_with_cuda() else 0
    gpu = (f"{n_gpu} GPU ({paddle.device.cuda.get_device_name(0)}, not used)" if n_gpu
           else "no GPU")
    runner = {"inference": "Paddle Inference with oneDNN", "dygraph": "Paddle dygraph",
              "auto": "Paddle Inference (dygraph if export fails)"}[backend]
    return f"{cpu_cores()} CPU cores ({model}), {gpu}, Paddle {paddle.__version__}, {runner}"


def markdown(qrows, trows, command, plot_link=None, machine_text=None):
    machine_text = machine_text or machine()
    lines = ["# Benchmark: MMSR vs the single 16-8 model", "",
             f"Made by `{command}` on {time.strftime('%Y-%m-%d')}, on {machine_text}.", "",
             "## Reconstruction (x4, PSNR/SSIM on Y, border 4)", "",
             "| data | method | PSNR-Y | SSIM-Y | NIQE | s / image | MP/s | routing share |",
             "|---|---|---|---|---|---|---|---|"]
    for r in qrows:
        share = ", ".join(f"{k} {v:.0%}" for k, v in sorted(r["shares"].items())) or "-"
        niqe = f"{r['niqe']:.2f}" if "niqe" in r else "-"
        lines.append(f"| {r['data']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                     f"{niqe} | {r['sec_per_image']:.2f} | {r['mp_per_s']:.2f} | {share} |")
    if plot_link:
        lines += ["", f"![PSNR-Y and NIQE against seconds per image]({plot_link})"]
    trows, truns = trows
    if trows:
        lines += ["", "## Training (from the runs' summary.json)", "",
                  "| run | class | spec | phase-1 it | phase-2 it | train s | samples/s phase 1 "
                  "| samples/s phase 2 | best val PSNR-Y |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in trows:
            cells = [r["run"], r["class"], r["spec"], r["iters"], r.get("adv_iters") or 0,
                     _num(r["seconds"], 0), _num(r["samples_per_s"], 1),
                     _num(r.get("adv_samples_per_s"), 2), _num(r["best_psnr"], 2)]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        lines += ["", "| run | sum of class times (one device, in turn) s | max (one device per class) s |",
                  "|---|---|---|"]
        lines += [f"| {r['run']} | {_num(r['sum'], 0)} | {_num(r['max'], 0)} |" for r in truns]
    return "\n".join(lines) + "\n"


def _num(v, digits):
    return "-" if v is None else f"{v:.{digits}f}"


def plot(qrows, path, cores=None):
    """PSNR-Y (and NIQE, when measured) against seconds per image, one column per data set."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter
    datasets = list(dict.fromkeys(r["data"] for r in qrows))
    methods = list(dict.fromkeys(r["method"] for r in qrows))
    metrics = [("psnr", "PSNR-Y (dB), higher is better")]
    if any(r.get("niqe") is not None for r in qrows):
        metrics.append(("niqe", "NIQE, lower is better"))
    fig, axes = plt.subplots(len(metrics), len(datasets), squeeze=False,
                             figsize=(4.5 * len(datasets), 3.2 * len(metrics) + 0.8))
    markers = "osD^vP*X"
    for col, data in enumerate(datasets):
        for row, (key, label) in enumerate(metrics):
            ax = axes[row][col]
            for m, method in enumerate(methods):
                pts = [r for r in qrows if r["data"] == data and r["method"] == method
                       and r.get(key) is not None]
                ax.scatter([r["sec_per_image"] for r in pts], [r[key] for r in pts], s=50,
                           marker=markers[m % len(markers)], color=f"C{m}", label=method)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_ylabel(label)
            ax.set_title(data if row == 0 else "")
            ax.grid(alpha=0.3)
            if row == len(metrics) - 1:
                ax.set_xlabel(f"seconds per image ({cores or cpu_cores()} CPU cores)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.12 if len(labels) > 3 else 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mmsr", nargs="*", default=[], help="MMSR bundle folder(s)")
    p.add_argument("--single", help="single-model (16-8) bundle folder")
    p.add_argument("--data", nargs="+", required=True, help="folders with HR/ (and LR_bicubic_X4/)")
    p.add_argument("--train-summary", nargs="*", default=[], help="summary.json of training runs")
    p.add_argument("--backend", default="inference", choices=BACKENDS)
    p.add_argument("--no-niqe", action="store_true")
    p.add_argument("--out", help="write the Markdown report here")
    p.add_argument("--plot", help="write a quality-vs-time PNG here")
    p.add_argument("--json", help="write the raw rows here")
    a = p.parse_args(argv)
    for d in a.data:
        if not Path(d, "HR").is_dir():
            p.error(f"{d}: no HR/ folder")
    qrows = quality_table(a.data, methods(a.mmsr, a.single, a.backend), niqe=not a.no_niqe)
    trows = training_table(a.train_summary)
    link = Path(os.path.relpath(a.plot, Path(a.out).parent)).as_posix() if a.out and a.plot else None
    report = markdown(qrows, trows, "python benchmarks/benchmark.py " + " ".join(argv or sys.argv[1:]),
                      link, machine(a.backend))
    print(report)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(report)
    if a.plot:
        plot(qrows, a.plot)
    if a.json:
        recorded = {"date": time.strftime("%Y-%m-%d"), "machine": machine(a.backend)}
        Path(a.json).write_text(json.dumps({"quality": qrows, "training": trows,
                                            "recorded": recorded}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
