"""Video benchmarks; see tools/benchmark_video.py. Prints one JSON object."""
from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")

ROOT = Path(__file__).resolve().parents[2]
TRAIN_PHOTOS = ("astronaut", "chelsea", "rocket", "immunohistochemistry", "brick", "grass",
                "gravel", "camera", "moon")
MOSAIC = ("astronaut", "camera", "immunohistochemistry", "brick", "retina", "gravel",
          "rocket", "grass", "coffee")   # 3 x 3 crops of 512 px: a 1536 px "HR" scene
LR_W, LR_H = 352, 288


def _rgb(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a[:, :, :3]


def mosaic() -> np.ndarray:
    from skimage import data
    tiles = []
    for n in MOSAIC:
        a = _rgb(getattr(data, n)())
        y, x = (a.shape[0] - 512) // 2, (a.shape[1] - 512) // 2
        tiles.append(np.pad(a, ((0, max(0, 512 - a.shape[0])), (0, 0), (0, 0)), mode="edge")
                     [max(y, 0):max(y, 0) + 512, x:x + 512])
    return np.concatenate([np.concatenate(tiles[r * 3:r * 3 + 3], axis=1) for r in range(3)])


def pan_hr_lr(n: int, gray: bool = False):
    """(HR 1408x1152, LR 352x288) frame pairs of a pan moving 1 HR px (1/4 LR px) per frame."""
    from paddle_mmsr.image.resize import imresize
    scene = mosaic()
    if gray:
        import cv2
        scene = _rgb(cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY))
    for i in range(n):
        hr = np.ascontiguousarray(scene[200:200 + 4 * LR_H, 40 + i:40 + i + 4 * LR_W])
        yield hr, imresize(hr, output_shape=(LR_H, LR_W))


def _load(bundle, threads):
    from paddle_mmsr.sr.reconstruct import MMSR
    sr = MMSR.load(bundle, threads=threads)
    sr.prepare()
    return sr


def _peak_mb() -> dict:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": round(me, 1), "peak_rss_ffmpeg_mb": round(kids, 1)}


def cmd_photos(args) -> dict:
    from skimage import data
    from paddle_mmsr.image.io import write_image
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    for n in TRAIN_PHOTOS:
        write_image(out / f"{n}.png", getattr(data, n)())
    return {"photos": len(TRAIN_PHOTOS), "dir": str(out)}


def cmd_speed(args) -> dict:
    """Whole pipeline (decode, TVAT, networks, stitch, encode) on a 352x288 clip."""
    from paddle_mmsr.image.video_io import write_video
    from paddle_mmsr.sr.video import upscale_video
    sr = _load(args.bundle, args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_video(Path(tmp) / "pan.mp4", (lr for _, lr in pan_hr_lr(args.frames, args.gray)),
                           25, tone=440)
        t = time.perf_counter()
        r = upscale_video(sr, clip, Path(tmp) / "out.mp4", progress=False, log=lambda s: None)
        sec = time.perf_counter() - t
    return {"frames": r["frames"], "in": f"{LR_W}x{LR_H}", "out": "x".join(map(str, r["size"])),
            "gray": args.gray, "seconds": round(sec, 1),
            "s_per_frame": round(sec / r["frames"], 3), **_peak_mb()}


def cmd_flicker(args) -> dict:
    """Flicker (mean |frame t - frame t-1|) of routed output with and without stability,
    against bicubic of the same LR frames; PSNR-Y against the HR frames."""
    from paddle_mmsr.metrics.psnr_ssim import psnr
    from paddle_mmsr.sr.reconstruct import bicubic_up
    from paddle_mmsr.sr.video import StableRouter
    from paddle_mmsr.image.io import to_uint
    sr = _load(args.bundle, args.threads)
    margins = [float(m) for m in args.margins.split(",")]
    runs = {f"stability {m:g}": StableRouter(sr.bundle, "tvat", m) for m in margins}
    prev, acc, psnrs, switches = {}, {}, {}, {}
    for hr, lr in pan_hr_lr(args.frames):
        outs = {"bicubic": to_uint(bicubic_up(lr.astype(np.float32) / 255, 4), np.uint8)}
        for name, router in runs.items():
            before = None if router.previous is None else router.previous.copy()
            r = sr.reconstruct(lr, router=router)
            outs[name] = r.image
            if before is not None:
                switches[name] = switches.get(name, 0) + int((before != r.classes).sum())
        for name, img in outs.items():
            f = img.astype(np.float32)
            if name in prev:
                acc[name] = acc.get(name, 0.0) + float(np.abs(f - prev[name]).mean())
            prev[name] = f
            psnrs.setdefault(name, []).append(psnr(img, hr))
    n = args.frames - 1
    res = {name: {"flicker": round(acc[name] / n, 4), "psnr_y": round(float(np.mean(p)), 3)}
           for name, p in psnrs.items()}
    base = res["bicubic"]["flicker"]
    for name in runs:
        res[name]["flicker_over_bicubic"] = round(res[name]["flicker"] / base, 4)
        res[name]["class_switches"] = switches.get(name, 0)
    tiles = len(sr.reconstruct(lr).classes)
    return {"frames": args.frames, "tiles_per_frame": tiles, "pan": "1 HR px (0.25 LR px) per frame",
            "in": f"{LR_W}x{LR_H}", **res}


def cmd_oldfilm(args) -> dict:
    """PSNR-Y of bundles on a clip made from a degraded photo (gray, blur, grain per frame,
    then the whole LR clip through H.264 at QP ``--qp``), against the gray HR frames."""
    from skimage import data
    from paddle_mmsr.image.degrade import Degradation
    from paddle_mmsr.image.io import to_uint
    from paddle_mmsr.image.video_io import read_frames, write_video
    from paddle_mmsr.metrics.psnr_ssim import psnr
    from paddle_mmsr.sr.reconstruct import MMSR, bicubic_up
    deg = Degradation(gray=True, blur=args.blur, grain=args.grain)
    photo = data.coffee()
    hrs, rng = [], np.random.default_rng(0)
    for i in range(args.frames):
        hrs.append(np.ascontiguousarray(photo[8:8 + 384, 20 + 2 * i:20 + 2 * i + 512]))
    import cv2
    gray_hr = [_rgb(cv2.cvtColor(h, cv2.COLOR_RGB2GRAY)) for h in hrs]  # the truth: gray HR
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_video(Path(tmp) / "old.mp4", (deg(h, 4, rng) for h in hrs), 25, codec_args=[
            "-c:v", "libx264", "-qp", str(args.qp), "-pix_fmt", "yuv420p"])
        lrs = list(read_frames(clip))
    out = {"clip": f"{len(lrs)} frames 128x96 from skimage coffee: {deg}, then H.264 QP {args.qp}"}
    scores = {"bicubic": [psnr(to_uint(bicubic_up(lr.astype(np.float32) / 255, 4), np.uint8), h)
                          for lr, h in zip(lrs, gray_hr)]}
    for b in args.bundle:
        sr = MMSR.load(b, threads=args.threads)
        scores[b] = [psnr(sr.upscale(lr), h) for lr, h in zip(lrs, gray_hr)]
    out.update({k: round(float(np.mean(v)), 3) for k, v in scores.items()})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="benchmark_video.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("photos", help="training photos for configs/old_film_demo_cpu.yaml")
    p.add_argument("dir")
    default_bundle = str(ROOT / "pretrained" / "mmsr_x4_psnr")
    for name in ("speed", "flicker"):
        p = sub.add_parser(name)
        p.add_argument("--bundle", default=default_bundle)
        p.add_argument("--frames", type=int, default=20 if name == "speed" else 24)
        p.add_argument("--threads", type=int)
        if name == "speed":
            p.add_argument("--gray", action="store_true")
        else:
            p.add_argument("--margins", default="0,0.15", help="stability margins to compare")
    p = sub.add_parser("oldfilm")
    p.add_argument("--bundle", action="append", required=True)
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--blur", type=float, default=1.0)
    p.add_argument("--grain", type=float, default=5.0)
    p.add_argument("--qp", type=int, default=32)
    p.add_argument("--threads", type=int)
    args = ap.parse_args(argv)
    cmds = {"photos": cmd_photos, "speed": cmd_speed, "flicker": cmd_flicker,
            "oldfilm": cmd_oldfilm}
    print(json.dumps(cmds[args.cmd](args), indent=1))
    return 0
