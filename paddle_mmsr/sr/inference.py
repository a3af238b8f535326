"""Run class generators fast: export once with ``paddle.jit.save``, run with
Paddle Inference (oneDNN on CPU; CUDA / TensorRT on a GPU build). Dygraph is
the fallback and has the same interface: ``runner.run(x)`` maps an NCHW
float32 batch to its upscaled NCHW float32 batch, and is thread-safe.

The export is cached under the user cache only (``~/.cache/paddle_mmsr/
inference_cache/<key>/``, or ``cache_dir`` if given), never in a bundle folder
(whatever a bundle ships there is ignored). ``<key>`` is a hash of the verified
weights' sha256 and the exporter's version (Paddle, network code, export
format), so a stale export is never used; ``meta.json`` holds the sha256 of
the exported files, so a damaged export is rebuilt. Each entry holds the
marker file ``MARKER``: pruning removes only marked folders (never through a
link) of another exporter version.

``backend="auto"`` falls back to dygraph only for an ``ExportLimitation`` (a
known, named reason); any other export error is raised.
"""
from __future__ import annotations

import importlib
import json
import os
import queue
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from paddle_mmsr.core.devices import BACKENDS, DEVICES, parse_device
from paddle_mmsr.core.files import sha256_file
from paddle_mmsr.models.weights import build_class_generator

__all__ = ["BACKENDS", "DEVICES", "DygraphRunner", "PredictorRunner", "export_generator",
           "cache_root", "prune_cache", "make_runner", "default_threads", "ExportLimitation",
           "configure_cpu", "cached_export"]

CACHE_DIR = "inference_cache"
MARKER = ".paddle-mmsr-export"  # in every cache entry this module made
_EXPORT_LOCK = threading.Lock()
EXPORT_FORMAT = 2  # 2: PReLU exported as LeakyReLU (see _fast_activations)
# Paddle 3.3 records leaky_relu's slope as a double attribute, and its conv +
# activation fusion builds fused_conv2d with that slope as fuse_alpha, which is read
# as a float attribute: a null pointer, SIGSEGV when the predictor is built (a
# program patched to a float slope is refused by the loader). That one pass is
# skipped; the others fuse conv + bias + residual add (tested equal to dygraph).
_SKIPPED_ONEDNN_PASSES = ("conv_activation_onednn_fuse_pass",)


class ExportLimitation(RuntimeError):
    """Paddle Inference cannot be used here for a known reason (named in the message)."""


def default_threads() -> int:
    """The user's OMP_NUM_THREADS, else one thread per physical core (runtime.py)."""
    user = os.environ.get("OMP_NUM_THREADS", "")
    if user.isdigit() and int(user) > 0:
        return int(user)
    from paddle_mmsr.runtime import physical_cores
    return physical_cores()


def check_device(device: str, visible: int | None = None) -> None:
    """Refuse a GPU device that this Paddle build or this machine cannot give.
    ``visible``: number of visible GPUs (default: ask Paddle)."""
    kind, index = parse_device(device)
    if kind != "gpu":
        return
    import paddle
    if visible is None:
        if not paddle.is_compiled_with_cuda():
            raise RuntimeError(f"--device {device}: this PaddlePaddle build has no CUDA support "
                               "(install paddlepaddle-gpu, or use --device cpu)")
        visible = paddle.device.cuda.device_count()
    if visible == 0:
        raise RuntimeError(f"--device {device}: Paddle has CUDA but sees no GPU "
                           f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}"
                           "; check nvidia-smi), or use --device cpu")
    if index >= visible:
        raise RuntimeError(f"--device {device}: only {visible} GPU(s) visible "
                           f"(gpu:0 .. gpu:{visible - 1})")


def tensorrt_shapes(max_input) -> tuple:
    """(min, max, opt) input shapes for TensorRT's dynamic shapes: from 1x1 (small
    images give small tiles) to (batch, tile, tile)."""
    n, hw = max_input
    big = {"x": [n, 3, hw, hw]}
    return {"x": [1, 3, 1, 1]}, big, big


def check_tensorrt(model_file) -> None:
    """Paddle Inference's TensorRT engine (enable_tensorrt_engine) runs legacy
    ``.pdmodel`` programs only; Paddle 3's ``jit.save`` writes ``.json`` (PIR)."""
    if Path(model_file).suffix == ".json":
        import paddle
        raise ExportLimitation(
            f"--tensorrt: Paddle {paddle.__version__} exported {Path(model_file).name} (PIR "
            "format), and Paddle Inference's TensorRT engine applies to .pdmodel models only. "
            "Run without --tensorrt (CUDA without TensorRT), or use a Paddle 2.6 GPU build "
            "for TensorRT.")


class DygraphRunner:
    """Plain dygraph forward; one lock serialises callers."""
    name = "dygraph"

    def __init__(self, layer, device: str = "cpu"):
        self.layer, self.device = layer, device
        self._lock = threading.Lock()

    def run(self, x: np.ndarray) -> np.ndarray:
        import paddle
        with self._lock, paddle.no_grad():
            kind, index = parse_device(self.device)
            place = paddle.CUDAPlace(index) if kind == "gpu" else paddle.CPUPlace()
            return self.layer(paddle.to_tensor(x, place=place)).numpy()


def configure_cpu(cfg, threads: int | None = None, precision: str = "fp32") -> None:
    """oneDNN on the CPU: fusions (but the crashing one), bounded per-shape cache,
    ``threads`` math threads, bf16 kernels for ``precision="bf16"``."""
    cfg.disable_gpu()
    cfg.enable_mkldnn()
    for name in _SKIPPED_ONEDNN_PASSES:
        cfg.delete_pass(name)
    cfg.set_mkldnn_cache_capacity(8)  # bound oneDNN's per-shape cache
    cfg.set_cpu_math_library_num_threads(threads or default_threads())
    if precision == "bf16":
        cfg.enable_mkldnn_bfloat16()


class PredictorRunner:
    """Paddle Inference predictors: each serves one call at a time; concurrent
    callers get clones (sharing weights) of a template that never runs."""
    name = "inference"

    def __init__(self, model_file, params_file, device: str = "cpu", threads: int | None = None,
                 tensorrt: bool = False, max_input=(4, 128), precision: str = "fp32"):
        from paddle import inference as pi
        cfg = pi.Config(str(model_file), str(params_file))
        kind, index = parse_device(device)
        self.precision = precision
        if kind == "gpu":
            if precision == "bf16":  # untested here (no GPU)
                cfg.enable_use_gpu(256, index, pi.PrecisionType.Bfloat16)
            else:
                cfg.enable_use_gpu(256, index)  # the card of "gpu:N"
            if tensorrt:  # untested here (no GPU); shapes range up to (batch, tile)
                check_tensorrt(model_file)
                cfg.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=max_input[0],
                                           min_subgraph_size=3,
                                           precision_mode=pi.PrecisionType.Float32,
                                           use_static=False, use_calib_mode=False)
                cfg.set_trt_dynamic_shape_info(*tensorrt_shapes(max_input))
        else:
            configure_cpu(cfg, threads, precision)
        cfg.disable_glog_info()
        self._template = pi.create_predictor(cfg)
        self._idle = queue.SimpleQueue()
        self._clone_lock = threading.Lock()
        self._idle.put(self._template.clone())

    def _take(self):
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            with self._clone_lock:
                return self._template.clone()

    def run(self, x: np.ndarray) -> np.ndarray:
        pred = self._take()
        try:
            inp = pred.get_input_handle(pred.get_input_names()[0])
            inp.reshape(list(x.shape))
            inp.copy_from_cpu(np.ascontiguousarray(x, dtype=np.float32))
            pred.run()
            return pred.get_output_handle(pred.get_output_names()[0]).copy_to_cpu()
        finally:
            self._idle.put(pred)


def cache_root(bundle=None, cache_dir=None) -> Path:
    """Where exports live: ``cache_dir`` as given, else the user cache (never a bundle)."""
    if cache_dir is not None:
        return Path(cache_dir)
    from paddle_mmsr.core.files import user_cache
    return user_cache() / CACHE_DIR


def sha256_text(text: str) -> str:
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()


def _exporter_version() -> dict:
    import paddle
    from paddle_mmsr.models import generator  # a changed network definition re-exports
    return {"paddle": paddle.__version__, "code": sha256_file(generator.__file__)[:16],
            "export": EXPORT_FORMAT}


def _export_meta(bundle, entry, weights_sha: str) -> dict:
    return {"spec": str(entry.spec), "generator": dict(entry.generator), "scale": bundle.scale,
            "weights": weights_sha, **_exporter_version()}


def _fast_activations(layer) -> None:
    """Replace every one-parameter PReLU by the equal LeakyReLU(its alpha), in place.
    oneDNN's PReLU is slow here (about half of a generator's time at 128 px tiles);
    its LeakyReLU is a plain elementwise op."""
    import paddle.nn as nn
    for name, sub in list(layer._sub_layers.items()):
        if isinstance(sub, nn.PReLU) and int(sub._weight.size) == 1:
            layer._sub_layers[name] = nn.LeakyReLU(float(sub._weight.numpy().reshape(-1)[0]))
        elif sub is not None:
            _fast_activations(sub)


def _model_files(folder: Path):
    """(model file, params file) of a jit.save export: PIR ``.json`` or legacy ``.pdmodel``."""
    for ext in (".json", ".pdmodel"):
        if (folder / f"model{ext}").exists() and (folder / "model.pdiparams").exists():
            return folder / f"model{ext}", folder / "model.pdiparams"
    return None


def _file_hashes(files) -> dict:
    return {Path(f).name: sha256_file(f) for f in files}


def _require_inference() -> None:
    try:
        importlib.import_module("paddle.inference")
    except ImportError as e:
        raise ExportLimitation(f"this PaddlePaddle build has no Paddle Inference ({e})") from None


def _make_cache_folder(root: Path) -> Path:
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=root))
        (tmp / MARKER).write_text("made by paddle_mmsr.sr.inference\n")
        return tmp
    except OSError as e:  # read-only, full, or not a folder
        raise ExportLimitation(f"no writable folder for the export cache ({e})") from None


def _cache_entry(bundle, entry, cache_dir=None) -> tuple:
    """(folder, meta) of class ``entry``'s export: keyed by its verified weights and
    the exporter's version."""
    sha = sha256_file(bundle.verified_weights(entry))  # the manifest's, when it has one
    meta = _export_meta(bundle, entry, sha)
    return cache_root(bundle, cache_dir) / sha256_text(json.dumps(meta, sort_keys=True))[:32], meta


def cached_export(bundle, entry, cache_dir=None):
    """(model file, params file) of a complete, current export of class ``entry``
    whose weights are the manifest's (sha256), else None. No export work."""
    return _valid_export(*_cache_entry(bundle, entry, cache_dir)) or None


def export_generator(bundle, entry, cache_dir=None, on_export=None) -> tuple:
    """Export class ``entry`` (once; again if the cached files changed) and return
    (model file, params file). ``on_export(entry)`` is called before an export is made."""
    import paddle
    _require_inference()
    final, meta = _cache_entry(bundle, entry, cache_dir)
    root = final.parent
    with _EXPORT_LOCK:
        files = _valid_export(final, meta)
        if files:
            return files
        if on_export is not None:
            on_export(entry)
        layer = build_class_generator(bundle, entry)  # checks the manifest sha256 too
        _fast_activations(layer)
        tmp = _make_cache_folder(root)
        try:
            spec = paddle.static.InputSpec([None, 3, None, None], "float32", "x")
            paddle.jit.save(layer, str(tmp / "model"), input_spec=[spec])
            meta["files"] = _file_hashes(_model_files(tmp))
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            if _ours(final):  # damaged: rebuilt
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:  # another process finished the same export first
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        files = _valid_export(final, meta)
        if not files:
            raise ExportLimitation(f"{final}: in the way of the export and not one of ours "
                                   "(no marker file); remove it or pass another cache folder")
        return files


def _read_meta(folder: Path):
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def _valid_export(folder: Path, meta: dict):
    """(model, params) of an export of ours made with ``meta`` whose files are intact."""
    files = _ours(folder) and _model_files(folder)
    saved = _read_meta(folder) if files else None
    if not saved or saved.get("files") != _file_hashes(files):
        return None
    return files if all(saved.get(k) == v for k, v in meta.items() if k != "files") else None


def _ours(folder: Path) -> bool:
    """A real folder (not a link) holding this module's marker file."""
    return (not folder.is_symlink() and folder.is_dir() and not (folder / MARKER).is_symlink()
            and (folder / MARKER).is_file())


def prune_cache(bundle=None, cache_dir=None) -> list:
    """Remove exports made by another exporter version (they are never used again):
    only folders of ours (marker file, not links); returns what was removed."""
    root = cache_root(bundle, cache_dir)
    if root.is_symlink() or not root.is_dir():
        return []
    now, removed = _exporter_version(), []
    for d in root.iterdir():
        if d.name.startswith(".") or not _ours(d):
            continue
        meta = _read_meta(d) or {}
        if any(meta.get(k) != v for k, v in now.items()):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def make_runner(bundle, entry, backend: str = "auto", device: str = "cpu",
                threads: int | None = None, cache_dir=None, tensorrt: bool = False,
                max_input=(4, 128), precision: str = "fp32", on_export=None):
    """A runner for one class. ``auto``: Paddle Inference, dygraph on an ExportLimitation.
    ``precision``: ``fp32`` or ``bf16`` (decided by ``precision.choose_precision``);
    bf16 needs Paddle Inference."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16 here, got {precision!r}")
    if precision == "bf16" and backend == "dygraph":
        raise ValueError("bf16 runs in Paddle Inference only; use backend auto or inference")
    check_device(device)
    if backend != "dygraph":
        try:
            model, params = export_generator(bundle, entry, cache_dir, on_export)
            return PredictorRunner(model, params, device, threads, tensorrt, max_input,
                                   precision)
        except ExportLimitation as e:
            if backend == "inference" or tensorrt or precision == "bf16":  # never dropped silently
                raise
            import warnings
            warnings.warn(f"class {entry.id}: Paddle Inference unavailable ({e}); "
                          "using dygraph (slower)")
    layer = build_class_generator(bundle, entry)
    kind, index = parse_device(device)
    if kind == "gpu":
        layer.to(device=f"gpu:{index}")
    elif threads:
        from paddle.base import core
        core.set_num_threads(threads)  # process-wide math library threads in dygraph
    return DygraphRunner(layer, device)
