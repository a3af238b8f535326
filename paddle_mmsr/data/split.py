"""Training split: HR images -> sub-images -> LR -> TVAT -> per-class manifests.

A sub-image is scored on its LR (made by the same degradation as training),
because reconstruction scores LR tiles. Output folder::

    sub/<stem>_<y>_<x>.png   HR sub-images
    class<i>.tsv             manifests (path, tvat, source, x, y)
    split.yaml               settings, bounds, class sizes
    summary.md               table of the classes
    histogram.png            score histogram with the bounds
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from paddle_mmsr.data.manifest import write_manifest
from paddle_mmsr.image.degrade import Degradation
from paddle_mmsr.image.io import ImageReadError, list_images, read_image, to_rgb8, write_image
from paddle_mmsr.core.tvat import TVATSettings, calibrate, classify
from paddle_mmsr.core.tiles import tile_starts

ALL_MANIFEST = "all.tsv"  # every sub-image of the split (the class manifests are class<i>.tsv)


def cut_subimages(img: np.ndarray, size: int, step: int, scale: int):
    """Yield (y, x, sub) with sub cropped to a multiple of ``scale``; positions as
    reconstruction's tiles (step ``step``, the last window flush with the edge)."""
    if not 0 < step <= size:
        raise ValueError(f"the step must be in 1..{size} (the sub-image size), got {step}")
    h, w = img.shape[:2]
    for y in tile_starts(h, size, size - step):
        for x in tile_starts(w, size, size - step):
            sub = img[y:y + size, x:x + size]
            sh, sw = sub.shape[0] - sub.shape[0] % scale, sub.shape[1] - sub.shape[1] % scale
            if sh >= scale and sw >= scale:
                yield y, x, sub[:sh, :sw]


def split_folder(hr_dirs, out_dir, scale: int = 4, sub_size: int = 480, step: int = 240,
                 bounds=None, n_calibrate: int | None = None, tvat: TVATSettings | None = None,
                 degradation: Degradation | None = None, progress=None) -> dict:
    """Run the split; returns the split.yaml content. ``progress`` wraps an iterable."""
    out_dir = Path(out_dir)
    tvat = tvat or TVATSettings()
    degradation = degradation or Degradation()
    if isinstance(hr_dirs, (str, Path)):
        hr_dirs = [hr_dirs]
    files = []
    for d in hr_dirs:
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: not a folder")
        files += list_images(d)
    if not files:
        raise ValueError(f"no images found in {', '.join(str(d) for d in hr_dirs)}")
    made = [p for p in (out_dir, out_dir / "sub") if not p.exists()]  # removed if nothing comes
    (out_dir / "sub").mkdir(parents=True, exist_ok=True)
    rows, skipped = [], []
    for f in (progress(files) if progress else files):
        try:
            img = to_rgb8(read_image(f))
        except ImageReadError as e:
            skipped.append(str(e))
            continue
        for y, x, sub in cut_subimages(img, sub_size, step, scale):
            name = f"{f.stem}_{y:04d}_{x:04d}.png"
            write_image(out_dir / "sub" / name, sub)
            score = tvat.score(degradation(sub, scale))
            rows.append({"path": f"sub/{name}", "tvat": round(score, 6), "source": str(f),
                         "x": x, "y": y})
    if not rows:
        for p in reversed(made):
            p.rmdir()  # empty: nothing was written
        raise ValueError(f"no sub-images were made: {len(skipped)} of {len(files)} files "
                         "could not be read")
    scores = np.array([r["tvat"] for r in rows])
    if n_calibrate:
        tvat.bounds = calibrate(scores, n_calibrate)
    elif bounds is not None:
        tvat.bounds = [float(b) for b in bounds]
    tvat.__post_init__()
    labels = classify(scores, tvat.bounds)
    classes = []
    for c in range(tvat.n_classes):
        members = [r for r, lab in zip(rows, labels) if lab == c]
        write_manifest(out_dir / f"class{c}.tsv", members)
        s = scores[labels == c]
        classes.append({"id": c, "manifest": f"class{c}.tsv", "count": len(members),
                        "min": float(s.min()) if len(s) else None,
                        "max": float(s.max()) if len(s) else None})
    write_manifest(out_dir / ALL_MANIFEST, rows)
    warnings = [empty_class_warning(c["id"], tvat.bounds, tvat.n_classes)
                for c in classes if c["count"] == 0]
    info = {"scale": scale, "sub_size": sub_size, "step": step, "tvat": tvat.to_dict(),
            "degradation": degradation.to_dict(), "sources": [str(d) for d in hr_dirs],
            "n_images": len(files) - len(skipped), "n_subimages": len(rows),
            "percentiles": {str(p): float(np.percentile(scores, p)) for p in (1, 10, 50, 90, 99)},
            "classes": classes, "skipped": skipped, "warnings": warnings}
    (out_dir / "split.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    (out_dir / "summary.md").write_text(summary_table(info))
    plot_histogram(scores, tvat.bounds, out_dir / "histogram.png")
    return info


def class_range(c: int, bounds) -> str:
    lo = f"{bounds[c - 1]:g}" if c > 0 else "-inf"
    hi = f"{bounds[c]:g}" if c < len(bounds) else "inf"
    return f"[{lo}, {hi})"


def empty_class_warning(c: int, bounds, n_classes: int) -> str:
    return (f"class {c} (TVAT {class_range(c, bounds)}) has no sub-images, so it cannot be "
            f"trained; choose other --bounds, or --calibrate {n_classes} for {n_classes} "
            "equal-sized classes")


def summary_table(info: dict) -> str:
    n = info["n_subimages"]
    lines = [f"TVAT split: {info['n_images']} images -> {n} sub-images "
             f"({info['sub_size']} px, step {info['step']}, x{info['scale']})",
             f"bounds: {info['tvat']['bounds']}", "",
             "| class | sub-images | share | TVAT min | TVAT max |", "|---|---|---|---|---|"]
    for c in info["classes"]:
        lo = "-" if c["min"] is None else f"{c['min']:.3f}"
        hi = "-" if c["max"] is None else f"{c['max']:.3f}"
        lines.append(f"| {c['id']} | {c['count']} | {c['count'] / n:.1%} | {lo} | {hi} |")
    p = info["percentiles"]
    lines += ["", "percentiles (1/10/50/90/99): " + " / ".join(f"{p[k]:.3f}" for k in p)]
    return "\n".join(lines) + "\n"


def plot_histogram(scores, bounds, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.hist(scores, bins=min(60, max(10, len(scores) // 5)), color="#4a7ab5")
    for b in bounds:
        ax.axvline(b, color="#c0392b", linestyle="--")
        ax.text(b, ax.get_ylim()[1] * 0.95, f" {b:g}", color="#c0392b", va="top")
    ax.set_xlabel("TVAT score of the LR sub-image")
    ax.set_ylabel("sub-images")
    ax.set_title(f"TVAT distribution ({len(scores)} sub-images)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
