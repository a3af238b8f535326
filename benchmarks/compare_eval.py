#!/usr/bin/env python
"""Evaluate the fair comparison (benchmarks/compare_x4.sh): routed MMSR against the single
baseline on Set14 and on held-out photos, in one run on the same images.

    python benchmarks/compare_eval.py --mmsr BUNDLE --single BUNDLE [--set14 DIR]
        [--times single.time mmsr.time] [--repeat 2] [--out PREFIX]

Held-out photos: scikit-image's astronaut, coffee, chelsea, rocket, text, page,
horse and a drawn line-art page (HR; LR by MATLAB bicubic x4). "MMSR largest
class everywhere" runs the MMSR bundle with --routing single: routed minus
that is what routing itself costs; routed minus the single baseline adds the
difference in training. Nothing here is
used for training or calibration. Per method: PSNR-Y / SSIM-Y (border 4),
seconds per image (best of --repeat, methods taking turns so load from other
jobs hits each alike) and routing shares. When the MMSR bundle tiles otherwise
than the baseline (a calibrated tile/overlap), the baseline also runs on the
MMSR bundle's tiling, and the speed-up against it is reported too. --times reads GNU ``time -v`` files
of the training processes (CPU seconds).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "text", "page", "horse", "line_art")
LINE_ART = ("text", "page", "horse", "line_art")


def line_art_page() -> np.ndarray:
    """The held-out drawing (seed 7; calibration guards use seeds 100 and up)."""
    from paddle_mmsr.sr.calibrate import drawn_page
    return drawn_page(7, size=1024)


def held_out_pairs() -> list:
    """(name, HR uint8 RGB, LR) for the held-out photos."""
    from skimage import data
    from paddle_mmsr.image.io import to_rgb8
    from paddle_mmsr.metrics.evaluate import pair_from_hr
    out = []
    for name in PHOTOS:
        img = line_art_page() if name == "line_art" else getattr(data, name)()
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        out.append((name, *pair_from_hr(to_rgb8(img), 4, name)))
    return out


def folder_pairs(folder) -> list:
    from paddle_mmsr.metrics.evaluate import find_pairs, load_pair
    return [(name, *load_pair(hr, lr, 4)) for name, hr, lr in find_pairs(folder, 4)]


def cpu_seconds(path) -> float | None:
    """User + system seconds summed over every invocation in a GNU ``time -v`` file."""
    p = Path(path)
    if not p.exists():
        return None
    total = 0.0
    for line in p.read_text().splitlines():
        line = line.strip()
        if line.startswith(("User time (seconds):", "System time (seconds):")):
            total += float(line.split(":")[1])
    return round(total, 1)


def evaluate(methods: dict, sets: dict, repeat: int, log=print) -> dict:
    """methods: name -> (MMSR or None for bicubic, routing). Returns per-set results."""
    from paddle_mmsr.image.resize import imresize
    from paddle_mmsr.metrics.evaluate import score
    res = {}
    for set_name, pairs in sets.items():
        per = {m: {"psnr": [], "ssim": [], "seconds": [], "counts": {}, "images": {}}
               for m in methods}
        for name, hr, lr in pairs:
            best = {}
            for _ in range(repeat):
                for m, (sr, routing) in methods.items():
                    t = time.perf_counter()
                    if sr is None:
                        out, classes = imresize(lr, 4), None
                    else:
                        r = sr.reconstruct(lr, routing)
                        out, classes = r.image, r.classes
                    dt = time.perf_counter() - t
                    if m not in best or dt < best[m][0]:
                        best[m] = (dt, out, classes)
            for m, (dt, out, classes) in best.items():
                row = score(out, hr, crop_border=4, name=f"{set_name}/{name}")
                p, s = float(row["psnr"]), float(row["ssim"])
                d = per[m]
                d["psnr"].append(p)
                d["ssim"].append(s)
                d["seconds"].append(dt)
                d["images"][name] = {"psnr": round(p, 3), "ssim": round(s, 4),
                                     "seconds": round(dt, 3)}
                if classes is not None:
                    label = methods[m][0].label
                    for c in classes.tolist():
                        d["counts"][label(c)] = d["counts"].get(label(c), 0) + 1
            log(f"{set_name}/{name}: " + ", ".join(
                f"{m} {per[m]['images'][name]['psnr']:.2f} dB {per[m]['images'][name]['seconds']:.2f} s"
                for m in methods))
        res[set_name] = {}
        for m, d in per.items():
            n = sum(d["counts"].values())
            res[set_name][m] = {"psnr": round(float(np.mean(d["psnr"])), 3),
                                "ssim": round(float(np.mean(d["ssim"])), 4),
                                "seconds": round(float(np.sum(d["seconds"])), 3),
                                "seconds_per_image": round(float(np.mean(d["seconds"])), 3),
                                "share": {k: round(v / n, 3) for k, v in sorted(d["counts"].items())}
                                if n else None,
                                "images": d["images"]}
    return res


def markdown(res: dict, cpu: dict, command: str) -> str:
    lines = [f"Command: `{command}`", "",
             "| set | method | PSNR-Y | SSIM-Y | s / image | routing shares |",
             "|---|---|---|---|---|---|"]
    for set_name, methods in res.items():
        for m, v in methods.items():
            share = ", ".join(f"{k} {100 * s:.0f}%" for k, s in (v["share"] or {}).items())
            lines.append(f"| {set_name} | {m} | {v['psnr']:.3f} | {v['ssim']:.4f} | "
                         f"{v['seconds_per_image']:.2f} | {share or '-'} |")
    if "photos" in res:
        lines += ["", "Line art and text (held-out photos), PSNR-Y per image:", "",
                  "| image | " + " | ".join(res["photos"]) + " |",
                  "|---|" + "---|" * len(res["photos"])]
        for name in LINE_ART:
            lines.append(f"| {name} | " + " | ".join(
                f"{v['images'][name]['psnr']:.3f}" for v in res["photos"].values()) + " |")
    if cpu:
        lines += ["", "Training CPU seconds (GNU time, user + system): " +
                  ", ".join(f"{k} {v}" for k, v in cpu.items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mmsr", required=True, help="the routed bundle")
    ap.add_argument("--single", required=True, help="the single-model baseline bundle")
    ap.add_argument("--set14", help="Set14 folder (HR/ [+ LR_bicubic_X4/])")
    ap.add_argument("--times", nargs=2, metavar=("SINGLE", "MMSR"),
                    help="GNU time -v files of the two training processes")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--tile-rule", action="store_true",
                    help="also run the MMSR bundle with the paper's plain tile TVAT")
    ap.add_argument("--out", help="write PREFIX.json and PREFIX.md")
    a = ap.parse_args(argv)
    from paddle_mmsr import MMSR
    mm, single = MMSR.load(a.mmsr), MMSR.load(a.single)
    mm.prepare("tvat")
    single.prepare("single")
    methods = {"bicubic": (None, None), "single 16-8": (single, "single"),
               "MMSR routed": (mm, "tvat"),
               "MMSR largest class everywhere": (mm, "single")}  # routing's own cost
    tiling = f"{mm.tile}:{mm.overlap} tiles"
    same = f"single 16-8 at {tiling}"
    if (mm.tile, mm.overlap) != (single.tile, single.overlap):  # the baseline on MMSR's tiling
        single_same = MMSR.load(a.single, tile=mm.tile, overlap=mm.overlap)
        single_same.prepare("single")
        methods[same] = (single_same, "single")
    if a.tile_rule:
        tile_rule = MMSR.load(a.mmsr)
        tile_rule.bundle.route_score = "tile"
        tile_rule.prepare("tvat")
        methods["MMSR routed (tile TVAT)"] = (tile_rule, "tvat")
    sets = {}
    if a.set14:
        sets["Set14"] = folder_pairs(a.set14)
    sets["photos"] = held_out_pairs()
    res = evaluate(methods, sets, a.repeat, log=lambda s: print(s, flush=True))
    for set_name, v in res.items():
        base, mmsr = v["single 16-8"], v["MMSR routed"]
        v["speedup"] = round(base["seconds"] / mmsr["seconds"], 3)
        v["psnr_gap_db"] = round(mmsr["psnr"] - base["psnr"], 3)
        if same in v:  # the speed-up the tiling alone cannot explain
            v["speedup_same_tiling"] = round(v[same]["seconds"] / mmsr["seconds"], 3)
            v["psnr_gap_same_tiling_db"] = round(mmsr["psnr"] - v[same]["psnr"], 3)
    cpu = {}
    if a.times:
        cpu = {"single": cpu_seconds(a.times[0]), "mmsr": cpu_seconds(a.times[1])}
    command = "python benchmarks/compare_eval.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out = {"command": command, "results": res, "training_cpu_seconds": cpu,
           "mmsr": str(a.mmsr), "single": str(a.single)}
    text = markdown({k: {m: x for m, x in v.items() if isinstance(x, dict)}
                     for k, v in res.items()}, cpu, command)
    for k, v in res.items():
        text += f"\n{k}: MMSR {v['speedup']:.2f}x faster than the single model, " \
                f"PSNR-Y {v['psnr_gap_db']:+.3f} dB"
        if "speedup_same_tiling" in v:
            text += f"; against the single model on MMSR's tiling ({tiling}): " \
                    f"{v['speedup_same_tiling']:.2f}x, {v['psnr_gap_same_tiling_db']:+.3f} dB"
    print(text)
    if a.out:
        Path(f"{a.out}.json").write_text(json.dumps(out, indent=1))
        Path(f"{a.out}.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
