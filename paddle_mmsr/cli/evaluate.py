"""PSNR-Y / SSIM-Y (optionally NIQE) of an upscaler on SR test folders.

    python tools/evaluate.py --method bicubic DATA_DIR [DATA_DIR ...] [--scale 4] [--niqe] [--json out.json]
    python tools/evaluate.py --method mmsr --bundle BUNDLE_DIR DATA_DIR ...

DATA_DIR holds HR/ and optionally LR_bicubic_X<scale>/ (see docs/evaluate.md).
--degrade KIND makes every LR from its HR the KIND way instead (bicubic =
MATLAB's, bicubic_noaa = OpenCV's without antialiasing, area, blur_noise_jpeg, h264).
"""
import argparse
import json
import math
import sys
from pathlib import Path


from paddle_mmsr.image.degrade import INPUT_KINDS
from paddle_mmsr.cli import needs_paddle
from paddle_mmsr.metrics.evaluate import bicubic_upscaler, evaluate_dir, format_result


def make_upscaler(method, scale, bundle):
    if method == "bicubic":
        return bicubic_upscaler(scale)
    from paddle_mmsr import MMSR  # lazy: needs paddle and a bundle
    sr = MMSR.load(bundle)
    if getattr(sr, "scale", scale) != scale:
        raise SystemExit(f"error: bundle {bundle} is x{sr.scale}, but --scale is {scale}")
    return sr.upscale


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else str(obj)
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


@needs_paddle
def main(argv=None):
    p = argparse.ArgumentParser(prog="mmsr-evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dirs", nargs="+", metavar="DATA_DIR")
    p.add_argument("--method", choices=["bicubic", "mmsr"], default="bicubic")
    p.add_argument("--bundle", help="model bundle folder (for --method mmsr)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--niqe", action="store_true", help="also compute NIQE of the outputs")
    p.add_argument("--degrade", choices=sorted(INPUT_KINDS), metavar="KIND",
                   help="make LR from HR this way, ignoring LR files: " + ", ".join(sorted(INPUT_KINDS)))
    p.add_argument("--json", help="write all results to this JSON file")
    args = p.parse_args(argv)
    if args.method == "mmsr" and not args.bundle:
        p.error("--method mmsr needs --bundle DIR")
    if args.scale < 1:
        p.error("--scale must be >= 1")

    fn = make_upscaler(args.method, args.scale, args.bundle)
    results = []
    for d in args.data_dirs:
        try:
            res = evaluate_dir(d, fn, scale=args.scale, niqe=args.niqe, kind=args.degrade)
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        res["method"] = args.method
        results.append(res)
        print(format_result(res), end="\n\n", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(_json_safe(results), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
