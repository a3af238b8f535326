"""TVAT class manifests: TSV files listing sub-images (path, tvat, source, x, y).

Paths are stored relative to the manifest's folder. Kept apart from ``data``
so the split tool does not import Paddle.
"""
from __future__ import annotations

import csv
from pathlib import Path

MANIFEST_FIELDS = ["path", "tvat", "source", "x", "y"]


def read_manifest(path) -> list[dict]:
    """Rows of a TVAT class manifest (TSV); paths resolved against its folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: manifest not found")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if rows and not {"path", "tvat"} <= set(rows[0]):
        raise ValueError(f"{path}: not a TVAT manifest (needs columns 'path' and 'tvat')")
    for r in rows:
        r["path"] = str((path.parent / r["path"]).resolve())
        r["tvat"] = float(r["tvat"])
    return rows


def write_manifest(path, rows: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS, delimiter="\t", extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    tmp.replace(path)
