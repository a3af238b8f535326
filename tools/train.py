#!/usr/bin/env python
"""Same as ``mmsr-train``; see paddle_mmsr/cli/train.py."""
from paddle_mmsr.cli.train import main

if __name__ == "__main__":
    raise SystemExit(main())
