"""Split HR images into TVAT classes for multi-model training.

    python tools/split_tvat.py HR_DIR [HR_DIR ...] OUT_DIR [--bounds 2,4 | --calibrate 3]
"""
import argparse
import sys
from pathlib import Path


from tqdm import tqdm

from paddle_mmsr.image.degrade import Degradation
from paddle_mmsr.image.resize import KERNELS
from paddle_mmsr.data.split import split_folder
from paddle_mmsr.core.tvat import TVATSettings


def parse_bounds(text):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bounds must be numbers separated by commas, got {text!r}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="mmsr-split", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="HR folder(s) (any folder of images, e.g. DIV2K_train_HR), then OUT_DIR")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--sub-size", type=int, default=480, help="HR sub-image size (default 480)")
    p.add_argument("--step", type=int, default=240, help="stride between sub-images (default 240)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bounds", type=parse_bounds, default=None, help="class bounds, e.g. 2,4 (default, the paper's)")
    g.add_argument("--calibrate", type=int, metavar="N", help="choose bounds for N equal-sized classes")
    p.add_argument("--tau", type=float, default=5.0, help="VSP threshold on the 0-255 scale")
    p.add_argument("--norm", type=float, default=1e4, help="TVAT normalisation divisor")
    p.add_argument("--degradation", default="bicubic", choices=KERNELS)
    a = p.parse_args(argv)
    if len(a.paths) < 2:
        p.error("give at least one HR folder and the output folder")
    *hr_dirs, out_dir = a.paths
    for d in hr_dirs:
        if not Path(d).is_dir():
            p.error(f"{d}: not a folder")
    if a.sub_size % a.scale or not 0 < a.step <= a.sub_size:
        p.error("--sub-size must be a multiple of --scale, and --step in 1..--sub-size")
    tv = TVATSettings(tau=a.tau, norm=a.norm, bounds=a.bounds if a.bounds is not None else [2.0, 4.0])
    try:
        info = split_folder(hr_dirs, out_dir, scale=a.scale, sub_size=a.sub_size, step=a.step,
                            n_calibrate=a.calibrate, tvat=tv,
                            degradation=Degradation(kernel=a.degradation),
                            progress=lambda it: tqdm(it, desc="split", unit="img"))
    except ValueError as e:  # no images, or none large enough
        print(f"error: {e}", file=sys.stderr)
        return 2
    if info["skipped"]:
        print(f"warning: skipped {len(info['skipped'])} unreadable files:", file=sys.stderr)
        for s in info["skipped"]:
            print(f"  {s}", file=sys.stderr)
    for w in info["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print((Path(out_dir) / "summary.md").read_text())
    print(f"wrote {out_dir}/split.yaml, class*.tsv, histogram.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
