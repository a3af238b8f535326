#!/usr/bin/env python
"""Same as ``mmsr-convert``; see paddle_mmsr/cli/convert.py."""
from paddle_mmsr.cli.convert import main

if __name__ == "__main__":
    raise SystemExit(main())
