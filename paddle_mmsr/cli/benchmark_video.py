"""Video benchmarks; see tools/benchmark_video.py."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")

TRAIN_PHOTOS = ("astronaut", "chelsea", "rocket", "immunohistochemistry", "brick", "grass",
                "gravel", "camera", "moon")


def cmd_photos(args) -> dict:
    from skimage import data
    from paddle_mmsr.image.io import write_image
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    for n in TRAIN_PHOTOS:
        write_image(out / f"{n}.png", getattr(data, n)())
    return {"photos": len(TRAIN_PHOTOS), "dir": str(out)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="benchmark_video.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("photos")
    p.add_argument("dir")
    args = ap.parse_args(argv)
    result = {"photos": cmd_photos}[args.cmd](args)
    print(json.dumps(result, indent=1))
    return 0
