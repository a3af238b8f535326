#!/usr/bin/env python
"""NIQE / PSNR-Y of bundles on six scikit-image photos no model trained on.

    python benchmarks/photo_niqe.py BUNDLE [BUNDLE ...] [--out FILE.md]

Each photo (astronaut, coffee, chelsea, rocket, immunohistochemistry,
hubble_deep_field) is cropped to a multiple of 4, shrunk x4 with the
project's MATLAB-style imresize, upscaled by each bundle (its own routing) and
scored: NIQE (lower is sharper/more natural) and PSNR-Y, both at border 4.
Bicubic is the first column. Prints a Markdown table (and writes it with --out).
"""
import argparse
import sys
from pathlib import Path

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="+")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    from skimage import data
    from paddle_mmsr import MMSR
    from paddle_mmsr.image.io import to_rgb8
    from paddle_mmsr.image.resize import imresize
    from paddle_mmsr.metrics.evaluate import pair_from_hr
    from paddle_mmsr.metrics.niqe import niqe
    from paddle_mmsr.metrics.psnr_ssim import psnr
    models = [MMSR.load(b) for b in a.bundles]
    names = ["bicubic"] + [f"`{Path(b).name}`" for b in a.bundles]
    lines = ["| photo (NIQE / PSNR-Y) | " + " | ".join(names) + " |",
             "|---" * (len(names) + 1) + "|"]
    sums = [0.0] * len(names)
    for photo in PHOTOS:
        hr, lr = pair_from_hr(to_rgb8(getattr(data, photo)()), 4, photo)
        outs = [imresize(lr, 4)] + [m.upscale(lr) for m in models]
        cells = []
        for k, out in enumerate(outs):
            q = niqe(out, crop_border=4)
            sums[k] += q
            cells.append(f"{q:.2f} / {psnr(out, hr, crop_border=4):.2f}")
        lines.append(f"| {photo} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    lines.append("| mean NIQE | " + " | ".join(f"{s / len(PHOTOS):.2f}" for s in sums) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
