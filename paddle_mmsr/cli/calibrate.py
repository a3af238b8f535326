"""Calibrate a bundle's routing (flat bound, class bounds) on data you will not report.

    mmsr-calibrate BUNDLE DATA_DIR [DATA_DIR ...] [--max-loss-db 0.03]
        [--rules cell_max:32 cell_max:64 tile] [--grids 128:16 64:8]
        [--guard-pages 4 --guard-max-loss-db 0.1]
        [--max-images 20] [--write]

DATA_DIR: folders with HR/ (and optionally LR_bicubic_X4/), e.g. Set5 or a
training set. Each tiling (--grids tile:overlap, LR px) and rule
(route_score[:route_cell]) is calibrated; the one with the highest estimated
speed-up within --max-loss-db wins. Loss and speed-up are counted against the
largest model on every tile at the default tiling (128:16), which is how the
single model runs. --guard-pages synthetic drawings (strokes and letters
on paper, seeds 100+) must lose at most --guard-max-loss-db against the
largest model. Prints the choice with its estimated loss and speed-up;
--write stores it (bounds, flat_bound, route_score, route_cell, and tile/overlap
when not the default) in the manifest.
See paddle_mmsr/sr/calibrate.py for the method.
"""
import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from paddle_mmsr.cli import needs_paddle


@needs_paddle
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="mmsr-calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle")
    p.add_argument("data", nargs="+")
    p.add_argument("--max-loss-db", type=float, default=0.03)
    p.add_argument("--max-image-loss-db", type=float, default=None,
                   help="also: no single image may lose more than this against the largest model")
    p.add_argument("--rules", nargs="+", default=["cell_max:32"],
                   help="route_score[:route_cell] choices to try (default cell_max:32)")
    p.add_argument("--grids", nargs="+", default=None, metavar="TILE:OVERLAP",
                   help="LR tilings to try (default: the bundle's, else 128:16)")
    p.add_argument("--frontier", nargs="+", type=float, default=[], metavar="DB",
                   help="also report the best estimated speed-up at these tolerances")
    p.add_argument("--guard-pages", type=int, default=0, help="synthetic drawings as a guard")
    p.add_argument("--guard-max-loss-db", type=float, default=0.1)
    p.add_argument("--max-images", type=int, default=0, help="per folder (0 = all)")
    p.add_argument("--degrade", nargs="+", default=None, metavar="KIND",
                   help="make each image's LR from its HR each of these ways (input kinds of "
                        "mmsr-evaluate --degrade), so the routing holds on all of them")
    p.add_argument("--write", action="store_true", help="store the result in the manifest")
    p.add_argument("--json", help="also write the result to this file")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per model call (default: Paddle's); use 1 when other jobs "
                        "share the cores, or the timings oversubscribe them")
    a = p.parse_args(argv)
    from paddle_mmsr.image.degrade import INPUT_KINDS
    bad = sorted(set(a.degrade or []) - set(INPUT_KINDS))
    if bad:
        p.error(f"--degrade: unknown kinds {bad}; use {sorted(INPUT_KINDS)}")
    from paddle_mmsr import MMSR
    from paddle_mmsr.core.tvat import check_bounds
    from paddle_mmsr.metrics.evaluate import find_pairs, load_pair
    from paddle_mmsr.core.manifest import write_manifest
    from paddle_mmsr.image.resize import imresize
    from paddle_mmsr.sr.calibrate import calibrate_bundle, drawn_page
    from paddle_mmsr.core.tiles import DEFAULT_OVERLAP, DEFAULT_TILE, tile_starts
    grids = None
    if a.grids:
        try:
            grids = [tuple(int(v) for v in g.split(":")) for g in a.grids]
            for tile, overlap in grids:
                tile_starts(1, tile, overlap)  # validates
        except ValueError as e:
            p.error(f"--grids: expected TILE:OVERLAP with TILE > OVERLAP >= 0, got {a.grids} ({e})")
    sr = MMSR.load(a.bundle, threads=a.threads)
    b = sr.bundle
    rules = []
    for r in a.rules:
        name, _, cell = r.partition(":")
        rules.append((name, int(cell) if cell else None))
    guard = []
    for k in range(a.guard_pages):
        hr = drawn_page(100 + k, size=1024)
        guard.append((imresize(hr, 1 / b.scale), hr))
    pairs = []
    for d in a.data:
        found = find_pairs(d, b.scale)
        found = found[:a.max_images] if a.max_images else found
        pairs += [load_pair(hr, lr, b.scale, kind)[::-1] for _, hr, lr in found
                  for kind in (a.degrade or [None])]
    res = calibrate_bundle(sr, pairs, a.max_loss_db,
                           progress=lambda it: tqdm(it, desc="calibrate", unit="img"),
                           rules=rules, guard_pairs=guard, guard_max_loss_db=a.guard_max_loss_db,
                           grids=grids, frontier=a.frontier, max_image_loss_db=a.max_image_loss_db)
    res["data"] = [Path(d).name for d in a.data]
    print(json.dumps(res, indent=1))
    for tol, x in res["frontier"].items():
        print(f"at most {tol} dB below the largest model: "
              + (f"{x:.2f}x faster (estimated)" if x else "not reachable with these guards"))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    if a.write:
        b.tvat.bounds = check_bounds(res["bounds"])
        b.flat_bound = res["flat_bound"]
        default = (res["tile"], res["overlap"]) == (DEFAULT_TILE, DEFAULT_OVERLAP)
        b.tile, b.overlap = (None, None) if default else (res["tile"], res["overlap"])
        b.produced_by = {**b.produced_by, "routing_calibration": res}
        print(f"written: {write_manifest(b)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
