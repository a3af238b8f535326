#!/usr/bin/env python
"""Same as ``mmsr-prepare-demo``; see paddle_mmsr/cli/prepare_demo.py."""
from paddle_mmsr.cli.prepare_demo import main

if __name__ == "__main__":
    raise SystemExit(main())
