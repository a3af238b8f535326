"""Upscale a video x4 with an MMSR bundle, keeping its sound.

    python tools/upscale_video.py IN -o OUT.mp4 [options]

Decodes and encodes with the ffmpeg bundled by imageio-ffmpeg. The output is
H.264 yuv420p (``--crf``), or lossless RGB H.264 with ``--lossless``; audio
streams are copied. A killed run started again with the same command resumes
from its last finished segment (kept in ``.OUT.mp4.parts/`` next to OUT).
Exit code 1 when the video could not be upscaled, 2 on bad options or bundle.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")  # keep Paddle's C++ log quiet

from paddle_mmsr.cli import needs_paddle  # noqa: E402
from paddle_mmsr.core.shipped import DEFAULT_BUNDLE, resolve_bundle  # noqa: E402
from paddle_mmsr.sr.precision import PRECISIONS  # noqa: E402


def seconds(text: str) -> float:
    """``12.5``, ``1:02`` or ``0:01:02.5`` -> seconds."""
    if not re.fullmatch(r"(\d+:){0,2}\d+(\.\d*)?", text.strip()):
        raise argparse.ArgumentTypeError(f"expected seconds or [HH:]MM:SS, got {text!r}")
    total = 0.0
    for part in text.strip().split(":"):
        total = total * 60 + float(part)
    return total


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="mmsr-upscale-video",
                                 description="MMSR x4 video upscaling with the sound kept.")
    ap.add_argument("input", metavar="IN", help="video file")
    ap.add_argument("-o", "--output", required=True, metavar="OUT",
                    help="output video (.mp4, .mkv, .mov)")
    ap.add_argument("--bundle", help="bundle folder, or the name of a shipped bundle "
                    f"(default: {DEFAULT_BUNDLE})")
    ap.add_argument("--crf", type=int, help="H.264 quality, 0-51, lower = better (default 18)")
    ap.add_argument("--preset", default="medium", help="x264 preset (default %(default)s)")
    ap.add_argument("--lossless", action="store_true", help="lossless RGB H.264 (large files)")
    ap.add_argument("--start", type=seconds, help="start at T (seconds or [HH:]MM:SS)")
    ap.add_argument("--duration", type=seconds, help="only T of the input")
    ap.add_argument("--stability", type=float, default=0.15,
                    help="routing hysteresis: a tile keeps its class while its score is within "
                         "this relative margin of it (0 = off; default %(default)s)")
    ap.add_argument("--segment", type=float, default=10.0,
                    help="seconds per resumable segment (default %(default)s)")
    ap.add_argument("--deinterlace", choices=("auto", "on", "off"), default="auto",
                    help="auto: yadif when the stream is marked or detected interlaced")
    ap.add_argument("--routing", choices=("tvat", "single"), default="tvat")
    ap.add_argument("--tile", type=int, help="tile size in LR px (default 128)")
    ap.add_argument("--overlap", type=int, help="tile overlap in LR px (default 16)")
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--backend", choices=("auto", "inference", "dygraph"), default="auto")
    ap.add_argument("--threads", type=int, help="CPU threads (default: all)")
    ap.add_argument("--precision", choices=PRECISIONS, default="auto",
                    help="auto: bf16 where the hardware has it and the bundle's recorded "
                         "bf16 cost is small, else fp32")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    ap.add_argument("--accept-short", action="store_true",
                    help="upscale a video whose stream ends before its duration says "
                         "(a partial download) instead of stopping")
    ap.add_argument("-q", "--quiet", action="store_true",
                    help="no progress (a bar on a terminal, else a line every half minute)")
    args = ap.parse_args(argv)
    if args.crf is not None and args.lossless:
        ap.error("--crf and --lossless exclude each other: --lossless has no quality setting")
    args.crf = 18 if args.crf is None else args.crf
    if not 0 <= args.crf <= 51:
        ap.error("--crf must be 0-51")
    if args.segment <= 0 or args.stability < 0:
        ap.error("--segment must be > 0 and --stability >= 0")
    return args


@needs_paddle
def main(argv=None) -> int:
    args = parse_args(argv)
    from paddle_mmsr.runtime import tune_process
    tune_process()  # before Paddle loads; never over the user's settings
    try:
        bundle = resolve_bundle(args.bundle)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.output)
    from paddle_mmsr.sr.video import CONTAINERS
    if out.suffix.lower() not in CONTAINERS:
        print(f"error: -o {out}: the output must end in {', '.join(CONTAINERS)}", file=sys.stderr)
        return 2
    if out.exists() and not args.overwrite:
        print(f"error: {out} exists (pass --overwrite to replace it)", file=sys.stderr)
        return 2
    from paddle_mmsr.image.video_io import VideoError, probe, short_stream
    try:  # a bad input fails before Paddle loads
        info = probe(args.input, args.start, args.duration, args.deinterlace)
    except VideoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    short = short_stream(info)
    if short:
        print(f"warning: {short}", file=sys.stderr)
        if not args.accept_short:
            print(f"error: stopped before any work; pass --accept-short to upscale the "
                  f"{info.frames} frames there are", file=sys.stderr)
            return 1
    from paddle_mmsr.cli.upscale import load_model
    from paddle_mmsr.core.manifest import BundleError
    from paddle_mmsr.locks import Busy
    from paddle_mmsr.sr.video import interrupted_note, upscale_video
    try:
        sr = load_model(bundle, args)  # SIGTERM stops like Ctrl-C from here on
    except (BundleError, RuntimeError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        r = upscale_video(sr, args.input, out, crf=args.crf, preset=args.preset,
                          lossless=args.lossless, start=args.start, duration=args.duration,
                          routing=args.routing, stability=args.stability, segment=args.segment,
                          deinterlace=args.deinterlace, overwrite=args.overwrite,
                          progress=False if args.quiet else True if sys.stderr.isatty() else "lines",
                          log=lambda s: print(s, file=sys.stderr), info=info)
    except (VideoError, FileExistsError, OSError, Busy) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (upscale.Stopped)
        signum = getattr(e, "signum", 2)
        note = interrupted_note(out, args.segment)
        if signum == 15:  # say what stopped it when it was not Ctrl-C
            note = note.replace("interrupted", "interrupted (SIGTERM)", 1)
        print("\n" + note, file=sys.stderr)
        return 128 + signum
    w, h = r["size"]
    print(f"{out}: {r['frames']} frames, {w}x{h}, {r['fps']:.3f} fps, "
          f"audio: {', '.join(r['audio']) or 'none'}; {r['new_segments']} of {r['segments']} "
          f"segments made in {r['seconds']:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
