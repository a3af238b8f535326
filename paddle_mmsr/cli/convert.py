"""Convert files of older versions (``paddle.save`` pickles) to safetensors, once.

    mmsr-convert PATH [PATH ...]      (or: python tools/convert.py PATH ...)

PATH: a bundle folder (``manifest.yaml`` of format 1 and its ``.pdparams``),
a training output folder (every ``.pdckpt`` / ``.pdparams`` below it), or one
file. Each ``X.pdparams`` becomes ``X.safetensors`` and each ``X.pdckpt``
``X.ckpt.safetensors`` beside it; a bundle's manifest is rewritten (format 2,
new names and sha256). The old files are kept unless ``--remove-old``.

The old files are read by a restricted unpickler that builds only numpy arrays,
numbers, strings and plain containers (and Paddle's random generator state as
plain numbers): any other class named in a file stops the conversion of that
file with the name, and nothing in it runs. Convert only files you would have
loaded anyway: the conversion guards against code, not against wrong weights.
Exit code 0 when everything converted, 1 when a file was refused, 2 for bad
arguments.
"""
from __future__ import annotations

import argparse
import io
import pickle
import sys
from pathlib import Path

import numpy as np

__all__ = ["RefusedPickle", "read_legacy", "convert_weights", "convert_checkpoint",
           "convert_bundle", "main"]

MAX_LEGACY_BYTES = 4 << 30


class RefusedPickle(pickle.UnpicklingError):
    """The file names something other than arrays, numbers, strings and containers."""


def _reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise RefusedPickle(f"array subclass {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, _dtype(dtype))


def _dtype(obj, align=False, copy=False):
    dt = np.dtype(obj, align, copy) if not isinstance(obj, np.dtype) else obj
    if dt.hasobject:
        raise RefusedPickle(f"dtype {dt} holds Python objects")
    return dt


def _scalar(dtype, data=None):
    dt = _dtype(dtype)
    return np.frombuffer(data, dt, 1)[0] if data is not None else dt.type(0)


class _GeneratorState:
    """Stands in for paddle's GeneratorState: only records its plain state."""

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 4
                and all(isinstance(v, int) for v in state[:3])
                and isinstance(state[3], list) and all(isinstance(v, int) for v in state[3])):
            raise RefusedPickle("a random generator state that is not plain numbers")
        self.state = state


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("collections", "OrderedDict"): dict,
    ("builtins", "tuple"): tuple,  # paddle.save writes a tensor as tuple((name, array))
    ("builtins", "list"): list,
    ("builtins", "dict"): dict,
    ("paddle.base.libpaddle", "GeneratorState"): _GeneratorState,
    ("paddle.fluid.libpaddle", "GeneratorState"): _GeneratorState,
}


class _PlainUnpickler(pickle.Unpickler):
    """Builds arrays, numbers, strings and containers only; refuses anything else."""

    def find_class(self, module, name):
        found = _ALLOWED.get((module, name))
        if found is None:
            raise RefusedPickle(f"refusing {module}.{name}: not an array, number, string "
                                "or container")
        return found

    def persistent_load(self, pid):
        raise RefusedPickle(f"refusing persistent id {str(pid)[:40]}")


def _walk(obj, swap):
    """``obj`` through dicts, lists and tuples, with each value that ``swap`` replaces
    (``swap(value)`` is not None) replaced."""
    new = swap(obj)
    if new is not None:
        return new
    if isinstance(obj, dict):
        return {k: _walk(v, swap) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_walk(v, swap) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_walk(v, swap) for v in obj)
    return obj


def _plain(obj):
    """Replace the generator-state stand-ins by their plain state."""
    return _walk(obj, lambda o: {"__generator__": list(o.state)}
                 if isinstance(o, _GeneratorState) else None)


def read_legacy(path):
    """The content of an old ``paddle.save`` file, with the restricted unpickler."""
    from paddle_mmsr.core.safe_files import checked_file
    path = checked_file(path, max_bytes=MAX_LEGACY_BYTES, what="old file")
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":
        raise RefusedPickle(f"{path}: a zip (torch.save) file, not a paddle.save one")
    try:
        return _plain(_PlainUnpickler(io.BytesIO(data)).load())
    except RefusedPickle as e:
        raise RefusedPickle(f"{path}: {e}") from None
    except Exception as e:
        raise RefusedPickle(f"{path}: unreadable ({type(e).__name__}: {e})") from None


def _arrays(state, path) -> dict:
    """{key: array} of a weights state dict; paddle.save stores a tensor as an
    array, or as a (name, array) pair."""
    if not isinstance(state, dict):
        raise RefusedPickle(f"{path}: not a state dict")
    out = {}
    for k, v in state.items():
        if k == "StructuredToParameterName@@":  # paddle.save's name table: not weights
            continue
        if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], np.ndarray):
            v = v[1]
        if not isinstance(k, str) or not isinstance(v, np.ndarray):
            raise RefusedPickle(f"{path}: entry {k!r} is not a named array")
        out[k] = v
    return out


def new_name(path: Path) -> Path:
    if path.suffix == ".pdckpt":
        return path.with_name(path.stem + ".ckpt.safetensors")
    return path.with_suffix(".safetensors")


def convert_weights(path) -> Path:
    from paddle_mmsr.core.safe_files import save_tensors
    path = Path(path)
    return save_tensors(new_name(path), _arrays(read_legacy(path), path))


def _tensors_to_arrays(obj):
    from paddle_mmsr.core.safe_files import AsTensor

    def tensor(o):  # paddle.save's (name, array) for a tensor
        named = (isinstance(o, tuple) and len(o) == 2 and isinstance(o[0], str)
                 and isinstance(o[1], np.ndarray))
        return AsTensor(o[1]) if named else None
    return _walk(obj, tensor)


def convert_checkpoint(path) -> Path:
    from paddle_mmsr.core.safe_files import dumps, pack_state, save_tensors
    from paddle_mmsr.train.checkpoint import FORMAT
    path = Path(path)
    state = _tensors_to_arrays(read_legacy(path))
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RefusedPickle(f"{path}: not a paddle-mmsr training checkpoint")
    tensors: dict = {}
    tree = pack_state(state, tensors)
    return save_tensors(new_name(path), tensors, {"format": FORMAT, "state": dumps(tree)})


def convert_bundle(root) -> list:
    """Convert a format-1 bundle in place: new weights files, then the manifest
    (format 2, new names and sha256, everything else as it was). Returns the old files."""
    import yaml
    from paddle_mmsr.core.files import sha256_file
    from paddle_mmsr.core.safe_files import checked_file
    from paddle_mmsr.core.manifest import FORMAT, LEGACY_FORMATS, MANIFEST, MAX_MANIFEST_BYTES, load_bundle
    from paddle_mmsr.models.weights import check_weights
    root = Path(root)
    path = checked_file(MANIFEST, root, MAX_MANIFEST_BYTES, "bundle manifest")
    m = yaml.safe_load(path.read_text())
    if not isinstance(m, dict) or m.get("format") not in LEGACY_FORMATS:
        raise RefusedPickle(f"{path}: not a format-1 bundle")
    old = []
    for c in m.get("classes") or []:
        src = checked_file(str(c["weights"]), root, MAX_LEGACY_BYTES,
                           f"weights of class {c.get('id')}")
        if c.get("sha256") and sha256_file(src) != c["sha256"]:
            raise RefusedPickle(f"{src}: sha256 does not match the manifest")
        dst = convert_weights(src)
        c["weights"], c["sha256"] = dst.name, sha256_file(dst)
        old.append(src)
    m["format"] = FORMAT
    tmp = root / f".{MANIFEST}.convert"
    tmp.write_text(yaml.safe_dump(m, sort_keys=False))
    tmp.replace(path)
    check_weights(load_bundle(root))
    return old


def _targets(path: Path) -> list:
    """[(kind, path)] to convert under ``path``."""
    if path.is_file():
        return [("checkpoint" if path.suffix == ".pdckpt" else "weights", path)]
    out = []
    for d in [path, *sorted(p for p in path.rglob("*") if p.is_dir() and not p.is_symlink())]:
        man = d / "manifest.yaml"
        if man.is_file() and any(d.glob("*.pdparams")):
            out.append(("bundle", d))
            continue
        for f in sorted(d.iterdir()):
            if f.is_file() and not f.is_symlink() and f.suffix in (".pdckpt", ".pdparams") \
                    and not f.name.startswith("."):
                out.append(("checkpoint" if f.suffix == ".pdckpt" else "weights", f))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="mmsr-convert", description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", metavar="PATH",
                    help="bundle folder, training output folder, or one .pdparams/.pdckpt file")
    ap.add_argument("--remove-old", action="store_true",
                    help="delete each old file once its conversion is written and checked")
    args = ap.parse_args(argv)
    failed = done = 0
    for text in args.paths:
        p = Path(text)
        if not p.exists():
            print(f"error: {p}: no such file or folder", file=sys.stderr)
            return 2
        targets = _targets(p)
        if not targets:
            print(f"{p}: nothing to convert (no .pdparams / .pdckpt)")
        for kind, t in targets:
            try:
                if kind == "bundle":
                    old = convert_bundle(t)
                    print(f"converted bundle {t} ({len(old)} classes)")
                else:
                    dst = (convert_checkpoint if kind == "checkpoint" else convert_weights)(t)
                    old = [t]
                    print(f"converted {t} -> {dst}")
                done += 1
                if args.remove_old:
                    for f in old:
                        f.unlink()
            except Exception as e:  # one refused file does not stop the others
                failed += 1
                print(f"refused: {e}", file=sys.stderr)
    if done or failed:
        print(f"{done} converted, {failed} refused")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
