"""Measurements behind docs/video.md and docs/old_film.md; prints one JSON object.

    python benchmarks/benchmark_video.py photos DIR          # training photos for benchmarks/configs/old_film_demo_cpu.yaml
    python benchmarks/benchmark_video.py speed [--frames 20] # s/frame at 352x288 -> 1408x1152, peak RSS
    python benchmarks/benchmark_video.py flicker             # routing flicker with/without stability, PSNR
    python benchmarks/benchmark_video.py oldfilm --bundle A --bundle B  # PSNR on a degraded clip
    python benchmarks/benchmark_video.py opencv              # OpenCV vs ffmpeg pipe / Pillow

Clips are slow pans over scikit-image photos, made with the bundled ffmpeg.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")

ROOT = Path(__file__).resolve().parents[1]
def train_photos() -> tuple:
    """benchmarks/configs/old_film_demo_cpu.yaml's photos: mmsr-prepare-demo's plus a gray one."""
    from paddle_mmsr.cli.prepare_demo import TRAIN_PHOTOS as DEMO
    return DEMO + ("moon",)
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


def pan_hr_lr(n: int, gray: bool = False, grain: float = 0.0):
    """(HR 1408x1152, LR 352x288) frame pairs of a pan moving 1 HR px (1/4 LR px) per frame;
    LR by MATLAB bicubic, plus new film grain of sigma ``grain`` in every frame."""
    from paddle_mmsr.image.degrade import Degradation
    scene = mosaic()
    if gray:
        import cv2
        scene = _rgb(cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY))
    deg = Degradation(grain=grain)
    for i in range(n):
        hr = np.ascontiguousarray(scene[200:200 + 4 * LR_H, 40 + i:40 + i + 4 * LR_W])
        yield hr, deg(hr, 4, np.random.default_rng(i))


def _load(bundle, threads, tile=None, overlap=None):
    from paddle_mmsr.sr.reconstruct import MMSR
    opts = {k: v for k, v in dict(tile=tile, overlap=overlap).items() if v is not None}
    sr = MMSR.load(bundle, threads=threads, **opts)
    sr.prepare()
    return sr


def _peak_mb() -> dict:
    """Peak RSS of this process (Python + Paddle; the ffmpeg children not included:
    their ru_maxrss counts the forked Python before exec)."""
    return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return round(kb / 1024, 1)


def _cpu_s() -> float:
    """CPU seconds used so far by this process and its finished children (ffmpeg)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def cmd_photos(args) -> dict:
    from skimage import data
    from paddle_mmsr.image.io import write_image
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    names = train_photos()
    for n in names:
        write_image(out / f"{n}.png", getattr(data, n)())
    return {"photos": list(names), "dir": str(out)}


def cmd_speed(args) -> dict:
    """Whole pipeline (decode, TVAT, networks, stitch, encode) on a 352x288 clip."""
    from paddle_mmsr.image.video_io import write_video
    from paddle_mmsr.sr.video import upscale_video
    sr = _load(args.bundle, args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_video(Path(tmp) / "pan.mp4", (lr for _, lr in pan_hr_lr(args.frames, args.gray)),
                           25, tone=440)
        samples, stop = [], threading.Event()

        def sample():  # RSS of this process once a second, to see whether it grows
            while not stop.wait(1.0):
                samples.append(_rss_mb())
        watcher = threading.Thread(target=sample, daemon=True)
        t, cpu = time.perf_counter(), _cpu_s()
        watcher.start()
        r = upscale_video(sr, clip, Path(tmp) / "out.mp4", progress=False, log=lambda s: None)
        sec, cpu = time.perf_counter() - t, _cpu_s() - cpu
        stop.set()
        watcher.join()
    quarters = [samples[min(len(samples) - 1, int(q * len(samples)))] for q in (0.25, 0.5, 0.75)] \
        + [samples[-1]] if samples else []
    return {"frames": r["frames"], "in": f"{LR_W}x{LR_H}", "out": "x".join(map(str, r["size"])),
            "gray": args.gray, "seconds": round(sec, 1),
            "s_per_frame": round(sec / r["frames"], 3),
            "cpu_s_per_frame": round(cpu / r["frames"], 3), "threads": sr.threads or "all",
            "load_average_1min": round(os.getloadavg()[0], 1), **_peak_mb(),
            "rss_mb_at_25_50_75_100_percent": quarters}


def cmd_flicker(args) -> dict:
    """Flicker (mean |frame t - frame t-1|) of routed output with and without stability,
    against bicubic of the same LR frames; PSNR-Y against the HR frames."""
    from paddle_mmsr.metrics.psnr_ssim import psnr
    from paddle_mmsr.image.resize import bicubic_up
    from paddle_mmsr.sr.video import StableRouter
    from paddle_mmsr.image.io import to_float, to_uint
    sr = _load(args.bundle, args.threads, args.tile, args.overlap)
    margins = [float(m) for m in args.margins.split(",")]
    runs = {f"stability {m:g}": StableRouter(sr.bundle, "tvat", m) for m in margins}
    prev, acc, psnrs, switches = {}, {}, {}, {}
    for hr, lr in pan_hr_lr(args.frames, grain=args.grain):
        outs = {"bicubic": to_uint(bicubic_up(to_float(lr), 4), np.uint8)}
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
    return {"frames": args.frames, "load_average_1min": round(os.getloadavg()[0], 1),
            "tiles_per_frame": tiles, "tile": sr.tile, "overlap": sr.overlap, "grain": args.grain,
            "pan": "1 HR px (0.25 LR px) per frame",
            "in": f"{LR_W}x{LR_H}", **res}


def cmd_oldfilm(args) -> dict:
    """PSNR-Y of bundles on a clip made from a degraded photo (gray, blur, grain per frame,
    then the whole LR clip through H.264 at QP ``--qp``), against the gray HR frames."""
    from skimage import data
    from paddle_mmsr.image.degrade import Degradation
    from paddle_mmsr.image.io import to_float, to_uint
    from paddle_mmsr.image.video_io import read_frames, write_video
    from paddle_mmsr.metrics.psnr_ssim import psnr
    from paddle_mmsr.image.resize import bicubic_up
    from paddle_mmsr.sr.reconstruct import MMSR
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
    scores = {"bicubic": [psnr(to_uint(bicubic_up(to_float(lr), 4), np.uint8), h)
                          for lr, h in zip(lrs, gray_hr)]}
    for b in args.bundle:
        sr = MMSR.load(b, threads=args.threads)
        scores[b] = [psnr(sr.upscale(lr), h) for lr, h in zip(lrs, gray_hr)]
    out.update({k: round(float(np.mean(v)), 3) for k, v in scores.items()})
    return out


def _best_ms(f, n: int = 5) -> float:
    f()
    best = 1e9
    for _ in range(n):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return round(best * 1000, 2)


def cmd_opencv(args) -> dict:
    """OpenCV against what the project uses: video decode (ffmpeg pipe) and image files
    (Pillow), on the 352x288 pan and a 1408x1152 mosaic."""
    import io
    import cv2
    from PIL import Image
    from paddle_mmsr.image.video_io import read_frames, write_video
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_video(Path(tmp) / "c.mp4", (lr for _, lr in pan_hr_lr(args.frames)), 25)

        def pipe():
            return sum(1 for _ in read_frames(clip))

        def capture():
            cap, n = cv2.VideoCapture(str(clip)), 0
            while True:
                ok, f = cap.read()
                if not ok:
                    return n
                cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
                n += 1
        out["decode_ms_per_frame"] = {
            "ffmpeg pipe (with the probe passes)": round(_best_ms(pipe, 2) / args.frames, 2),
            "cv2.VideoCapture": round(_best_ms(capture, 2) / args.frames, 2)}
    img = mosaic()[:1152, :1408].copy()
    png, jpg = io.BytesIO(), io.BytesIO()
    Image.fromarray(img).save(png, format="PNG")
    Image.fromarray(img).save(jpg, format="JPEG", quality=95)
    png, jpg = png.getvalue(), jpg.getvalue()
    out["image_ms_1408x1152"] = {
        "png decode Pillow": _best_ms(lambda: np.asarray(Image.open(io.BytesIO(png)))),
        "png decode cv2": _best_ms(lambda: cv2.imdecode(np.frombuffer(png, np.uint8), -1)),
        "png encode Pillow": _best_ms(lambda: Image.fromarray(img).save(io.BytesIO(), "PNG")),
        "png encode cv2": _best_ms(lambda: cv2.imencode(".png", img[:, :, ::-1])),
        "jpeg decode Pillow": _best_ms(lambda: np.asarray(Image.open(io.BytesIO(jpg)))),
        "jpeg decode cv2": _best_ms(lambda: cv2.imdecode(np.frombuffer(jpg, np.uint8), 1)),
        "jpeg q95 encode Pillow": _best_ms(lambda: Image.fromarray(img).save(
            io.BytesIO(), "JPEG", quality=95)),
        "jpeg q95 encode cv2": _best_ms(lambda: cv2.imencode(
            ".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])),
        "rgb->gray numpy": _best_ms(lambda: (img @ np.array([0.299, 0.587, 0.114])).round()),
        "rgb->gray cv2": _best_ms(lambda: cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))}
    out["png_bytes"] = {"Pillow (default level)": len(png),
                        "cv2 (default level)": len(cv2.imencode(".png", img)[1])}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("photos", help="training photos for benchmarks/configs/old_film_demo_cpu.yaml")
    p.add_argument("dir")
    default_bundle = str(ROOT / "pretrained" / "mmsr_x4_bicubic")
    for name in ("speed", "flicker"):
        p = sub.add_parser(name)
        p.add_argument("--bundle", default=default_bundle)
        p.add_argument("--frames", type=int, default=20 if name == "speed" else 24)
        p.add_argument("--threads", type=int)
        if name == "speed":
            p.add_argument("--gray", action="store_true")
        else:
            p.add_argument("--margins", default="0,0.15", help="stability margins to compare")
            p.add_argument("--grain", type=float, default=0.0, help="film grain sigma per frame")
            p.add_argument("--tile", type=int, help="tile size (default: the MMSR default)")
            p.add_argument("--overlap", type=int, help="tile overlap (default: the MMSR default)")
    p = sub.add_parser("opencv")
    p.add_argument("--frames", type=int, default=100)
    p = sub.add_parser("oldfilm")
    p.add_argument("--bundle", action="append", required=True)
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--blur", type=float, default=1.0)
    p.add_argument("--grain", type=float, default=5.0)
    p.add_argument("--qp", type=int, default=32)
    p.add_argument("--threads", type=int)
    args = ap.parse_args(argv)
    cmds = {"photos": cmd_photos, "speed": cmd_speed, "flicker": cmd_flicker,
            "oldfilm": cmd_oldfilm, "opencv": cmd_opencv}
    print(json.dumps(cmds[args.cmd](args), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
