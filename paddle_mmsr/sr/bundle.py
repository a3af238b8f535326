"""A bundle: one folder holding everything reconstruction needs.

``manifest.yaml``::

    format: paddle-mmsr-bundle/1
    scale: 4
    value_range: [0, 1]          # generator input/output range, RGB
    tvat: {tau: 5.0, norm: 10000.0, value_max: 255.0, bounds: [2.0, 4.0]}
    flat_bound: null             # tiles scoring below it are upscaled by bicubic
    classes:
      - id: 0
        spec: "4-6"              # only the generator is used at inference
        generator: {channels: 64, form: fast, head_kernel: 9, tail_kernel: 3}
        weights: class0.pdparams # generator state dict, float32
        sha256: ...
    produced_by: {...}           # free-form: config, iterations, data

Class ``i`` handles TVAT scores in [bounds[i-1], bounds[i]).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from paddle_mmsr.models import ModelSpec, build_generator
from paddle_mmsr.data.tvat import TVATSettings

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
            g.set_state_dict(paddle.load(str(path)))
        g.eval()
        return g

    def to_dict(self) -> dict:
        return {"format": FORMAT, "scale": self.scale, "value_range": [0, 1],
                "tvat": self.tvat.to_dict(), "flat_bound": self.flat_bound,
                "classes": [c.to_dict() for c in self.classes],
                "produced_by": self.produced_by}


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    try:
        classes = [ClassEntry(id=int(c["id"]), spec=str(ModelSpec.parse(c["spec"])),
                              weights=c["weights"], generator=dict(c.get("generator") or {}),
                              sha256=c.get("sha256", "")) for c in m["classes"]]
        tv = TVATSettings(**m["tvat"])
        b = Bundle(root=root, scale=int(m["scale"]), tvat=tv, classes=classes,
                   flat_bound=m.get("flat_bound"), produced_by=m.get("produced_by") or {})
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"{path}: malformed manifest ({e})") from None
    if sorted(c.id for c in classes) != list(range(tv.n_classes)):
        raise BundleError(f"{path}: {tv.n_classes} TVAT classes need class ids "
                          f"0..{tv.n_classes - 1}, got {[c.id for c in classes]}")
    return b


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
                flat_bound=None, produced_by=None) -> Bundle:
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
               produced_by=produced_by or {})
    write_manifest(b)
    return b
