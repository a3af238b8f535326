#!/usr/bin/env python
"""Same as ``mmsr-split``; see paddle_mmsr/cli/split.py."""
from paddle_mmsr.cli.split import main

if __name__ == "__main__":
    raise SystemExit(main())
