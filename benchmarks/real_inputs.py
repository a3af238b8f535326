"""Bundles against bicubic on the ways real LR images are made.

Rows: bicubic and each bundle; columns: input kinds (how LR is made from HR:
``paddle_mmsr.image.degrade.INPUT_KINDS``); cells: mean PSNR-Y / SSIM-Y (dB, x4,
4-px border) over each image set: the given data folders (their HR/ only) and
the held-out photos below (scikit-image, CC0; none used in training).

    python benchmarks/real_inputs.py pretrained/mmsr_x4_bicubic ... \\
        --data data/val/Set5 data/val/Set14 --out benchmarks/results/real_inputs
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
          "immunohistochemistry", "text", "page", "horse")


def photo_images() -> list:
    """(name, HR uint8 RGB) for the held-out photos."""
    from skimage import data
    from paddle_mmsr.image.io import to_rgb8
    out = []
    for name in PHOTOS:
        img = getattr(data, name)()
        out.append((name, to_rgb8(img.astype(np.uint8) * 255 if img.dtype == bool else img)))
    return out


def folder_images(folder) -> list:
    from paddle_mmsr.image.io import list_images, read_image, to_rgb8
    return [(p.stem, to_rgb8(read_image(p))) for p in list_images(Path(folder) / "HR")]


def table(sets: dict, methods: dict, kinds: list, log=print) -> dict:
    """{set: {method: {kind: {"psnr", "ssim", "per_image"}}}}."""
    from paddle_mmsr.metrics.evaluate import evaluate_images, pair_from_hr
    out = {}
    for set_name, images in sets.items():
        out[set_name] = {m: {} for m in methods}
        for kind in kinds:
            pairs = [(name, *pair_from_hr(hr, 4, name, kind)) for name, hr in images]
            for m, fn in methods.items():
                res = evaluate_images(((lr, hr, n) for n, hr, lr in pairs), fn, 4)
                out[set_name][m][kind] = {**res["mean"], "per_image": {
                    r["name"]: round(r["psnr"], 3) for r in res["images"]}}
                log(f"{set_name} {kind} {m}: {res['mean']['psnr']:.2f} dB")
    return out


def main(argv=None) -> int:
    from paddle_mmsr.image.degrade import INPUT_KINDS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="*")
    ap.add_argument("--data", nargs="*", default=[], help="folders with HR/ (e.g. Set14)")
    ap.add_argument("--no-photos", action="store_true", help="skip the held-out photos")
    ap.add_argument("--kinds", nargs="+", default=list(INPUT_KINDS), choices=list(INPUT_KINDS))
    ap.add_argument("--out", help="write OUT.json and OUT.md")
    a = ap.parse_args(argv)
    from paddle_mmsr import MMSR
    from paddle_mmsr.metrics.evaluate import bicubic_upscaler
    methods = {"bicubic": bicubic_upscaler(4)}
    for b in a.bundles:
        methods[Path(b).name] = MMSR.load(b).upscale
    sets = {Path(d).name: folder_images(d) for d in a.data}
    if not a.no_photos:
        sets["held-out photos"] = photo_images()
    t0 = time.time()
    res = table(sets, methods, a.kinds)
    from benchmark import machine  # benchmarks/benchmark.py: CPU, cores, GPUs, Paddle
    machine = f"{machine()}; {time.time() - t0:.0f} s"
    command = "python benchmarks/real_inputs.py " + " ".join(argv if argv is not None else sys.argv[1:])
    record = {"recorded": {"date": time.strftime("%Y-%m-%d"), "command": command,
                           "machine": machine}, "kinds": a.kinds, "results": res}
    from results_page import real_inputs  # the same tables as docs/results.md
    print("\n".join(real_inputs(record)))
    if a.out:  # the results page (benchmarks/results_page.py) reads this
        Path(a.out + ".json").parent.mkdir(parents=True, exist_ok=True)
        Path(a.out + ".json").write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
