"""paddle-mmsr: multi-model, TVAT-routed SRGAN super-resolution in PaddlePaddle."""
import warnings

from paddle_mmsr.core.files import sha256_file, user_cache

__version__ = "0.1.0"

# Paddle warns at import when ccache is missing; it only matters for building C++ extensions
warnings.filterwarnings("ignore", message="No ccache found")

__all__ = ["MMSR", "__version__", "user_cache", "sha256_file"]


def __getattr__(name):  # lazy: importing the package does not import paddle
    if name == "MMSR":
        from paddle_mmsr.sr.reconstruct import MMSR
        return MMSR
    raise AttributeError(name)
