#!/usr/bin/env python
"""Measurements behind docs/video.md and docs/old_film.md (record their output there).

    python tools/benchmark_video.py photos DIR          # training photos for configs/old_film_demo_cpu.yaml
    python tools/benchmark_video.py speed [--frames 20] # s/frame at 352x288 -> 1408x1152, peak RSS
    python tools/benchmark_video.py flicker             # routing flicker with/without stability, PSNR
    python tools/benchmark_video.py oldfilm --bundle A --bundle B  # PSNR on a degraded clip
    python tools/benchmark_video.py opencv              # OpenCV vs ffmpeg pipe / Pillow

Clips are slow pans over scikit-image photos, made with the bundled ffmpeg.
"""
from paddle_mmsr.cli.benchmark_video import main

if __name__ == "__main__":
    raise SystemExit(main())
