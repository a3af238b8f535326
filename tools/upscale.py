#!/usr/bin/env python
"""Same as ``mmsr-upscale``; see paddle_mmsr/cli/upscale.py."""
from paddle_mmsr.cli.upscale import main

if __name__ == "__main__":
    raise SystemExit(main())
