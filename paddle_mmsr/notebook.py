"""Small helpers for the notebooks in ``notebooks/``: side-by-side views with a
zoomed crop, training curves read back from VisualDL logs, log tails.

Only numpy, matplotlib and (for the curves) visualdl are imported, on use.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["crop_to_multiple", "nearest_up", "busiest_window", "show_side_by_side",
           "show_image", "find_path", "vdl_scalars", "plot_vdl_scalars", "tail"]


def crop_to_multiple(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right edge so both sides are multiples of ``scale``."""
    h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
    return np.ascontiguousarray(img[:h, :w])


def nearest_up(img: np.ndarray, scale: int) -> np.ndarray:
    """Pixel replication: shows an LR image at the output size, pixels visible."""
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def busiest_window(img: np.ndarray, size: int) -> tuple[int, int]:
    """(y, x) of the ``size`` x ``size`` window with the most detail (highest
    gradient energy on a coarse grid): a good place to zoom in."""
    g = np.asarray(img, dtype=np.float32)
    g = g.mean(axis=2) if g.ndim == 3 else g
    h, w = g.shape
    if h <= size or w <= size:
        return 0, 0
    energy = np.zeros_like(g)
    energy[:, 1:] += np.abs(np.diff(g, axis=1))
    energy[1:, :] += np.abs(np.diff(g, axis=0))
    c = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, size // 4)
    best, pos = -1.0, (0, 0)
    for y in range(0, h - size + 1, step):
        for x in range(0, w - size + 1, step):
            s = c[y + size, x + size] - c[y, x + size] - c[y + size, x] + c[y, x]
            if s > best:
                best, pos = s, (y, x)
    return pos


def show_side_by_side(images: dict, crop=None, crop_size: int = 96, width: float = 16.0,
                      title: str | None = None):
    """Show same-size images in one row (:func:`paddle_mmsr.image.panels.side_by_side`),
    then a zoomed crop of each below.

    ``images``: {label: HxWx3 uint8}, all the same size (show an LR image
    through :func:`nearest_up`). ``crop``: (y, x) of the zoomed window; by
    default the busiest window of the last image. ``width``: figure width
    in inches.
    """
    from paddle_mmsr.image.panels import outline, side_by_side
    labels, pics = list(images), list(images.values())
    shapes = {p.shape[:2] for p in pics}
    if len(shapes) != 1:
        raise ValueError(f"images must have the same size, got {sorted(shapes)}")
    h, w = pics[0].shape[:2]
    crop_size = min(crop_size, h, w)
    y, x = crop if crop is not None else busiest_window(pics[-1], crop_size)
    show_image(side_by_side(*(outline(p, y, x, crop_size) for p in pics), labels=labels),
               title, width=width)
    zoom = max(1, w // crop_size)
    show_image(side_by_side(*(p[y:y + crop_size, x:x + crop_size] for p in pics), zoom=zoom,
                            labels=[f"{label} (zoom x{zoom})" for label in labels]),
               None, width=width)


def show_image(img, title: str | None = None, width: float = 8.0):
    """Show one image (numpy array, PIL image or file path) at a fixed width."""
    import matplotlib.pyplot as plt
    if isinstance(img, (str, Path)):
        from PIL import Image
        img = Image.open(img)
    a = np.asarray(img)
    fig, ax = plt.subplots(figsize=(width, width * a.shape[0] / a.shape[1]))
    ax.imshow(a)
    ax.axis("off")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    plt.show()


def find_path(roots, name: str, folder: bool = True, max_depth: int = 3) -> Path | None:
    """The first folder (or file, ``folder=False``) called ``name`` under any of
    ``roots``, searched breadth first at most ``max_depth`` levels down; or None."""
    for root in roots:
        level = [Path(root)] if Path(root).is_dir() else []
        for _ in range(max_depth + 1):
            nxt = []
            for d in level:
                try:
                    children = sorted(d.iterdir())
                except OSError:  # unreadable folder
                    continue
                for c in children:
                    if c.name == name and (c.is_dir() if folder else c.is_file()):
                        return c
                    if c.is_dir() and not c.name.startswith("."):
                        nxt.append(c)
            level = nxt
    return None


def vdl_scalars(vdl_dir) -> dict:
    """{run: {tag: (steps, values)}} from the VisualDL logs below ``vdl_dir``
    (one run per sub-folder, e.g. ``class0``; several record files merge)."""
    from visualdl import LogReader
    out = {}
    for f in sorted(Path(vdl_dir).rglob("vdlrecords*")):
        tags = LogReader(file_path=str(f)).get_tags().get("scalar", [])
        run = out.setdefault(str(f.parent.relative_to(vdl_dir)), {})
        for tag in tags:
            data = LogReader(file_path=str(f)).get_data("scalar", tag)
            steps, values = run.get(tag, ([], []))
            run[tag] = (steps + [d.id for d in data], values + [d.value for d in data])
    for run in out.values():
        for tag, (steps, values) in run.items():
            order = np.argsort(steps, kind="stable")
            run[tag] = (np.asarray(steps)[order], np.asarray(values)[order])
    return out


def plot_vdl_scalars(vdl_dir, tags=None, width: float = 5.0):
    """One plot per scalar tag (all runs overlaid): the curves VisualDL shows.
    ``tags``: tags to plot (default: every scalar tag)."""
    import matplotlib.pyplot as plt
    data = vdl_scalars(vdl_dir)
    all_tags = sorted({t for run in data.values() for t in run})
    tags = [t for t in (tags or all_tags) if t in all_tags]
    if not tags:
        print(f"no scalars logged under {vdl_dir} yet")
        return
    cols = min(3, len(tags))
    rows = -(-len(tags) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, width * 0.7 * rows), squeeze=False)
    for ax, tag in zip(axes.ravel(), tags):
        for run, series in sorted(data.items()):
            if tag in series:
                steps, values = series[tag]
                ax.plot(steps, values, marker="." if len(steps) < 30 else None, label=run)
        ax.set_title(tag)
        ax.set_xlabel("iteration")
        ax.legend(fontsize=8)
    for ax in axes.ravel()[len(tags):]:
        ax.axis("off")
    fig.tight_layout()
    plt.show()


def tail(path, n: int = 30) -> str:
    """The last ``n`` lines of a text file ('' if it does not exist)."""
    p = Path(path)
    if not p.is_file():
        return ""
    return "\n".join(p.read_text(errors="replace").splitlines()[-n:])
