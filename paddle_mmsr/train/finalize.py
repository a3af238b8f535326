"""After all classes: the bundle, the routed validation and summary.json."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from paddle_mmsr.core.manifest import Bundle, ClassEntry, weights_name, write_manifest
from paddle_mmsr.train.checkpoint import G_FINAL


def assemble_bundle(bundle_dir, jobs, tvat, scale: int, produced_by: dict,
                    weights: dict | None = None) -> Path:
    """Write each class's final generator into ``bundle_dir`` and the manifest.

    ``weights``: {class: bytes of its g_final.safetensors} as received from the
    ranks; None copies ``<class dir>/g_final.safetensors`` (``--assemble``)."""
    bundle_dir = Path(bundle_dir)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for job in jobs:
        name = weights_name(job.id)
        tmp = bundle_dir / f".{name}.tmp"
        if weights is not None:
            if job.id not in weights:
                raise RuntimeError(f"class {job.id}: no final weights were received")
            tmp.write_bytes(weights[job.id])
        else:
            src = job.dir / G_FINAL
            if not src.exists():
                raise FileNotFoundError(f"{src}: class {job.id} has no final weights")
            shutil.copyfile(src, tmp)
        os.replace(tmp, bundle_dir / name)
        entries.append(ClassEntry(id=job.id, spec=job.spec, weights=name,
                                  generator=dict(job.generator)))
    write_manifest(Bundle(root=bundle_dir, scale=scale, tvat=tvat, classes=entries,
                          produced_by=produced_by))
    return bundle_dir


def routed_validation(bundle_dir, val_cfg, scale: int, device: str = "cpu") -> dict:
    """PSNR/SSIM-Y of the whole routed system (tiles -> TVAT -> class models)."""
    from paddle_mmsr.sr.reconstruct import MMSR
    from paddle_mmsr.train.validate import load_pairs, val_pairs, validate
    sr = MMSR.load(bundle_dir, backend=val_cfg.backend, device=device)
    images = load_pairs(val_pairs(val_cfg.dir, scale, val_cfg.max_images), scale)
    border = val_cfg.crop_border if val_cfg.crop_border is not None else scale
    res = validate(sr.upscale, images, scale, border)
    res.pop("sample", None)
    return res


def read_class_summaries(jobs) -> dict:
    out = {}
    for job in jobs:
        p = job.dir / "summary.json"
        failed = job.dir / "failed.json"
        if p.exists() and not (failed.exists() and failed.stat().st_mtime > p.stat().st_mtime):
            out[job.id] = {"status": "done", **json.loads(p.read_text())}
        elif failed.exists():
            out[job.id] = {"status": "failed", **json.loads(failed.read_text())}
        else:
            out[job.id] = {"status": "missing", "class": job.id, "spec": job.spec}
    return out


def write_summary(path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"written": time.strftime("%Y-%m-%d %H:%M:%S"), **data},
                              indent=1, default=str))
    os.replace(tmp, path)
    return path
