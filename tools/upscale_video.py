#!/usr/bin/env python
"""Same as ``mmsr-upscale-video``; see paddle_mmsr/cli/upscale_video.py."""
from paddle_mmsr.cli.upscale_video import main

if __name__ == "__main__":
    raise SystemExit(main())
