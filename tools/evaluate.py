#!/usr/bin/env python
"""Same as ``mmsr-evaluate``; see paddle_mmsr/cli/evaluate.py."""
from paddle_mmsr.cli.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
