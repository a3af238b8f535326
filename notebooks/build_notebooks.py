#!/usr/bin/env python
"""Write the notebooks of this folder from the cell sources below.

    python notebooks/build_notebooks.py          # rewrite 01_*.ipynb and 02_*.ipynb
    python notebooks/build_notebooks.py --check  # exit 1 if a notebook is out of date

Edit the notebooks here, not in Jupyter, so the source stays reviewable; the
files are written without outputs (tests/test_notebooks.py checks both).
Each notebook has one cell tagged ``parameters`` (papermill's convention).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------- shared cells
GOTO_REPO = '''\
# Work from the repository root, wherever the notebook was opened from.
import os
import shlex
import sys
from pathlib import Path

q = lambda path: shlex.quote(str(path))  # noqa: E731  (quotes paths in ! shell commands)
START_DIR = Path.cwd()
for _d in [START_DIR, *START_DIR.parents]:
    if (_d / "paddle_mmsr").is_dir() and (_d / "tools").is_dir():
        os.chdir(_d)
        break
else:
    raise FileNotFoundError("paddle_mmsr/ not found above " + str(START_DIR) +
                            ": open this notebook inside a clone of the repository (see the top cell)")
if str(Path.cwd()) not in sys.path:
    sys.path.insert(0, str(Path.cwd()))
print("repository:", Path.cwd())'''

INSTALL = '''\
# Install the requirements. Paddle itself is skipped when it is already there
# (AI Studio ships its own GPU build; requirements.txt would add the CPU one).
if INSTALL:
    try:
        import paddle  # noqa: F401
        REQUIREMENTS = "requirements-base.txt"
    except ImportError:
        REQUIREMENTS = "requirements.txt"
    print("pip install -r", REQUIREMENTS)
    !{sys.executable} -m pip install -q -r {REQUIREMENTS}
    assert _exit_code == 0, "pip install failed (see above)"
else:
    print("INSTALL = False: skipping pip")'''

PICK_DEVICE = '''\
%matplotlib inline
import warnings
warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
os.environ.setdefault("GLOG_minloglevel", "2")  # quieter Paddle C++ logs, here and in the tools
os.environ.setdefault("PYTHONWARNINGS", "ignore:No ccache found")  # a harmless Paddle import warning
import numpy as np
import paddle

HAS_GPU = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
if DEVICE == "auto":
    DEVICE = "gpu" if HAS_GPU else "cpu"
assert DEVICE in ("cpu", "gpu"), f"DEVICE must be 'auto', 'cpu' or 'gpu', not {DEVICE!r}"
if DEVICE == "gpu" and not HAS_GPU:
    raise RuntimeError("DEVICE = 'gpu' but this Paddle build sees no GPU: use 'cpu' or a GPU environment")
print(f"Paddle {paddle.__version__}, device: {DEVICE}"
      + (f" ({paddle.device.cuda.device_count()} GPU)" if HAS_GPU else ""))'''


def clone_note(name: str) -> str:
    return f'''\
**On AI Studio** (or any Jupyter): open a terminal, or a notebook cell, in your
home folder and clone the repository, then open `notebooks/{name}` from the
file browser:

```bash
git clone <URL of this repository> paddle-mmsr   # the address from the repository page
```

Run the cells from top to bottom (*Run All* works). Everything the notebook
needs to know is in the **parameters** cell below; the other cells read it.'''


# --------------------------------------------------------------- 01 quickstart
QUICKSTART = [
    ("md", '''\
# MMSR quick start: upscale a photo ×4

MMSR (Wu, Yuan & Shen 2019) cuts the low-resolution (LR) image into tiles,
scores each tile's texture with **TVAT**, and sends it to one of several SRGAN
generators sized to that difficulty: smooth tiles get a small network, richly
textured ones the big 16-block SRGAN. The tiles are stitched back without
seams.

This notebook loads a trained *bundle* (the class generators plus the TVAT
settings), upscales an example photo and your own image, compares the result
with bicubic interpolation, and shows which model handled each tile.'''),
    ("md", clone_note("01_quickstart.ipynb")),
    ("params", '''\
# Parameters: the only cell you need to edit.
INSTALL = True                      # pip install the requirements (Paddle is skipped if present)
BUNDLE = "pretrained/mmsr_x4_psnr"  # trained bundle folder (holds manifest.yaml)
EXAMPLE = "examples/astronaut.png"  # ground-truth photo: shrunk x4, upscaled, compared
MY_IMAGE = None                     # your own low-resolution image (path); None: examples/chelsea_lr.png
MAX_SIDE = 400                      # larger inputs are centre-cropped to this many LR px (None: no limit)
TILE = 64                           # LR tile size for routing (tools/upscale.py uses 128)
DEVICE = "auto"                     # "auto", "gpu" or "cpu"
OUT_DIR = "output/quickstart"       # where the upscaled images are written'''),
    ("code", GOTO_REPO),
    ("code", INSTALL),
    ("code", PICK_DEVICE),
    ("md", '''\
## Load the bundle

A bundle is a folder: `manifest.yaml` (scale, TVAT settings, one entry per
class) and one generator weight file per class. `MMSR.load` checks the
weights against the manifest's checksums.'''),
    ("code", '''\
from paddle_mmsr import MMSR
from paddle_mmsr.image.degrade import Degradation
from paddle_mmsr.image.io import read_image, to_rgb8, write_image
from paddle_mmsr.metrics.psnr_ssim import psnr, ssim
from paddle_mmsr.notebook import crop_to_multiple, nearest_up, show_image, show_side_by_side
from paddle_mmsr.image.resize import imresize
from paddle_mmsr.sr.route import routing_map

if not (Path(BUNDLE) / "manifest.yaml").is_file():
    raise FileNotFoundError(
        f"no bundle at {BUNDLE!r}. Train one with notebooks/02_train_mmsr.ipynb (its bundle: "
        "output/mmsr_notebook/mmsr/bundle) or tools/train.py (output/<name>/bundle), "
        "and set BUNDLE to that folder.")
sr = MMSR.load(BUNDLE, device=DEVICE, tile=TILE)
b = sr.bundle
print(f"x{b.scale} bundle {BUNDLE}: TVAT bounds {b.tvat.bounds} (tau {b.tvat.tau}, norm {b.tvat.norm:g})")
for c in b.classes:
    lo = b.tvat.bounds[c.id - 1] if c.id > 0 else "-inf"
    hi = b.tvat.bounds[c.id] if c.id < len(b.tvat.bounds) else "inf"
    print(f"  {sr.label(c.id):16s} spec {c.spec:5s}  TVAT in [{lo}, {hi})  {c.generator}")
if b.produced_by:
    print("trained:", {k: b.produced_by[k] for k in ("config", "iterations", "trained") if k in b.produced_by})
SCALE = sr.scale
os.makedirs(OUT_DIR, exist_ok=True)'''),
    ("md", '''\
## A photo with a known original

The example photo is the ground truth (HR). We shrink it ×4 with the same
MATLAB-style bicubic degradation the models were trained on, upscale that LR
image with bicubic interpolation and with MMSR, and compare both with the
original. The yellow box marks the zoomed crop.'''),
    ("code", '''\
def limit_size(img, max_side):
    """Centre crop so neither side exceeds max_side (None: unchanged)."""
    if not max_side or max(img.shape[:2]) <= max_side:
        return img
    h, w = img.shape[:2]
    y, x = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
    print(f"input {w}x{h} centre-cropped to {min(w, max_side)}x{min(h, max_side)} (MAX_SIDE = {max_side})")
    return img[y:y + max_side, x:x + max_side]


hr = crop_to_multiple(limit_size(to_rgb8(read_image(EXAMPLE)), MAX_SIDE and MAX_SIDE * SCALE), SCALE)
lr = Degradation()(hr, SCALE)
bicubic = imresize(lr, SCALE)
rec = sr.reconstruct(lr)
sr_img = rec.image
print(f"{EXAMPLE}: HR {hr.shape[1]}x{hr.shape[0]} -> LR {lr.shape[1]}x{lr.shape[0]} -> x{SCALE} "
      f"in {rec.timings['total']:.2f} s ({len(rec.classes)} tiles)")
show_side_by_side({"LR (pixels)": nearest_up(lr, SCALE), "bicubic": bicubic,
                   "MMSR": sr_img, "original": hr}, crop_size=max(32, hr.shape[0] // 5))'''),
    ("md", '''\
PSNR and SSIM on the Y (luma) channel with a border of `scale` pixels removed,
the usual super-resolution convention. PSNR-trained models should beat
bicubic on both; GAN-trained ones trade some PSNR for sharper texture.'''),
    ("code", '''\
rows = [("bicubic", bicubic), ("MMSR", sr_img)]
print(f"{'method':10s} {'PSNR-Y (dB)':>12s} {'SSIM-Y':>8s}")
for name, img in rows:
    print(f"{name:10s} {psnr(img, hr, crop_border=SCALE):12.2f} {ssim(img, hr, crop_border=SCALE):8.4f}")
write_image(Path(OUT_DIR) / (Path(EXAMPLE).stem + "_mmsr.png"), sr_img)'''),
    ("md", '''\
## Which model handled which tile

Each LR tile is tinted by the class it was routed to: its TVAT score decides.
Flat regions (sky, walls) go to the small models, hair, fabric and foliage to
the large one.'''),
    ("code", '''\
def show_routing(rec, lr, title):
    ids = sorted(set(rec.classes.tolist()))
    pic = routing_map(lr, rec.grid, rec.classes, {c: sr.label(c) for c in ids})
    shares = ", ".join(f"{sr.label(c)}: {100 * s:.0f}%" for c, s in sorted(rec.shares().items()))
    print(f"tiles: {len(rec.classes)} ({shares}); TVAT scores {rec.scores.min():.2f} .. {rec.scores.max():.2f}")
    show_image(pic, title, width=6)


show_routing(rec, lr, f"routing of {Path(EXAMPLE).name} ({TILE} px LR tiles)")'''),
    ("md", '''\
## Your own image

Set `MY_IMAGE` in the parameters cell to a file path and run the notebook again
(or from this cell on). To bring a file in, use the *upload* button of the
file browser on the left (AI Studio and JupyterLab both have one); relative
paths are looked up from the repository root and from the notebook's folder,
absolute paths work too. The image is taken **as it is** to be the
low-resolution input and upscaled ×4; there is no original to compare with,
so only the pictures are shown. Large photos are centre-cropped to `MAX_SIDE`
here; `tools/upscale.py` (last cell) handles any size.'''),
    ("code", '''\
def find_input(path):
    for p in (Path(path), START_DIR / path):
        if p.is_file():
            return p
    raise FileNotFoundError(f"MY_IMAGE = {path!r}: no such file (checked {Path.cwd()} and {START_DIR})")


my_path = find_input(MY_IMAGE) if MY_IMAGE else Path("examples/chelsea_lr.png")
mine = limit_size(read_image(my_path), MAX_SIDE)
my_rec = sr.reconstruct(mine)
mine_rgb, my_sr = to_rgb8(mine), to_rgb8(my_rec.image)
print(f"{my_path}: {mine.shape[1]}x{mine.shape[0]} {mine.dtype} -> "
      f"{my_sr.shape[1]}x{my_sr.shape[0]} in {my_rec.timings['total']:.2f} s")
show_side_by_side({"input (pixels)": nearest_up(mine_rgb, SCALE),
                   "bicubic": imresize(mine_rgb, SCALE), "MMSR": my_sr},
                  crop_size=max(32, min(my_sr.shape[:2]) // 4))
show_routing(my_rec, mine_rgb, f"routing of {my_path.name}")
my_out = Path(OUT_DIR) / (my_path.stem + "_x4.png")
write_image(my_out, my_rec.image)
print("saved", my_out)'''),
    ("md", '''\
## The same from the command line

`tools/upscale.py` takes files, folders or globs, upscales whole images of
any size tile by tile, and can draw the routing map. `--device gpu` runs the
generators on the GPU.'''),
    ("code", '''\
cli_out = Path(OUT_DIR) / "cli"
!{sys.executable} tools/upscale.py {q(my_path)} -o {q(cli_out)} --bundle {q(BUNDLE)} --device {DEVICE} --routing-map {q(cli_out / "routing.png")} --overwrite -q
assert _exit_code == 0, "tools/upscale.py failed (see above)"
print(sorted(p.name for p in cli_out.iterdir()))'''),
]


# --------------------------------------------------------------- 02 training
TRAINING = [
    ("md", '''\
# Train MMSR: the paper's experiment

MMSR (Wu, Yuan & Shen 2019) trains **one SRGAN per texture class**:

1. HR training photos (the paper: DIV2K) are cut into sub-images; each one's
   LR version gets a TVAT texture score, and the class bounds (the paper's:
   2 and 4) split them into three classes: smooth, medium, rich.
2. Each class trains its own generator, sized to its difficulty: `4-6`
   (4 residual blocks, 6-layer discriminator), `8-6` and `16-8`. The classes
   are independent, so each trains on its own GPU at the same time
   (`paddle.distributed.launch`, one process per card).
3. The three generators form a *bundle*; reconstruction routes every LR tile
   to its class's generator.

The comparison is against bicubic interpolation and against **one** `16-8`
SRGAN trained on all sub-images (the single-model baseline). MMSR should
match its quality while running most tiles through smaller networks.

A GPU environment runs the paper's schedule (`configs/mmsr_x4.yaml`: long,
days with one card per class). A CPU environment runs `configs/mmsr_x4_cpu.yaml`
("fast" generators, pixel loss only; about a day on two cores). Set `ITERS`
(and `ADV_ITERS`) in the parameters cell for a short first run: the learning
rate milestones are scaled to match, and training continues from the last
checkpoint when you raise them and run the cell again.'''),
    ("md", clone_note("02_train_mmsr.ipynb")),
    ("params", '''\
# Parameters: the only cell you need to edit.
INSTALL = True          # pip install the requirements (Paddle is skipped if present)
DATA_DIR = None         # HR training photos, any folder (DIV2K: .../DIV2K_train_HR).
                        #   None: look for DIV2K_train_HR (folder or .zip) under /home/aistudio/data,
                        #   /home/aistudio/work and data/; if absent, 8 sample photos (a demonstration)
EVAL_DIR = None         # HR test photos. None: DIV2K_valid_HR if found, else 2 sample photos
EVAL_MAX_IMAGES = 10    # evaluate on at most this many test photos (0: all)
DEVICE = "auto"         # "auto", "gpu" or "cpu"
NPROC = None            # training processes, one per GPU (3 = one per class). None: 3 (or the
                        #   number of GPUs if fewer) on GPU, 1 on CPU (classes in turn)
CONFIG = None           # None: configs/mmsr_x4.yaml on GPU, configs/mmsr_x4_cpu.yaml on CPU
                        #   (configs/demo_cpu.yaml, minutes, when training on the sample photos)
BASELINE = True         # also train the single 16-8 SRGAN on all sub-images, to compare with
ITERS = None            # phase-1 (pixel loss) iterations per model; None: the config's
ADV_ITERS = None        # phase-2 (GAN) iterations per model; None: the config's
OVERRIDES = []          # more config overrides (both runs), e.g. ["data.batch_size=8"]
SUB_SIZE, STEP = 480, 240   # TVAT split: HR sub-image size and stride
SPLIT_ARGS = "--bounds 2,4" # the paper's class bounds; "--calibrate 3": 3 equal-sized classes
FRESH = False           # True: ignore existing checkpoints and start training from step 0
WORK_DIR = "output/mmsr_notebook"  # split, runs, logs and results go here'''),
    ("code", GOTO_REPO),
    ("code", INSTALL),
    ("code", PICK_DEVICE),
    ("md", '''\
## 1. Data

**On AI Studio**, data sets you add to the project are mounted under
`/home/aistudio/data` (one folder per data set, usually holding zip files).
Add a DIV2K data set to your project; this cell finds `DIV2K_train_HR`
(a folder, or `DIV2K_train_HR.zip`, which it unzips into `WORK_DIR`).
Anywhere else, put the photos in a folder and set `DATA_DIR` to it: any folder
of images works, DIV2K's layout is not required. Without data, eight sample
photos from scikit-image stand in, with the short `configs/demo_cpu.yaml`:
that shows every step working in minutes, it is not the experiment.'''),
    ("code", '''\
import json
import shlex
import zipfile

import yaml

from paddle_mmsr.image.io import list_images, read_image, to_rgb8, write_image
from paddle_mmsr.notebook import find_path, plot_vdl_scalars, show_image, tail

WORK = Path(WORK_DIR)
WORK.mkdir(parents=True, exist_ok=True)
SEARCH_ROOTS = ["/home/aistudio/data", "/home/aistudio/work", "data", str(WORK / "data")]


def locate(name):
    """Folder `name` under the search roots, or `name`.zip unzipped (once) into WORK_DIR/data."""
    found = find_path(SEARCH_ROOTS, name)
    if found is not None:
        return found
    archive = find_path(SEARCH_ROOTS, name + ".zip", folder=False)
    if archive is None:
        return None
    target, tmp = WORK / "data" / name, WORK / "data" / (name + ".partial")
    print(f"unzipping {archive} -> {target}")
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp)
    inner = tmp / name
    os.replace(inner if inner.is_dir() else tmp, target)
    return target


def sample_photos(folder, names, size=512):
    """Photos bundled with scikit-image (public domain / CC0), at most size x size, as PNG files."""
    from skimage import data as skdata
    folder = WORK / "data" / folder
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        if not (folder / f"{n}.png").exists():
            write_image(folder / f"{n}.png", getattr(skdata, n)()[:size, :size])
    return folder


SAMPLE_DATA = not DATA_DIR and locate("DIV2K_train_HR") is None
if DATA_DIR:
    HR_DIR = Path(DATA_DIR)
elif not SAMPLE_DATA:
    HR_DIR = locate("DIV2K_train_HR")
else:
    print("No training data found: using 8 sample photos from scikit-image "
          "(a demonstration that everything works, not the paper's experiment).")
    HR_DIR = sample_photos("sample_train", ["astronaut", "chelsea", "rocket", "immunohistochemistry",
                                            "brick", "grass", "gravel", "camera"])
if not HR_DIR.is_dir():
    raise FileNotFoundError(f"DATA_DIR = {DATA_DIR!r}: not a folder")
print(f"training photos: {HR_DIR} ({len(list_images(HR_DIR))} images)")

if EVAL_DIR:
    TEST_DIR = Path(EVAL_DIR)
else:
    TEST_DIR = locate("DIV2K_valid_HR") or sample_photos("sample_test", ["coffee", "hubble_deep_field"])
if not TEST_DIR.is_dir():
    raise FileNotFoundError(f"EVAL_DIR = {EVAL_DIR!r}: not a folder")
if TEST_DIR.resolve() == HR_DIR.resolve():
    print("note: the test photos are the training photos, so the scores below flatter every model")
print(f"test photos: {TEST_DIR}")'''),
    ("md", '''\
The test set goes in the layout the tools read: `HR/` and the bicubic ×4
`LR_bicubic_X4/`, made here with the same MATLAB-style bicubic as training.
Training validates on its first few images (PSNR curves in VisualDL) and
`tools/evaluate.py` scores every method on all of them.'''),
    ("code", '''\
from paddle_mmsr.image.degrade import Degradation
from paddle_mmsr.notebook import crop_to_multiple

SCALE = 4
EVAL_SET = WORK / "eval_set"
(EVAL_SET / "HR").mkdir(parents=True, exist_ok=True)
(EVAL_SET / f"LR_bicubic_X{SCALE}").mkdir(exist_ok=True)
chosen = []
for f in list_images(TEST_DIR):
    if EVAL_MAX_IMAGES and len(chosen) >= EVAL_MAX_IMAGES:
        break
    name = f"{f.stem}.png"
    if not (EVAL_SET / "HR" / name).exists():
        hr = crop_to_multiple(to_rgb8(read_image(f)), SCALE)
        if min(hr.shape[:2]) < 16 * SCALE:  # too small for SSIM after the border crop
            continue
        write_image(EVAL_SET / f"LR_bicubic_X{SCALE}" / name, Degradation()(hr, SCALE))
        write_image(EVAL_SET / "HR" / name, hr)
    chosen.append(name)
for sub in ("HR", f"LR_bicubic_X{SCALE}"):  # drop images of an earlier choice
    for p in list_images(EVAL_SET / sub):
        if p.name not in chosen:
            p.unlink()
n_test = len(chosen)
assert n_test, f"{TEST_DIR}: no test image of at least {16 * SCALE} px"
print(f"{EVAL_SET}: {n_test} test images")'''),
    ("md", '''\
## 2. TVAT split

`tools/split_tvat.py` cuts the photos into `SUB_SIZE` sub-images, scores each
one's LR with TVAT and writes one manifest per class, a summary table and the
score histogram (red lines: the class bounds). The paper's bounds 2 and 4 put
most natural-photo sub-images in class 0; `--calibrate 3` gives three equal
classes instead. A finished split is reused when the command is the same.'''),
    ("code", '''\
SPLIT_DIR = WORK / "split"
split_cmd = (f"{q(HR_DIR)} {q(SPLIT_DIR)} "
             f"--sub-size {SUB_SIZE} --step {STEP} {SPLIT_ARGS}")
stamp = SPLIT_DIR / "notebook_command.txt"
if (SPLIT_DIR / "split.yaml").exists() and stamp.exists() and stamp.read_text() == split_cmd:
    print("reusing the split in", SPLIT_DIR)
else:
    !{sys.executable} tools/split_tvat.py {split_cmd}
    assert _exit_code == 0, "tools/split_tvat.py failed (see above)"
    stamp.write_text(split_cmd)
split = yaml.safe_load((SPLIT_DIR / "split.yaml").read_text())
print((SPLIT_DIR / "summary.md").read_text())
show_image(SPLIT_DIR / "histogram.png", width=7)'''),
    ("md", '''\
## 3. Train

One command trains all classes: `paddle.distributed.launch` starts one
process per card (`--devices 0,1,2`), and process *r* trains the classes
*c* with *c* mod N = *r*: with three cards, one class each, at the same time.
On one card or a CPU the classes train one after the other
(`--nproc_per_node 1`). With `BASELINE = True` the single `16-8` model
trains afterwards, with the same config and schedule, on all sub-images
(`all.tsv` of the split).

Progress of the first process is shown below; every process writes
`workerlog.<rank>` in the `logs/` folder. If the kernel is interrupted or
the session ends, run the cell again: training continues from the last
checkpoint (`FRESH = True` starts over).'''),
    ("code", '''\
from paddle_mmsr.config import load_config
from paddle_mmsr.models.vgg import default_weights_paths

if NPROC is None:
    NPROC = min(3, paddle.device.cuda.device_count()) if DEVICE == "gpu" else 1
if DEVICE == "gpu":
    NPROC = min(NPROC, paddle.device.cuda.device_count())
    LAUNCH = "--devices " + ",".join(str(i) for i in range(NPROC))
else:
    LAUNCH = f"--nproc_per_node {NPROC}"
CONFIG_PATH = CONFIG or ("configs/demo_cpu.yaml" if SAMPLE_DATA else
                         "configs/mmsr_x4.yaml" if DEVICE == "gpu" else "configs/mmsr_x4_cpu.yaml")
MMSR_RUN, BASE_RUN = WORK / "mmsr", WORK / "srgan_16-8"
yq = lambda path: json.dumps(str(path))  # noqa: E731  (a path as a YAML string)
base = [f"device={DEVICE}", f"val.dir={yq(EVAL_SET)}", "val.max_images=3"]
plain = load_config(CONFIG_PATH, [f"data.split={yq(SPLIT_DIR)}"] + base + list(OVERRIDES))
given = {o.split("=", 1)[0].strip() for o in OVERRIDES}


def schedule(key, new, optimizers):
    """Set a phase's iterations; scale its lr milestones to match (unless given in OVERRIDES)."""
    if new is None:
        return []
    old, opts = getattr(plain.train, key), [f"train.{key}={new}"]
    for name in optimizers:
        ms = getattr(plain.optim, name).milestones
        if f"optim.{name}.milestones" in given or not ms or not old or new == old:
            continue
        scaled = [m for m in sorted({max(1, round(m * new / old)) for m in ms if m < old}) if m < new]
        opts.append(f"optim.{name}.milestones={scaled}")
    return opts


common = (base + schedule("pretrain_iters", ITERS, ["pretrain"])
          + schedule("adversarial_iters", ADV_ITERS, ["generator", "discriminator"]) + list(OVERRIDES))
MMSR_OPTS = [f"data.split={yq(SPLIT_DIR)}", f"output={yq(MMSR_RUN)}"] + common
# the baseline: the same config and schedule with one 16-8 model on every sub-image
# (for the paper's GPU schedule this is configs/srgan_16-8_x4.yaml)
BASE_OPTS = ["data.split=null", f"data.sources=[{yq(SPLIT_DIR / 'all.tsv')}]", 'classes=[{spec: "16-8"}]',
             "name=srgan_16-8_baseline", f"output={yq(BASE_RUN)}"] + common


def cli(opts):
    return " ".join("-o " + q(o) for o in opts) + (" --fresh" if FRESH else "")


cfg = load_config(CONFIG_PATH, MMSR_OPTS)  # checks the config and the overrides now
configs = [cfg] + ([load_config(CONFIG_PATH, BASE_OPTS)] if BASELINE else [])
t, g = cfg.train, cfg.model.generator
print(f"{CONFIG_PATH}: classes {[c.spec for c in cfg.classes]}, {t.pretrain_iters} + {t.adversarial_iters} "
      f"iterations per model, batch {cfg.data.batch_size} x {cfg.data.crop} px, "
      f"{g.form} generators ({g.channels} channels)")
print("overrides:", " ".join(MMSR_OPTS))
print("launch:", LAUNCH)
needs_vgg = any(c.train.adversarial_iters > 0 and c.loss.content_weight > 0
                and c.loss.vgg_weights == "auto" for c in configs)
if needs_vgg and not any(p.is_file() for p in default_weights_paths()):
    print("The GAN phase needs VGG19 weights for its content loss: fetching them (once).")
    !{sys.executable} tools/get_vgg19.py
    assert _exit_code == 0, "tools/get_vgg19.py failed (see above and docs/vgg19.md)"'''),
    ("code", '''\
LOG_DIR = MMSR_RUN / "logs"
!{sys.executable} -m paddle.distributed.launch {LAUNCH} --log_dir {q(LOG_DIR)} tools/train.py -c {q(CONFIG_PATH)} {cli(MMSR_OPTS)}
if _exit_code != 0:
    for log in sorted(LOG_DIR.glob("workerlog.*")):
        print(f"----- {log} (last lines)\\n{tail(log, 25)}")
    raise RuntimeError(f"training failed (exit code {_exit_code}); the worker logs are above")
summary = json.loads((MMSR_RUN / "summary.json").read_text())
print()
for c in summary["classes"]:
    val = c.get("last_val") or {}
    print(f"class {c['class']} ({c['spec']}): {c['status']}, {c.get('steps', '?')} steps, "
          f"{c.get('train_seconds', 0):.0f} s" + (f", val PSNR-Y {val['psnr']:.2f} dB" if "psnr" in val else ""))
assert summary["bundle"], "the bundle was not assembled (see above)"
MMSR_BUNDLE = Path(summary["bundle"])
print("MMSR bundle:", MMSR_BUNDLE)'''),
    ("code", '''\
# The single-model baseline: one 16-8 SRGAN on every sub-image.
BASE_BUNDLE = None
if BASELINE:
    !{sys.executable} tools/train.py -c {q(CONFIG_PATH)} {cli(BASE_OPTS)}
    assert _exit_code == 0, "baseline training failed (see above)"
    BASE_BUNDLE = Path(json.loads((BASE_RUN / "summary.json").read_text())["bundle"])
    print("baseline bundle:", BASE_BUNDLE)'''),
    ("md", '''\
## 4. Watch training in VisualDL

Every class logs its losses, learning rate and validation PSNR/SSIM (plus
sample images and weight histograms) to `<run>/vdl/class<i>`.

* **AI Studio**: the *Visualization* (可视化) panel in the left sidebar runs
  VisualDL for you: set its log folder to the `.../vdl` path printed below.
* **Elsewhere**: start VisualDL in a terminal with the command printed below
  and open `http://<host>:8040`. Keep `--language en` (or `zh`): without it
  some clients get an HTTP 500 page.

The cell below draws the same scalar curves right here, from the log files.'''),
    ("code", '''\
vdl_dirs = [MMSR_RUN / "vdl"] + ([BASE_RUN / "vdl"] if BASE_BUNDLE else [])
for d in vdl_dirs:
    print(f"visualdl --logdir {q(d.resolve())} --host 0.0.0.0 --port 8040 --language en")
plot_vdl_scalars(MMSR_RUN / "vdl")'''),
    ("md", '''\
## 5. Evaluate: bicubic, the single 16-8 SRGAN, MMSR

`tools/evaluate.py` upscales every LR test image and reports PSNR and SSIM on
the Y channel (border of 4 px removed), per image and on average.'''),
    ("code", '''\
results = {}
!{sys.executable} tools/evaluate.py {q(EVAL_SET)} --method bicubic --json {q(WORK / "eval_bicubic.json")}
assert _exit_code == 0, "evaluation failed"
results["bicubic"] = WORK / "eval_bicubic.json"
if BASE_BUNDLE:
    !{sys.executable} tools/evaluate.py {q(EVAL_SET)} --method mmsr --bundle {q(BASE_BUNDLE)} --json {q(WORK / "eval_srgan16-8.json")}
    assert _exit_code == 0, "evaluation failed"
    results["SRGAN 16-8 (single)"] = WORK / "eval_srgan16-8.json"
!{sys.executable} tools/evaluate.py {q(EVAL_SET)} --method mmsr --bundle {q(MMSR_BUNDLE)} --json {q(WORK / "eval_mmsr.json")}
assert _exit_code == 0, "evaluation failed"
results["MMSR"] = WORK / "eval_mmsr.json"'''),
    ("code", '''\
print(f"{'method':22s} {'PSNR-Y (dB)':>12s} {'SSIM-Y':>8s}   ({n_test} test images)")
for name, path in results.items():
    mean = json.loads(Path(path).read_text())[0]["mean"]
    print(f"{name:22s} {mean['psnr']:12.2f} {mean['ssim']:8.4f}")'''),
    ("md", '''\
## 6. Speed and a look at the pictures

MMSR's point is speed at equal quality: smooth tiles skip the big network.
Both bundles upscale the test images once more here, timed, and the first
image is shown with its routing map.'''),
    ("code", '''\
import time

from paddle_mmsr import MMSR
from paddle_mmsr.notebook import nearest_up, show_side_by_side
from paddle_mmsr.image.resize import imresize
from paddle_mmsr.sr.route import routing_map

models = {"MMSR": MMSR.load(MMSR_BUNDLE, device=DEVICE)}
if BASE_BUNDLE:
    models["SRGAN 16-8"] = MMSR.load(BASE_BUNDLE, device=DEVICE)
pairs = [(read_image(p), read_image(EVAL_SET / f"LR_bicubic_X{SCALE}" / p.name))
         for p in list_images(EVAL_SET / "HR")]
outputs = {}
for name, m in models.items():
    m.prepare()  # build every runner first, so the timing covers upscaling only
    start = time.perf_counter()
    recs = [m.reconstruct(lr) for _, lr in pairs]
    seconds = time.perf_counter() - start
    outputs[name] = recs
    ids, counts = np.unique(np.concatenate([r.classes for r in recs]), return_counts=True)
    shares = ", ".join(f"{m.label(c)} {100 * k / counts.sum():.0f}%" for c, k in zip(ids, counts))
    print(f"{name:11s} {seconds:7.2f} s for {len(pairs)} images; tiles: {shares}")

hr0, lr0 = pairs[0]
views = {"LR (pixels)": nearest_up(lr0, SCALE), "bicubic": imresize(lr0, SCALE)}
views.update({name: recs[0].image for name, recs in outputs.items()})
views["original"] = hr0
show_side_by_side(views, crop_size=max(32, min(hr0.shape[:2]) // 5))
r0 = outputs["MMSR"][0]
ids = sorted(set(r0.classes.tolist()))
show_image(routing_map(lr0, r0.grid, r0.classes, {c: models["MMSR"].label(c) for c in ids}),
           "MMSR routing of the first test image", width=6)'''),
    ("md", '''\
## 7. Upscale with the new bundle

The bundle folder is all reconstruction needs: use it with `tools/upscale.py`,
with `MMSR.load(...)` in Python, or as `BUNDLE` in `01_quickstart.ipynb`.'''),
    ("code", '''\
UPSCALED = WORK / "upscaled"
!{sys.executable} tools/upscale.py examples/chelsea_lr.png -o {q(UPSCALED)} --bundle {q(MMSR_BUNDLE)} --device {DEVICE} --routing-map {q(UPSCALED / "chelsea_routing.png")} --overwrite -q
assert _exit_code == 0, "tools/upscale.py failed (see above)"
show_image(UPSCALED / "chelsea_lr.png", "examples/chelsea_lr.png x4 with the new bundle", width=6)
print(f"In 01_quickstart.ipynb set BUNDLE = {str(MMSR_BUNDLE)!r}")'''),
]


def build(cells, name: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    prefix = name.split("_")[0]
    for i, (kind, src) in enumerate(cells):
        cid = f"{prefix}-{i:02d}"
        if kind == "md":
            cell = nbformat.v4.new_markdown_cell(src, id=cid)
        else:
            cell = nbformat.v4.new_code_cell(src, id=cid)
            if kind == "params":
                cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def notebooks() -> dict:
    return {"01_quickstart.ipynb": build(QUICKSTART, "01_quickstart"),
            "02_train_mmsr.ipynb": build(TRAINING, "02_train_mmsr")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check the files are up to date")
    a = ap.parse_args(argv)
    stale = []
    for name, nb in notebooks().items():
        text = nbformat.writes(nb) + "\n"
        path = HERE / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not a.check:
            path.write_text(text)
            print("wrote", path)
    if a.check and stale:
        print("out of date (run python notebooks/build_notebooks.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
