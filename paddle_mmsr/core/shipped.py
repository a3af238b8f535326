"""The bundles shipped with the package, and which one is the default.

An installed package (``pip install .``, a wheel) carries them as package data
in ``paddle_mmsr/pretrained/``; a checkout has them in ``pretrained/`` at its
top. Both places are looked in, in that order.
"""
from __future__ import annotations

from pathlib import Path

from paddle_mmsr.core.manifest import MANIFEST

DEFAULT_BUNDLE = "mmsr_x4_robust"  # the bundle the commands use without --bundle
INSTALLED = Path(__file__).resolve().parents[1] / "pretrained"
CHECKOUT = Path(__file__).resolve().parents[2] / "pretrained"


def shipped_bundle(name: str = DEFAULT_BUNDLE) -> Path:
    """The folder of the shipped bundle ``name``; FileNotFoundError naming both
    places when neither holds it."""
    places = [INSTALLED / name, CHECKOUT / name]
    for folder in places:
        if (folder / MANIFEST).is_file():
            return folder
    raise FileNotFoundError(
        f"no shipped bundle {name!r}: looked in the installed package ({places[0]}) and in "
        f"the checkout ({places[1]}); reinstall paddle-mmsr or pass --bundle DIR")


def resolve_bundle(text: str | None) -> Path:
    """A --bundle value: None is the default bundle; a bare name that is not a
    folder here is a shipped bundle; anything else is a folder, which must hold
    a manifest (FileNotFoundError otherwise)."""
    if text is None:
        return shipped_bundle()
    path = Path(text)
    if not path.exists() and len(path.parts) == 1:
        try:
            return shipped_bundle(text)
        except FileNotFoundError:
            pass
    if not (path / MANIFEST).is_file():
        raise FileNotFoundError(f"no bundle at {path}; pass --bundle or see README")
    return path
