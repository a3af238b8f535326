"""The code behind the notebooks in ``notebooks/`` (the notebooks hold only the
flow): running the repository's tools, finding and preparing data, the split
settings, side-by-side views with a zoomed crop, routing maps, training curves
read back from VisualDL logs, log tails.

Only the standard library at import (the first cell imports this module before
the requirements are installed); numpy, matplotlib, PIL, visualdl, scikit-image
and Paddle on use.
"""
from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

__all__ = ["setup_notebook", "pick_device", "run_tool", "crop_to_multiple", "limit_size", "busiest_window",
           "show_side_by_side", "show_image", "show_routing", "find_path", "find_file",
           "locate_data", "save_sample_photos", "make_eval_set", "split_sizes",
           "PAPER_SPLIT", "CALIBRATED_SPLIT", "MIN_CLASS_SIZE", "small_classes", "tvat_split",
           "scaled_schedule", "vdl_scalars", "plot_vdl_scalars", "tail"]

PAPER_SPLIT = "--bounds 2,4"      # the paper's class bounds
CALIBRATED_SPLIT = "--calibrate 3"  # three classes of equal size
MIN_CLASS_SIZE = 16               # sub-images a class needs (one batch of the shipped configs)


def setup_notebook(repo, install: bool, device: str = "auto") -> tuple[Path, str]:
    """The notebooks' first step, after they found the repository ``repo``: note the
    folder the notebook started in, work from ``repo``, pip install the
    requirements and the package (``install``), quiet the logs, draw figures
    inline, and resolve ``device`` (:func:`pick_device`). Returns (start folder, device)."""
    start, repo = Path.cwd(), Path(repo).resolve()
    os.chdir(repo)
    print("repository:", repo)
    if install:
        import importlib.util
        # Paddle only when missing: AI Studio ships its own (GPU) build. The package
        # itself is installed from the repository root (requirements.txt ends with -e .).
        if importlib.util.find_spec("paddle") is None:
            run_tool("-m pip install -q -r requirements.txt", cwd=repo)
        else:
            run_tool("-m pip install -q -r requirements-base.txt -e .", cwd=repo)
    else:
        print("INSTALL = False: skipping pip")
    import warnings
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("GLOG_minloglevel", "2")  # quieter Paddle C++ logs, here and in the tools
    # the launcher's own Python warns that ccache is missing: it only matters for C++ extensions
    os.environ.setdefault("PYTHONWARNINGS", "ignore:No ccache found")
    try:
        from IPython import get_ipython
        if get_ipython() is not None:
            get_ipython().run_line_magic("matplotlib", "inline")
    except ImportError:  # not under IPython
        pass
    return start, pick_device(device)


def pick_device(device: str = "auto") -> str:
    """"cpu" or "gpu" for ``device`` "auto" / "cpu" / "gpu"; an error for a GPU Paddle cannot see."""
    import paddle

    from paddle_mmsr.core.devices import TRAIN_DEVICES as DEVICES
    if device not in DEVICES:
        raise ValueError(f"DEVICE must be one of {DEVICES}, not {device!r}")
    n_gpu = paddle.device.cuda.device_count() if paddle.device.is_compiled_with_cuda() else 0
    if device == "auto":
        device = "gpu" if n_gpu else "cpu"
    if device == "gpu" and not n_gpu:
        raise RuntimeError("DEVICE = 'gpu' but this Paddle build sees no GPU: use 'cpu' or a GPU environment")
    print(f"Paddle {paddle.__version__}, device: {device}" + (f" ({n_gpu} GPU)" if n_gpu else ""))
    return device


def run_tool(tool: str, *args, cwd=None) -> None:
    """Run ``python TOOL ARGS...`` (e.g. ``tools/train.py`` or ``-m paddle.distributed.launch``)
    with this kernel's Python, its output shown as it comes; RuntimeError when it fails."""
    cmd = [sys.executable, *tool.split(), *map(str, args)]
    print("$ python", " ".join(_quote(c) for c in cmd[1:]), flush=True)
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    while True:
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        sys.stdout.write(chunk.decode(errors="replace"))
        sys.stdout.flush()
    if proc.wait() != 0:
        raise RuntimeError(f"{tool} failed with exit code {proc.returncode} (its output is above)")


def _quote(arg: str) -> str:
    import shlex
    return shlex.quote(arg)


def crop_to_multiple(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right edge so both sides are multiples of ``scale``."""
    import numpy as np
    h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
    return np.ascontiguousarray(img[:h, :w])


def limit_size(img: np.ndarray, max_side) -> np.ndarray:
    """Centre crop so neither side exceeds ``max_side`` (None or 0: unchanged)."""
    h, w = img.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return img
    y, x = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
    print(f"input {w}x{h} centre-cropped to {min(w, max_side)}x{min(h, max_side)} "
          f"(at most {max_side} px a side)")
    return img[y:y + max_side, x:x + max_side]


def busiest_window(img: np.ndarray, size: int) -> tuple[int, int]:
    """(y, x) of the ``size`` x ``size`` window with the most detail (highest
    gradient energy on a coarse grid): a good place to zoom in."""
    import numpy as np
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
    through :func:`paddle_mmsr.image.panels.nearest_up`). ``crop``: (y, x) of the zoomed window; by
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
    import numpy as np
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


def show_routing(model, rec, lr: np.ndarray, title: str, width: float = 6.0) -> None:
    """The routing map of a reconstruction ``rec`` of ``lr`` by ``model`` (an MMSR):
    each LR tile tinted by the class it went to, with the shares printed."""
    from paddle_mmsr.image.io import to_rgb8
    from paddle_mmsr.sr.route import routing_map
    ids = sorted(set(rec.classes.tolist()))
    pic = routing_map(to_rgb8(lr), rec.grid, rec.classes, {c: model.label(c) for c in ids})
    shares = ", ".join(f"{model.label(c)}: {100 * s:.0f}%" for c, s in sorted(rec.shares().items()))
    print(f"tiles: {len(rec.classes)} ({shares}); TVAT scores "
          f"{rec.scores.min():.2f} .. {rec.scores.max():.2f}")
    show_image(pic, title, width=width)


def find_file(path, roots) -> Path:
    """``path`` as given, else below one of ``roots`` (e.g. the notebook's folder)."""
    for p in [Path(path)] + [Path(r) / path for r in roots]:
        if p.is_file():
            return p
    raise FileNotFoundError(f"{path!r}: no such file (looked in {Path.cwd()} and "
                            + ", ".join(map(str, roots)) + ")")


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


def locate_data(name: str, roots, unzip_to) -> Path | None:
    """Folder ``name`` under ``roots``; else ``name.zip`` found there, unzipped once
    into ``unzip_to/name``; else None."""
    found = find_path(roots, name)
    if found is not None:
        return found
    archive = find_path(roots, name + ".zip", folder=False)
    if archive is None:
        return None
    target, tmp = Path(unzip_to) / name, Path(unzip_to) / (name + ".partial")
    print(f"unzipping {archive} -> {target}")
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp)
    inner = tmp / name
    os.replace(inner if inner.is_dir() else tmp, target)
    return target


def save_sample_photos(folder, names, size: int = 512) -> Path:
    """scikit-image's bundled photos (public domain / CC0) ``names``, at most
    ``size`` x ``size``, as PNG files in ``folder`` (kept when already there)."""
    from skimage import data as skdata

    from paddle_mmsr.image.io import write_image
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        if not (folder / f"{n}.png").exists():
            write_image(folder / f"{n}.png", getattr(skdata, n)()[:size, :size])
    return folder


def make_eval_set(photo_dir, out_dir, scale: int = 4, max_images: int = 0) -> list[str]:
    """A test folder in the tools' layout (``HR/``, ``LR_bicubic_X<scale>/``) from the
    photos of ``photo_dir``: HR cropped to a multiple of ``scale``, LR by the
    training degradation. Photos too small for SSIM after the border crop are
    skipped; files of an earlier choice are removed. Returns the image names."""
    from paddle_mmsr.image.degrade import Degradation
    from paddle_mmsr.image.io import list_images, read_image, to_rgb8, write_image
    out_dir = Path(out_dir)
    hr_dir, lr_dir = out_dir / "HR", out_dir / f"LR_bicubic_X{scale}"
    chosen = []
    for f in list_images(photo_dir):
        if max_images and len(chosen) >= max_images:
            break
        name = f"{f.stem}.png"
        if not (hr_dir / name).exists():
            hr = crop_to_multiple(to_rgb8(read_image(f)), scale)
            if min(hr.shape[:2]) < 16 * scale:
                continue
            write_image(lr_dir / name, Degradation()(hr, scale))
            write_image(hr_dir / name, hr)
        chosen.append(name)
    for sub in (hr_dir, lr_dir):
        for p in list_images(sub) if sub.is_dir() else []:
            if p.name not in chosen:
                p.unlink()
    if not chosen:
        raise ValueError(f"{photo_dir}: no test photo of at least {16 * scale} px a side")
    return chosen


def split_sizes(photo_dir, scale: int = 4) -> tuple[int, int, str]:
    """(sub-image size, step, why) for the TVAT split of the photos in ``photo_dir``.

    The paper's 480 px sub-images (step 240) when the median short side is at
    least 960 px (DIV2K: about 1400): every photo gives several sub-images. For
    smaller photos, half the median short side (a multiple of 16 and of
    ``scale``, at least 192 px, so a 96 px training crop fits), step half of that.
    """
    from PIL import Image

    from paddle_mmsr.image.io import list_images
    sides = []
    for f in list_images(photo_dir):
        try:
            with Image.open(f) as im:
                sides.append(min(im.size))
        except OSError:
            continue  # the split reports unreadable files
    if not sides:
        raise ValueError(f"{photo_dir}: no readable photos")
    median = int(statistics.median_low(sides))
    if median >= 960:
        return 480, 240, f"the paper's (median short side {median} px)"
    unit = math.lcm(16, scale)
    size = max(192, median // 2 // unit * unit)
    return size, size // 2, f"half the median short side of {median} px (480 px needs >= 960 px photos)"


def small_classes(split_info: dict, minimum: int = MIN_CLASS_SIZE) -> list[int]:
    """Ids of the classes of a split (its split.yaml content) with fewer than ``minimum`` sub-images."""
    return [c["id"] for c in split_info["classes"] if c["count"] < minimum]


def tvat_split(photo_dir, split_dir, sub_size: int, step: int, split_args=None) -> dict:
    """Run tools/split_tvat.py once (a finished split made by the same command is
    reused); returns its split.yaml content.

    ``split_args`` None: the paper's bounds (:data:`PAPER_SPLIT`), and when they
    leave a class with fewer than :data:`MIN_CLASS_SIZE` sub-images (small photo
    sets), :data:`CALIBRATED_SPLIT` instead, said in the output. Given
    ``split_args`` are used as they are; a class left that small is an error.
    """
    import shlex

    import yaml
    split_dir = Path(split_dir)
    stamp, info_file = split_dir / "notebook_command.txt", split_dir / "split.yaml"

    def split(args):
        cmd = [str(photo_dir), str(split_dir), "--sub-size", str(sub_size), "--step", str(step),
               *shlex.split(args)]
        if info_file.exists() and stamp.exists() and stamp.read_text() == " ".join(cmd):
            print(f"reusing the split in {split_dir} ({args})")
        else:
            stamp.unlink(missing_ok=True)
            run_tool("tools/split_tvat.py", *cmd)
            stamp.write_text(" ".join(cmd))
        return yaml.safe_load(info_file.read_text())

    info = split(split_args or PAPER_SPLIT)
    small = small_classes(info)
    if small and split_args is None:
        print(f"the paper's bounds leave class(es) {small} with fewer than {MIN_CLASS_SIZE} "
              f"sub-images on these photos: splitting again with {CALIBRATED_SPLIT} "
              "(three classes of equal size)")
        info = split(CALIBRATED_SPLIT)
        small = small_classes(info)
    if small:
        counts = [c["count"] for c in info["classes"]]
        raise ValueError(f"class(es) {small} of the split hold fewer than {MIN_CLASS_SIZE} sub-images "
                         f"(counts {counts}): use SPLIT_ARGS = {CALIBRATED_SPLIT!r}, a smaller "
                         "SUB_SIZE / STEP, or more photos")
    return info


def scaled_schedule(cfg, key: str, new, optimizers, given=()) -> list[str]:
    """Overrides setting ``train.<key>`` to ``new`` iterations, with the learning-rate
    milestones of ``optimizers`` scaled to match (unless ``given`` sets them)."""
    if new is None:
        return []
    old, opts = getattr(cfg.train, key), [f"train.{key}={new}"]
    for name in optimizers:
        ms = getattr(cfg.optim, name).milestones
        if f"optim.{name}.milestones" in given or not ms or not old or new == old:
            continue
        scaled = [m for m in sorted({max(1, round(m * new / old)) for m in ms if m < old}) if m < new]
        opts.append(f"optim.{name}.milestones={scaled}")
    return opts


def vdl_scalars(vdl_dir) -> dict:
    """{run: {tag: (steps, values)}} from the VisualDL logs below ``vdl_dir``
    (one run per sub-folder, e.g. ``class0``; several record files merge)."""
    import numpy as np
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


def x_label(tag: str) -> str:
    """The x axis of a logged scalar: training seconds for the ``..._seconds`` curves
    (``routed/psnr_y_by_train_seconds``), else the iteration."""
    return "training seconds" if tag.endswith("_seconds") else "iteration"


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
        ax.set_xlabel(x_label(tag))
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
