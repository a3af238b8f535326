"""paddle-mmsr: multi-model, TVAT-routed SRGAN super-resolution in PaddlePaddle."""
import hashlib
import warnings
from pathlib import Path

__version__ = "0.1.0"

# Paddle warns at import when ccache is missing; it only matters for building C++ extensions
warnings.filterwarnings("ignore", message="No ccache found")

__all__ = ["MMSR", "__version__", "user_cache", "sha256_file"]


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


def __getattr__(name):  # lazy: importing the package does not import paddle
    if name == "MMSR":
        from paddle_mmsr.sr.reconstruct import MMSR
        return MMSR
    raise AttributeError(name)
