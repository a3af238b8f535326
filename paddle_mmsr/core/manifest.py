"""A bundle: one folder holding everything reconstruction needs.

``manifest.yaml``::

    format: paddle-mmsr-bundle/2
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
        weights: class0.safetensors  # generator state dict, float32, safetensors
        sha256: ...              # of the weights file; required
    produced_by: {...}           # free-form: config, iterations, data

Class ``i`` handles TVAT scores in [bounds[i-1], bounds[i]) (see sr/route.py
for how a tile is scored). A manifest without route_score/route_cell is read
with the defaults (tile, 32), one without tile/overlap with 128/16: older
bundles keep their meaning.

Nothing is trusted (docs/security.md), in this order: the manifest must be a
regular file of at most 1 MiB; unknown keys are refused (with the closest
valid key); every number is range-checked before anything is allocated; a
weights file must be a regular file inside the bundle folder whose sha256 is
the manifest's; its safetensors header must name exactly the network's keys,
shapes and float32, before any tensor is read (models/weights.py, the Paddle
half: networks built from the manifest, weights checked, loaded and saved).
Format 1 bundles (pickled ``.pdparams``) are refused with the command that
converts them.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from paddle_mmsr.core.files import sha256_file
from paddle_mmsr.core.keys import suggest
from paddle_mmsr.core.safe_files import UnsafeFile, checked_file, convert_hint, read_capped
from paddle_mmsr.core.spec import FORMS, GeneratorOptions, ModelSpec
from paddle_mmsr.core.tiles import DEFAULT_OVERLAP, DEFAULT_TILE, tile_starts
from paddle_mmsr.core.tvat import TVATSettings

FORMAT = "paddle-mmsr-bundle/2"
LEGACY_FORMATS = ("paddle-mmsr-bundle/1",)  # pickled .pdparams weights: converted, not loaded
MANIFEST = "manifest.yaml"
MAX_MANIFEST_BYTES = 1 << 20
MAX_WEIGHTS_BYTES = 1 << 30
ROUTE_SCORES = ("tile", "cell_max")  # how a tile is scored for routing (sr/route.py)
# ranges of the manifest's numbers, checked before anything is allocated
LIMITS = {"scale": (2, 8), "blocks": (1, 64), "d_layers": (1, 64), "channels": (1, 256),
          "kernel": (1, 15), "classes": (1, 16), "route_cell": (1, 4096), "tile": (8, 4096)}


def weights_name(class_id: int) -> str:
    return f"class{class_id}.safetensors"


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

    def verified_weights(self, entry: ClassEntry) -> Path:
        """The class's weights file, checked: a regular file inside the bundle folder
        whose sha256 is the manifest's (an in-memory bundle without one: not hashed)."""
        try:
            path = checked_file(entry.weights, self.root, MAX_WEIGHTS_BYTES,
                                f"weights of class {entry.id}")
        except UnsafeFile as e:
            raise BundleError(str(e)) from None
        if entry.sha256 and sha256_file(path) != entry.sha256:
            raise BundleError(f"{path}: sha256 does not match the manifest "
                              "(file changed or corrupt)")
        return path

    def to_dict(self) -> dict:
        return {"format": FORMAT, "scale": self.scale, "value_range": [0, 1],
                "tvat": self.tvat.to_dict(), "flat_bound": self.flat_bound,
                "route_score": self.route_score, "route_cell": self.route_cell,
                **{k: getattr(self, k) for k in ("tile", "overlap", "bf16_psnr_cost")
                   if getattr(self, k) is not None},
                "classes": [c.to_dict() for c in self.classes],
                "produced_by": self.produced_by}


def _check_keys(mapping, allowed, where: str) -> None:
    if not isinstance(mapping, dict):
        raise BundleError(f"{where}: expected a mapping, got {mapping!r}")
    for key in mapping:
        if key not in allowed:
            raise BundleError(f"{where}: unknown key '{key}'{suggest(str(key), allowed)}")


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
    gen_keys = [f.name for f in fields(GeneratorOptions)]
    for i, c in enumerate(classes):
        _check_keys(c, entry_keys, f"{path}: classes[{i}]")
        _check_keys(c.get("generator") or {}, gen_keys, f"{path}: classes[{i}].generator")


def _number(value, name: str, lo=None, hi=None, integer: bool = False):
    """``value`` if it is a finite number (an int if ``integer``) in [lo, hi], else BundleError."""
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool) or (not integer and not math.isfinite(value)):
        raise BundleError(f"{name} must be a finite {'integer' if integer else 'number'}, "
                          f"got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise BundleError(f"{name} must be in [{lo}, {hi}], got {value!r}")
    return value


def check_ranges(m: dict, path) -> None:
    """Types and ranges of every manifest number that sizes an allocation or a loop."""
    lim = LIMITS
    _number(m.get("scale"), f"{path}: scale", *lim["scale"], integer=True)
    tv = m.get("tvat")
    if not isinstance(tv, dict):
        raise BundleError(f"{path}: tvat must be a mapping, got {tv!r}")
    for k in ("tau", "norm", "value_max"):
        if k in tv:
            _number(tv[k], f"{path}: tvat.{k}", 0 if k == "tau" else 1e-12, 1e12)
    bounds = tv.get("bounds", [])
    if not isinstance(bounds, list) or len(bounds) >= lim["classes"][1]:
        raise BundleError(f"{path}: tvat.bounds must be a list of fewer than "
                          f"{lim['classes'][1]} numbers, got {bounds!r}")
    for i, b in enumerate(bounds):
        _number(b, f"{path}: tvat.bounds[{i}]")
    if m.get("flat_bound") is not None:
        _number(m["flat_bound"], f"{path}: flat_bound")
    if "route_cell" in m:
        _number(m["route_cell"], f"{path}: route_cell", *lim["route_cell"], integer=True)
    for k in ("tile", "overlap"):
        if m.get(k) is not None:
            _number(m[k], f"{path}: {k}", 0 if k == "overlap" else lim["tile"][0],
                    lim["tile"][1], integer=True)
    for i, c in enumerate(m["classes"]):
        where = f"{path}: classes[{i}]"
        _number(c.get("id"), f"{where}.id", 0, lim["classes"][1] - 1, integer=True)
        for k in ("weights", "sha256", "spec"):
            if not isinstance(c.get(k), str):
                raise BundleError(f"{where}.{k} must be a string, got {c.get(k)!r}")
        if len(c["sha256"]) != 64 or any(ch not in "0123456789abcdef" for ch in c["sha256"]):
            raise BundleError(f"{where}.sha256 must be 64 lowercase hex digits, "
                              f"got {c['sha256']!r}")
        try:
            spec = ModelSpec.parse(c["spec"])
        except ValueError as e:
            raise BundleError(f"{where}.spec: {e}") from None
        _number(spec.g_blocks, f"{where}.spec generator blocks", *lim["blocks"], integer=True)
        _number(spec.d_layers, f"{where}.spec discriminator layers", *lim["d_layers"],
                integer=True)
        if spec.channels is not None:
            _number(spec.channels, f"{where}.spec width", *lim["channels"], integer=True)
        gen = c.get("generator") or {}
        if "channels" in gen:
            _number(gen["channels"], f"{where}.generator.channels", *lim["channels"],
                    integer=True)
        for k in ("head_kernel", "tail_kernel"):
            if k in gen:
                _number(gen[k], f"{where}.generator.{k}", *lim["kernel"], integer=True)
                if gen[k] % 2 == 0:
                    raise BundleError(f"{where}.generator.{k} must be odd, got {gen[k]}")
        if "form" in gen and gen["form"] not in FORMS:
            raise BundleError(f"{where}.generator.form must be one of {FORMS}, "
                              f"got {gen['form']!r}")


def read_manifest(root) -> dict:
    """The manifest's mapping: a regular file inside ``root``, at most 1 MiB, YAML."""
    root = Path(root)
    path = root / MANIFEST
    if not os.path.lexists(path):
        raise BundleError(f"{root}: not a bundle (no {MANIFEST})")
    try:
        checked_file(MANIFEST, root, MAX_MANIFEST_BYTES, "bundle manifest")
        text = read_capped(path, MAX_MANIFEST_BYTES, "bundle manifest")
    except UnsafeFile as e:
        raise BundleError(str(e)) from None
    try:
        m = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BundleError(f"{path}: invalid YAML ({e})") from None
    fmt = m.get("format") if isinstance(m, dict) else m
    if fmt in LEGACY_FORMATS:
        raise BundleError(f"{root}: a {fmt} bundle: its weights are pickles (.pdparams), which "
                          f"can run code when loaded, so it is not loaded; {convert_hint(root)}")
    if not isinstance(m, dict) or fmt != FORMAT:
        raise BundleError(f"{path}: unknown bundle format {fmt!r}")
    return m


def load_bundle(root) -> Bundle:
    root = Path(root)
    path = root / MANIFEST
    m = read_manifest(root)
    check_manifest_keys(m, path)
    check_ranges(m, path)
    try:
        classes = [ClassEntry(id=int(c["id"]), spec=str(ModelSpec.parse(c["spec"])),
                              weights=c["weights"], generator=dict(c.get("generator") or {}),
                              sha256=c["sha256"]) for c in m["classes"]]
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
    for c in classes:  # the width is the spec's: a generator.channels must agree
        try:
            ModelSpec.parse(c.spec).generator_options(c.generator)
        except ValueError as e:
            raise BundleError(f"{path}: class {c.id}: {e}") from None
    return b


def earlier_bundle(root, log=print) -> str | None:
    """``root`` if it holds a valid bundle (manifest, weights matching their sha256),
    else None: a summary must not say "no bundle" while a usable one is on disk."""
    try:
        b = load_bundle(root)
        for c in b.classes:
            b.verified_weights(c)
        if b.classes:
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
