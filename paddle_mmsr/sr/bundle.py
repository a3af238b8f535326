"""A bundle: one folder holding everything reconstruction needs.

``manifest.yaml``::

    format: paddle-mmsr-bundle/1
    scale: 4
    value_range: [0, 1]          # generator input/output range, RGB
    tvat: {tau: 5.0, norm: 10000.0, value_max: 255.0, bounds: [2.0, 4.0]}
    flat_bound: null             # tiles scoring below it are upscaled by bicubic
    route_score: tile            # tile (the paper's TVAT of the tile) | cell_max
    route_cell: 32               # cell_max: LR cell size; a tile scores as its busiest cell
    tile: 64                     # optional: LR tile and overlap the routing was calibrated
    overlap: 8                   #   with (the default when upscaling; else 128 and 16)
    bf16_psnr_cost: 0.001        # optional: dB of PSNR bf16 loses against fp32 (sr/precision.py)
    classes:
      - id: 0
        spec: "4-6"              # only the generator is used at inference
        generator: {channels: 64, form: fast, head_kernel: 9, tail_kernel: 3}
        weights: class0.pdparams # generator state dict, float32
        sha256: ...
    produced_by: {...}           # free-form: config, iterations, data

Class ``i`` handles TVAT scores in [bounds[i-1], bounds[i]) (see sr/route.py
for how a tile is scored). A manifest without route_score/route_cell is read
with the defaults (tile, 32), one without tile/overlap with 128/16: older
bundles keep their meaning.

Nothing is trusted: unknown keys are refused (with the closest valid key), and
each weight file must fit the network the manifest describes key for key and
shape for shape.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from paddle_mmsr import sha256_file
from paddle_mmsr.config import GeneratorOptions, _suggest
from paddle_mmsr.models import ModelSpec, build_generator
from paddle_mmsr.data.tvat import TVATSettings
from paddle_mmsr.sr.tiles import DEFAULT_OVERLAP, DEFAULT_TILE, tile_starts

FORMAT = "paddle-mmsr-bundle/1"
MANIFEST = "manifest.yaml"


class BundleError(Exception):
    pass


@dataclass
class ClassEntry:
    id: int
    spec: str
    weights: str
    generator: dict = field(default_factory=dict)
    sha256: str = ""

    def to_dict(self) -> dict:
        return {"id": self.id, "spec": str(self.spec), "generator": dict(self.generator),
                "weights": self.weights, "sha256": self.sha256}


@dataclass
class Bundle:
    root: Path
    scale: int
    tvat: TVATSettings
    classes: list
    flat_bound: float | None = None
    route_score: str = "tile"
    route_cell: int = 32
    tile: int | None = None      # LR tile and overlap the routing was calibrated with
    overlap: int | None = None   # (None: the defaults, 128 and 16)
    bf16_psnr_cost: float | None = None  # dB lost in bf16 against fp32 (sr/precision.py)
    produced_by: dict = field(default_factory=dict)

    def weight_path(self, entry: ClassEntry) -> Path:
        return self.root / entry.weights

    def build_generator(self, entry: ClassEntry, load_weights: bool = True):
        """The class's generator (dygraph, eval mode), weights loaded and checked."""
        import paddle
        g = build_generator(entry.spec, scale=self.scale, **entry.generator)
        if load_weights:
            path = self.weight_path(entry)
            if not path.exists():
                raise BundleError(f"{path}: weight file of class {entry.id} is missing")
            if entry.sha256 and sha256_file(path) != entry.sha256:
                raise BundleError(f"{path}: sha256 does not match the manifest "
                                  "(file changed or corrupt)")
            try:
                state = paddle.load(str(path))
            except Exception as e:
                raise BundleError(f"{path}: unreadable weight file ({type(e).__name__}: {e})"
                                  ) from None
            check_state_dict(g, state, f"{path} (class {entry.id}: spec {entry.spec}, "
                                       f"scale {self.scale}, generator {entry.generator})")
            g.set_state_dict(state)
        g.eval()
        return g

    def check_weights(self) -> None:
        """BundleError unless every class's weight file fits its manifest entry."""
        for entry in self.classes:
            self.build_generator(entry)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "scale": self.scale, "value_range": [0, 1],
                "tvat": self.tvat.to_dict(), "flat_bound": self.flat_bound,
                "route_score": self.route_score, "route_cell": self.route_cell,
                **{k: getattr(self, k) for k in ("tile", "overlap", "bf16_psnr_cost")
                   if getattr(self, k) is not None},
                "classes": [c.to_dict() for c in self.classes],
                "produced_by": self.produced_by}


def check_state_dict(layer, state, what: str) -> None:
    """BundleError naming every key of ``state`` missing, unexpected or of the wrong shape."""
    if not isinstance(state, dict):
        raise BundleError(f"{what}: not a state dict")
    own = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    got = {k: tuple(getattr(v, "shape", ())) for k, v in state.items()}
    problems = []
    for label, keys in (("missing", [k for k in own if k not in got]),
                        ("unexpected", [k for k in got if k not in own])):
        if keys:
            problems.append(f"{len(keys)} {label} keys: {_first(keys)}")
    shapes = [f"{k} {list(got[k])} in the file, {list(own[k])} expected"
              for k in own if k in got and got[k] != own[k]]
    if shapes:
        problems.append(f"{len(shapes)} keys of the wrong shape: {_first(shapes)}")
    if problems:
        raise BundleError(f"{what}: the weights do not fit the manifest's network; "
                          + "; ".join(problems))


def _first(items, n: int = 6) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")


def _check_keys(mapping, allowed, where: str) -> None:
    if not isinstance(mapping, dict):
        raise BundleError(f"{where}: expected a mapping, got {mapping!r}")
    for key in mapping:
        if key not in allowed:
            raise BundleError(f"{where}: unknown key '{key}'{_suggest(str(key), allowed)}")


# manifest keys beyond the dataclass fields (root is the folder, not a key)
_TOP_EXTRA = ["format", "value_range"]


def check_manifest_keys(m: dict, path) -> None:
    """Refuse unknown keys at the top level, in ``tvat``, in each class and its ``generator``."""
    top = [f.name for f in fields(Bundle) if f.name != "root"] + _TOP_EXTRA
    _check_keys(m, top, str(path))
    _check_keys(m.get("tvat") or {}, [f.name for f in fields(TVATSettings)], f"{path}: tvat")
    classes = m.get("classes")
    if not isinstance(classes, list):
        raise BundleError(f"{path}: 'classes' must be a list, got {classes!r}")
    entry_keys = [f.name for f in fields(ClassEntry)]
    gen_keys = [f.name for f in fields(GeneratorOptions)]  # the training schema's
    for i, c in enumerate(classes):
        _check_keys(c, entry_keys, f"{path}: classes[{i}]")
        _check_keys(c.get("generator") or {}, gen_keys, f"{path}: classes[{i}].generator")


def load_bundle(root) -> Bundle:
    root = Path(root)
    path = root / MANIFEST
    if not path.exists():
        raise BundleError(f"{root}: not a bundle (no {MANIFEST})")
    try:
        m = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise BundleError(f"{path}: invalid YAML ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise BundleError(f"{path}: unknown bundle format {m.get('format') if isinstance(m, dict) else m!r}")
    check_manifest_keys(m, path)
    try:
        classes = [ClassEntry(id=int(c["id"]), spec=str(ModelSpec.parse(c["spec"])),
                              weights=c["weights"], generator=dict(c.get("generator") or {}),
                              sha256=c.get("sha256", "")) for c in m["classes"]]
        tv = TVATSettings(**m["tvat"])
        b = Bundle(root=root, scale=int(m["scale"]), tvat=tv, classes=classes,
                   flat_bound=m.get("flat_bound"),
                   route_score=str(m.get("route_score", "tile")),
                   route_cell=int(m.get("route_cell", 32)),
                   tile=None if m.get("tile") is None else int(m["tile"]),
                   overlap=None if m.get("overlap") is None else int(m["overlap"]),
                   bf16_psnr_cost=(None if m.get("bf16_psnr_cost") is None
                                   else float(m["bf16_psnr_cost"])),
                   produced_by=m.get("produced_by") or {})
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"{path}: malformed manifest ({e})") from None
    from paddle_mmsr.sr.route import ROUTE_SCORES
    if b.route_score not in ROUTE_SCORES or b.route_cell < 1:
        raise BundleError(f"{path}: route_score must be one of {ROUTE_SCORES} and route_cell "
                          f">= 1, got {b.route_score!r}, {b.route_cell}")
    if b.tile is not None or b.overlap is not None:
        try:
            tile_starts(1, b.tile or DEFAULT_TILE, DEFAULT_OVERLAP if b.overlap is None else b.overlap)
        except ValueError as e:
            raise BundleError(f"{path}: {e}") from None
    if sorted(c.id for c in classes) != list(range(tv.n_classes)):
        raise BundleError(f"{path}: {tv.n_classes} TVAT classes need class ids "
                          f"0..{tv.n_classes - 1}, got {[c.id for c in classes]}")
    return b


def earlier_bundle(root, log=print) -> str | None:
    """``root`` if it holds a valid bundle (manifest, weights matching their sha256),
    else None: a summary must not say "no bundle" while a usable one is on disk."""
    try:
        b = load_bundle(root)
        if all(c.sha256 and sha256_file(b.weight_path(c)) == c.sha256 for c in b.classes):
            log(f"the bundle of an earlier run is still valid and kept: {root}")
            return str(root)
    except (BundleError, OSError):
        pass
    return None


def write_manifest(bundle: Bundle) -> Path:
    """Write manifest.yaml atomically, filling in each class's sha256."""
    root = Path(bundle.root)
    root.mkdir(parents=True, exist_ok=True)
    for c in bundle.classes:
        c.sha256 = sha256_file(root / c.weights)
    text = yaml.safe_dump(bundle.to_dict(), sort_keys=False)
    tmp = root / f".{MANIFEST}.tmp"
    tmp.write_text(text)
    os.replace(tmp, root / MANIFEST)
    return root / MANIFEST


def save_weights(layer, path) -> Path:
    """Save a layer's state dict (float32) atomically."""
    import paddle
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    paddle.save({k: v.astype("float32") for k, v in layer.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
    return path


def make_bundle(root, generators: list, tvat: TVATSettings, scale: int = 4,
                flat_bound=None, produced_by=None, route_score: str = "tile",
                route_cell: int = 32) -> Bundle:
    """Write a bundle from in-memory generators.

    ``generators``: one (spec, generator_options, layer) per class, class 0 first.
    """
    root = Path(root)
    classes = []
    for i, (spec, options, layer) in enumerate(generators):
        name = f"class{i}.pdparams"
        save_weights(layer, root / name)
        classes.append(ClassEntry(id=i, spec=str(ModelSpec.parse(spec)), weights=name,
                                  generator=dict(options)))
    b = Bundle(root=root, scale=scale, tvat=tvat, classes=classes, flat_bound=flat_bound,
               route_score=route_score, route_cell=int(route_cell), produced_by=produced_by or {})
    write_manifest(b)
    return b
