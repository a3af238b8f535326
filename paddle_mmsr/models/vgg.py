"""Frozen VGG19 feature extractor for the SRGAN content (perceptual) loss.

Input: NCHW float32 RGB in [0, 1]; ImageNet mean/std normalisation is done
inside. Only the layers up to the selected one are built. Parameter names
match ``paddle.vision.models.vgg19()`` (``features.0.weight`` ...
``features.34.bias``), so its state dicts load as they are.

Default layer ``conv5_4``: the last conv of block 5 *before* its ReLU, i.e.
SRGAN's "VGG54" taken before activation as ESRGAN recommends (denser, less
saturated features). ``relu5_4`` gives SRGAN's original after-ReLU variant.

Weights (``load_vgg19_features``), first found wins:
  1. ``weights=`` a ``.safetensors`` path or a state dict;
  2. ``$PADDLE_MMSR_VGG19``, ``~/.cache/paddle_mmsr/vgg19_features.safetensors``,
     ``<repo>/pretrained/vgg19_features.safetensors``.
Otherwise ``VGG19WeightsNotFound`` (``tools/get_vgg19.py`` writes the file).
Only safetensors files are read: an old ``.pdparams`` (a pickle) is refused
with the command that converts it, and nothing is downloaded here. Random weights only with ``weights="random"``:
untrained, drawn from ``seed`` alone (same seed, same weights, whatever the
state of Paddle's global random generator).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import paddle
from paddle import nn

from paddle_mmsr.core.files import user_cache
from paddle_mmsr.core.spec import LAYER_NAMES, VGG19_LAYOUT

__all__ = ["VGG19Features", "load_vgg19_features", "VGG19WeightsNotFound",
           "LAYER_NAMES", "default_weights_paths", "random_vgg19_state"]

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
ENV_VAR = "PADDLE_MMSR_VGG19"
WEIGHTS_FILE = "vgg19_features.safetensors"
MAX_WEIGHTS_BYTES = 1 << 30
REPO_WEIGHTS = Path(__file__).resolve().parents[2] / "pretrained" / WEIGHTS_FILE
HINT = ("run `python tools/get_vgg19.py` (writes ~/.cache/paddle_mmsr/"
        f"{WEIGHTS_FILE}), set ${ENV_VAR}, or pass weights=PATH")


class VGG19WeightsNotFound(FileNotFoundError):
    pass


class VGG19Features(nn.Layer):
    """VGG19 ``features`` truncated after ``layer``; frozen, eval mode."""

    def __init__(self, layer: str = "conv5_4"):
        super().__init__()
        if layer not in LAYER_NAMES:
            raise ValueError(f"unknown VGG19 layer {layer!r}; one of {LAYER_NAMES}")
        self.layer = layer
        layers, cin = [], 3
        for v in VGG19_LAYOUT:
            if v == "M":
                layers.append(nn.MaxPool2D(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2D(cin, v, 3, padding=1), nn.ReLU()]
                cin = v
        self.features = nn.Sequential(*layers[: LAYER_NAMES.index(layer) + 1])
        self.register_buffer("mean", paddle.to_tensor(IMAGENET_MEAN).reshape([1, 3, 1, 1]),
                             persistable=False)
        self.register_buffer("std", paddle.to_tensor(IMAGENET_STD).reshape([1, 3, 1, 1]),
                             persistable=False)
        self.freeze()

    def freeze(self):
        for p in self.parameters():
            p.stop_gradient = True
        self.eval()
        return self

    def load_weights(self, state: dict):
        """Load a vgg19 / vgg19().features state dict (extra keys ignored)."""
        state = {k if k.startswith("features.") else "features." + k: v
                 for k, v in state.items()}
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise KeyError(f"VGG19 weights lack {missing[:4]}... ({len(missing)} keys)")
        for k, p in own.items():
            if tuple(state[k].shape) != tuple(p.shape):
                raise ValueError(f"{k}: shape {list(state[k].shape)} != {list(p.shape)}")
        self.set_state_dict({k: state[k] for k in own})
        return self.freeze()

    def forward(self, x):
        return self.features((x - self.mean) / self.std)


def default_weights_paths() -> list:
    """Candidate ``.safetensors`` locations, in search order."""
    paths = []
    if os.environ.get(ENV_VAR):
        paths.append(Path(os.environ[ENV_VAR]).expanduser())
    paths.append(user_cache() / WEIGHTS_FILE)
    paths.append(REPO_WEIGHTS)
    return paths


def _find_weights():
    env = os.environ.get(ENV_VAR)
    if env and not Path(env).expanduser().is_file():
        raise VGG19WeightsNotFound(f"${ENV_VAR}={env} does not exist; {HINT}")
    for p in default_weights_paths():
        if p.is_file():
            return str(p)
    raise VGG19WeightsNotFound(
        f"No VGG19 weights found (looked in {[str(p) for p in default_weights_paths()]}). "
        f"To fix: {HINT}.")


def _feature_shapes() -> dict:
    """{features.N.weight/bias: shape} of the whole VGG19 ``features`` (nothing built)."""
    out, idx, cin = {}, 0, 3
    for v in VGG19_LAYOUT:
        if v == "M":
            idx += 1
        else:
            out[f"features.{idx}.weight"], out[f"features.{idx}.bias"] = (v, cin, 3, 3), (v,)
            idx, cin = idx + 2, v
    return out


def read_vgg19_file(path) -> dict:
    """{key: array} of a VGG19 safetensors file: a regular file of at most 1 GiB,
    float32 tensors of VGG19's keys (checked in the header before reading)."""
    from paddle_mmsr.core.safe_files import UnsafeFile, checked_file, load_tensors, read_header
    try:
        checked_file(path, max_bytes=MAX_WEIGHTS_BYTES, what="VGG19 weights")
        header, _ = read_header(path, "VGG19 weights")
    except UnsafeFile as e:
        raise ValueError(str(e)) from None
    own = _feature_shapes()
    for k, (dtype, shape) in header.items():
        key = k if k.startswith("features.") else "features." + k
        if key in own and (dtype != "F32" or tuple(shape) != own[key]):
            raise ValueError(f"{path}: {k} is {dtype} {list(shape)}, expected float32 "
                             f"{list(own[key])}")
    return load_tensors(path)


def random_vgg19_state(layer: str = "conv5_4", seed: int = 0) -> dict:
    """Untrained weights for ``VGG19Features(layer)`` from ``seed`` only (He-normal, zero bias)."""
    rng = np.random.default_rng(seed)
    state = {}
    for k, p in VGG19Features(layer).state_dict().items():
        shape = tuple(p.shape)
        if k.endswith(".weight"):
            fan_in = int(np.prod(shape[1:]))
            state[k] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype("float32")
        else:
            state[k] = np.zeros(shape, "float32")
    return state


def load_vgg19_features(layer: str = "conv5_4", weights=None, seed: int = 0) -> VGG19Features:
    """Build ``VGG19Features(layer)`` with real ImageNet weights.

    weights: None (search, see module doc), a ``.safetensors`` path, a state
    dict, or "random" (untrained, from ``seed``; only for tests).
    """
    if isinstance(weights, str) and weights == "random":
        weights = random_vgg19_state(layer, seed)
    if not isinstance(weights, dict):
        path = _find_weights() if weights is None else str(weights)
        if not os.path.isfile(path):
            raise VGG19WeightsNotFound(f"VGG19 weights file {path} not found; {HINT}")
        weights = read_vgg19_file(path)
    return VGG19Features(layer).load_weights(weights)
