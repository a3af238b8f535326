"""The Paddle half of a bundle: the class networks its manifest describes, their
weights checked against the network before any tensor is read, and weights
saved. The manifest itself (schema, load, write) is ``core/manifest.py``."""
from __future__ import annotations

from pathlib import Path

from paddle_mmsr.core.manifest import (Bundle, BundleError, ClassEntry, load_bundle, weights_name,
                                       write_manifest)
from paddle_mmsr.core.safe_files import UnsafeFile, load_tensors, read_header, save_tensors
from paddle_mmsr.core.spec import ModelSpec
from paddle_mmsr.core.tvat import TVATSettings
from paddle_mmsr.models import build_generator

__all__ = ["build_class_generator", "class_state", "check_weights", "check_state_dict",
           "load_class_state", "save_weights", "make_bundle"]


def build_class_generator(bundle: Bundle, entry: ClassEntry, load_weights: bool = True):
    """The class's generator (dygraph, eval mode), weights loaded and checked."""
    g = build_generator(entry.spec, scale=bundle.scale, **entry.generator)
    if load_weights:
        g.set_state_dict(class_state(bundle, entry, g))
    g.eval()
    return g


def class_state(bundle: Bundle, entry: ClassEntry, layer=None) -> dict:
    """{key: float32 array} of the class's weights: file checked, header checked
    against ``layer`` (built from the manifest if None) before reading tensors."""
    path = bundle.verified_weights(entry)
    what = (f"{path} (class {entry.id}: spec {entry.spec}, scale {bundle.scale}, "
            f"generator {entry.generator})")
    try:
        header, _ = read_header(path, f"weights of class {entry.id}")
    except UnsafeFile as e:
        raise BundleError(str(e)) from None
    if layer is None:
        layer = build_generator(entry.spec, scale=bundle.scale, **entry.generator)
    check_state_dict(layer, header, what)
    try:
        return load_tensors(path)
    except Exception as e:
        raise BundleError(f"{path}: unreadable weight file ({type(e).__name__}: {e})"
                          ) from None


def check_weights(bundle: Bundle) -> None:
    """BundleError unless every class's weight file fits its manifest entry."""
    for entry in bundle.classes:
        build_class_generator(bundle, entry)


def check_state_dict(layer, state, what: str) -> None:
    """BundleError naming every key of ``state`` missing, unexpected, of the wrong
    shape or not float32. ``state``: {key: array} or a safetensors header
    {key: (dtype, shape)}."""
    if not isinstance(state, dict):
        raise BundleError(f"{what}: not a state dict")
    own = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    got, dtypes = {}, {}
    for k, v in state.items():
        if isinstance(v, tuple):
            dtypes[k], got[k] = v
        else:
            got[k] = tuple(getattr(v, "shape", ()))
    problems = []
    for label, keys in (("missing", [k for k in own if k not in got]),
                        ("unexpected", [k for k in got if k not in own])):
        if keys:
            problems.append(f"{len(keys)} {label} keys: {_first(keys)}")
    shapes = [f"{k} {list(got[k])} in the file, {list(own[k])} expected"
              for k in own if k in got and got[k] != own[k]]
    if shapes:
        problems.append(f"{len(shapes)} keys of the wrong shape: {_first(shapes)}")
    wrong = [f"{k} {d}" for k, d in dtypes.items() if d.lower() not in ("f32", "float32")]
    if wrong:
        problems.append(f"{len(wrong)} keys not float32: {_first(wrong)}")
    if problems:
        raise BundleError(f"{what}: the weights do not fit the manifest's network; "
                          + "; ".join(problems))


def _first(items, n: int = 6) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")


def load_class_state(bundle_dir, class_index: int) -> dict:
    """{key: float32 numpy array}: the generator weights of one class of a bundle,
    verified (manifest, file, sha256, header keys and shapes) before reading."""
    b = load_bundle(bundle_dir)
    entry = next((c for c in b.classes if c.id == class_index), None)
    if entry is None:
        raise BundleError(f"{bundle_dir}: no class {class_index} (classes "
                          f"{[c.id for c in b.classes]})")
    return class_state(b, entry)


def save_weights(layer, path) -> Path:
    """Save a layer's state dict (float32) atomically, as safetensors."""
    return save_tensors(path, {k: v.astype("float32").numpy()
                               for k, v in layer.state_dict().items()})


def make_bundle(root, generators: list, tvat: TVATSettings, scale: int = 4,
                flat_bound=None, produced_by=None, route_score: str = "tile",
                route_cell: int = 32) -> Bundle:
    """Write a bundle from in-memory generators.

    ``generators``: one (spec, generator_options, layer) per class, class 0 first.
    """
    root = Path(root)
    classes = []
    for i, (spec, options, layer) in enumerate(generators):
        name = weights_name(i)
        save_weights(layer, root / name)
        classes.append(ClassEntry(id=i, spec=str(ModelSpec.parse(spec)), weights=name,
                                  generator=dict(options)))
    b = Bundle(root=root, scale=scale, tvat=tvat, classes=classes, flat_bound=flat_bound,
               route_score=route_score, route_cell=int(route_cell), produced_by=produced_by or {})
    write_manifest(b)
    return b
