#!/usr/bin/env python
"""Side-by-side crops of one photo: LR (nearest), bicubic, each bundle, original.

    python benchmarks/side_by_side.py examples/astronaut.png pretrained/mmsr_x4_bicubic pretrained/srgan_16-8_x4_bicubic -o crop.png

The photo is taken as the original: it is shrunk x4 (MATLAB bicubic), then
upscaled by each method; the crop is the busiest window unless --crop Y,X.
"""
import argparse
import sys
from pathlib import Path


from paddle_mmsr import MMSR
from paddle_mmsr.image.io import read_image, to_rgb8, write_image
from paddle_mmsr.image.panels import nearest_up, side_by_side
from paddle_mmsr.metrics.psnr_ssim import psnr
from paddle_mmsr.notebook import busiest_window, crop_to_multiple
from paddle_mmsr.image.resize import imresize


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photo")
    p.add_argument("bundles", nargs="+")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--size", type=int, default=128, help="crop size in output px")
    p.add_argument("--crop", help="Y,X of the crop's top-left corner (output px)")
    a = p.parse_args(argv)
    hr = crop_to_multiple(to_rgb8(read_image(a.photo)), 4)
    lr = imresize(hr, 1 / 4)
    panels = {"LR (nearest)": nearest_up(lr, 4), "bicubic": imresize(lr, 4)}
    for b in a.bundles:
        panels[Path(b).name] = MMSR.load(b).upscale(lr)
    panels["original"] = hr
    y, x = map(int, a.crop.split(",")) if a.crop else busiest_window(hr, a.size)
    s = a.size
    labels = [name if name in ("LR (nearest)", "original") else
              f"{name} {psnr(img, hr, crop_border=4):.2f} dB" for name, img in panels.items()]
    crops = [img[y:y + s, x:x + s] for img in panels.values()]
    write_image(a.out, side_by_side(*crops, labels=labels, zoom=2))
    print(f"wrote {a.out} (crop at y={y}, x={x}, {s} px, shown x2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
