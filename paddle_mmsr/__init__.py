"""paddle-mmsr: multi-model, TVAT-routed SRGAN super-resolution in PaddlePaddle."""
__version__ = "0.1.0"

__all__ = ["MMSR", "__version__"]


def __getattr__(name):  # lazy: importing the package does not import paddle
    if name == "MMSR":
        from paddle_mmsr.sr.reconstruct import MMSR
        return MMSR
    raise AttributeError(name)
