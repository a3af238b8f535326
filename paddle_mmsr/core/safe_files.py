"""Files the project reads from paths a user or a download supplies.

Tensors are read only from safetensors files (a JSON header and raw little-
endian arrays: nothing in them can run code). Everything else a file holds
(checkpoint progress, random states, optimizer scalars) is JSON, kept in the
safetensors header's metadata. Older files written with ``paddle.save``
(``.pdparams``, ``.pdckpt``) are refused with the command that converts them
once (``mmsr-convert``, see docs/security.md); they are never loaded here.

Before a file is opened it must be a regular file (no FIFO, device or
folder), inside the folder it belongs to (no absolute names, no ``..``, no
link leading out), and, where a cap is given, not larger than the cap.
"""
from __future__ import annotations

import json
import os
import shlex
import stat
from pathlib import Path

import numpy as np

__all__ = ["UnsafeFile", "LegacyFile", "CONVERT_COMMAND", "convert_hint", "checked_file",
           "read_capped", "refuse_legacy", "read_header", "load_tensors", "save_tensors",
           "pack_state", "unpack_state", "LEGACY_SUFFIXES"]

CONVERT_COMMAND = "mmsr-convert"
LEGACY_SUFFIXES = (".pdparams", ".pdckpt")
_ZIP, _PICKLE = b"PK\x03\x04", b"\x80"


class UnsafeFile(ValueError):
    """A file that is not read: its place, its kind or its content is wrong."""


class LegacyFile(UnsafeFile):
    """A paddle.save (pickle) file from an older version: converted once, never loaded."""


def convert_hint(path) -> str:
    p = shlex.quote(str(path))
    return (f"convert it once with `{CONVERT_COMMAND} {p}` "
            f"(or `python tools/convert.py {p}`; see docs/security.md)")


def refuse_legacy(path, what: str = "file") -> None:
    """LegacyFile for a ``.pdparams`` / ``.pdckpt`` name; nothing is read."""
    path = Path(path)
    if path.suffix in LEGACY_SUFFIXES:
        raise LegacyFile(f"{path}: {what} in the old paddle.save format (a pickle, which can "
                         f"run code when loaded), so it is not loaded; {convert_hint(path)}")


def checked_file(path, folder=None, max_bytes: int | None = None, what: str = "file") -> Path:
    """``path`` if it is a regular file (inside ``folder`` when given: a relative
    name without ``..`` whose real location stays inside) of at most ``max_bytes``."""
    path = Path(path)
    if folder is not None:
        rel = Path(path)
        if rel.is_absolute() or ".." in rel.parts:
            raise UnsafeFile(f"{what} {str(path)!r}: must be a name inside {folder}, "
                             "not an absolute path or one with '..'")
        base = os.path.realpath(folder)
        path = Path(folder) / rel
        real = os.path.realpath(path)
        if os.path.commonpath([base, real]) != base:
            raise UnsafeFile(f"{path}: {what} is a link leading out of {folder} (to {real})")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UnsafeFile(f"{path}: {what} is missing") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "not a regular file")
        raise UnsafeFile(f"{path}: {what} is {kind}, not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise UnsafeFile(f"{path}: {what} is {st.st_size} bytes, more than the "
                         f"{max_bytes} allowed")
    return path


def read_capped(path, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``max_bytes``, checked on the open
    descriptor (a FIFO or device put in its place meanwhile is not read)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{path}: {what} is not a regular file")
        data = os.read(fd, max_bytes + 1) if st.st_size <= max_bytes else b""
        if st.st_size > max_bytes or len(data) > max_bytes:
            raise UnsafeFile(f"{path}: {what} is larger than the {max_bytes} bytes allowed")
        return data
    finally:
        os.close(fd)


def read_header(path, what: str = "file") -> tuple:
    """({tensor name: (dtype, shape)}, metadata) from a safetensors header only."""
    from safetensors import safe_open
    refuse_legacy(path, what)
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            shapes = {k: (str(f.get_slice(k).get_dtype()), tuple(f.get_slice(k).get_shape()))
                      for k in f.keys()}
    except Exception as e:  # SafetensorError, OSError
        head = _head(path)
        if head.startswith(_ZIP) or head.startswith(_PICKLE):
            raise LegacyFile(f"{path}: {what} looks like a pickle or zip (paddle.save / "
                             f"torch.save), not safetensors, so it is not loaded; "
                             f"{convert_hint(path)}") from None
        raise UnsafeFile(f"{path}: {what} is not a readable safetensors file "
                         f"({type(e).__name__}: {str(e)[:200]})") from None
    return shapes, meta


def _head(path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(4)
    except OSError:
        return b""


def load_tensors(path) -> dict:
    """{name: numpy array} of a safetensors file (header already checked by the caller)."""
    from safetensors.numpy import load_file
    return load_file(str(path))


def save_tensors(path, tensors: dict, metadata: dict | None = None) -> Path:
    """Write ``tensors`` ({name: array}) as safetensors atomically (temp file, fsync, rename)."""
    from safetensors.numpy import save_file
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp),
                  metadata=metadata)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# ---- nested state <-> (tensors, JSON) ----
# In the JSON, {"__tensor__": name} stands for a Paddle tensor, {"__array__": name}
# for a numpy array, {"__tuple__": [...]} for a tuple, {"__generator__": [...]} for
# a Paddle random generator state.

class AsTensor:
    """An array that was (and is loaded back as) a Paddle tensor."""
    __slots__ = ("array",)

    def __init__(self, array):
        self.array = np.asarray(array)


def _array(v):
    """(kind, numpy array) if ``v`` is an array or a Paddle tensor, else None."""
    if isinstance(v, np.ndarray):
        return "__array__", v
    if isinstance(v, AsTensor):
        return "__tensor__", v.array
    if type(v).__module__.startswith("paddle") and hasattr(v, "numpy") and hasattr(v, "shape"):
        return "__tensor__", np.asarray(v.numpy())
    return None


def pack_state(state, tensors: dict, where: str = ""):
    """A JSON-able copy of ``state`` with its arrays moved into ``tensors``."""
    arr = _array(state)
    if arr is not None:
        name = where or "_"
        tensors[name] = arr[1]
        return {arr[0]: name}
    if isinstance(state, dict):
        if not all(isinstance(k, str) for k in state):  # e.g. {class id: ...}
            if not all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in state):
                raise TypeError(f"{where or 'state'}: keys must be strings or integers")
            return {"__items__": [[k, pack_state(v, tensors, f"{where}/{k}")]
                                  for k, v in state.items()]}
        out = {}
        for k, v in state.items():
            out[k] = pack_state(v, tensors, f"{where}/{k}" if where else k)
        return out
    if isinstance(state, (list, tuple)):
        items = [pack_state(v, tensors, f"{where}/{i}") for i, v in enumerate(state)]
        return {"__tuple__": items} if isinstance(state, tuple) else items
    if isinstance(state, (bytes, bytearray)):
        name = where or "_"
        tensors[name] = np.frombuffer(bytes(state), np.uint8)
        return {"__bytes__": name}
    if isinstance(state, np.generic):
        return state.item()
    if type(state).__name__ == "GeneratorState":
        return {"__generator__": list(state.__getstate__())}
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    raise TypeError(f"{where or 'state'}: cannot store a {type(state).__name__}")


def unpack_state(obj, tensors: dict, as_tensor=None):
    """Inverse of ``pack_state``; ``as_tensor`` (optional) converts each array."""
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            arr = tensors[obj["__tensor__"]]
            return as_tensor(arr) if as_tensor else arr
        if set(obj) == {"__array__"}:
            return tensors[obj["__array__"]]
        if set(obj) == {"__bytes__"}:
            return tensors[obj["__bytes__"]].tobytes()
        if set(obj) == {"__items__"}:
            return {k: unpack_state(v, tensors, as_tensor) for k, v in obj["__items__"]}
        if set(obj) == {"__tuple__"}:
            return tuple(unpack_state(v, tensors, as_tensor) for v in obj["__tuple__"])
        if set(obj) == {"__generator__"}:
            return generator_state(obj["__generator__"])
        return {k: unpack_state(v, tensors, as_tensor) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unpack_state(v, tensors, as_tensor) for v in obj]
    return obj


def generator_state(values):
    """A Paddle GeneratorState from its plain values (device, seed, offset, state)."""
    import paddle
    values = tuple(values)
    if len(values) != 4 or not all(isinstance(v, int) for v in values[:3]) \
            or not all(isinstance(v, int) for v in values[3]):
        raise ValueError("a random generator state is (int, int, int, [ints])")
    cls = type(paddle.get_rng_state("cpu")[0])
    st = cls.__new__(cls)
    st.__setstate__(values)
    return st


def state_to_bytes(state) -> bytes:
    """``state`` (nested dicts, lists, arrays, tensors, bytes, plain values) as the
    bytes of a safetensors file: what ranks send each other instead of pickles."""
    from safetensors.numpy import save
    tensors: dict = {}
    tree = pack_state(state, tensors)
    return save({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                metadata={"state": dumps(tree)})


def state_from_bytes(data: bytes):
    """Inverse of ``state_to_bytes`` (arrays in place of tensors)."""
    from safetensors.numpy import load
    n = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8:8 + n]).get("__metadata__") or {}
    return unpack_state(json.loads(meta["state"]), load(data))


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))
