"""File hashing and the package's user cache folder."""
from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["sha256_file", "user_cache"]


def user_cache() -> Path:
    """The package's user cache folder, ``~/.cache/paddle_mmsr``: the converted
    VGG19 weights and the Paddle Inference exports of read-only bundles."""
    return Path.home() / ".cache" / "paddle_mmsr"


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
