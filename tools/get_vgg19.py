#!/usr/bin/env python
"""Same as ``mmsr-get-vgg19``; see paddle_mmsr/cli/get_vgg19.py."""
from paddle_mmsr.cli.get_vgg19 import main

if __name__ == "__main__":
    raise SystemExit(main())
