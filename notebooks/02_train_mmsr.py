# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Train MMSR: the paper's experiment
#
# MMSR (Wu, Yuan & Shen 2019) trains **one SRGAN per texture class**:
#
# 1. HR training photos (the paper: DIV2K) are cut into sub-images; each one's
#    LR version gets a TVAT texture score, and the class bounds (the paper's:
#    2 and 4) split them into three classes: smooth, medium, rich.
# 2. Each class trains its own generator, sized to its difficulty: `4-6`
#    (4 residual blocks, 6-layer discriminator), `8-6` and `16-8`. The classes
#    are independent, so each trains on its own GPU at the same time
#    (`paddle.distributed.launch`, one process per card).
# 3. The three generators form a *bundle*; reconstruction routes every LR tile
#    to its class's generator.
#
# The comparison is against bicubic interpolation and against **one** `16-8`
# SRGAN trained on all sub-images (the single-model baseline). MMSR should
# match its quality while running most tiles through smaller networks.
#
# A GPU environment runs the paper's schedule (`configs/mmsr_x4.yaml`: long,
# days with one card per class). A CPU environment runs `configs/mmsr_x4_cpu.yaml`
# ("fast" generators, pixel loss only; about a day on two cores). Set `ITERS`
# (and `ADV_ITERS`) in the parameters cell for a short first run: the learning
# rate milestones are scaled to match, and training continues from the last
# checkpoint when you raise them and run the cell again.

# %% [markdown]
# **Where this runs.** The notebook works inside this repository: it finds the
# repository from its own folder (or in `~/work/*/`), works from its root and
# installs it there. So:
#
# * **AI Studio, a forked project** holding the repository: nothing to clone, open
#   `notebooks/02_train_mmsr.ipynb` from the file browser and *Run All*.
# * **Anywhere else**: download the repository as a ZIP file from its page,
#   unzip it (on AI Studio: upload the ZIP into `work/`, then run
#   `!cd ~/work && unzip -q *.zip` in a cell) and open `notebooks/02_train_mmsr.ipynb` inside
#   the unzipped folder. With git, `git clone` the address shown on the
#   repository page instead.
#
# Run the cells from top to bottom (*Run All* works). Everything the notebook
# needs to know is in the **parameters** cell below; the other cells read it.

# %% tags=["parameters"]
# Parameters: the only cell you need to edit.
INSTALL = True          # pip install the requirements and the package (Paddle only if missing)
DATA_DIR = None         # HR training photos, any folder (DIV2K: .../DIV2K_train_HR).
                        #   None: look for DIV2K_train_HR (folder or .zip) under ~/data, ~/work
                        #   (AI Studio's mounts) and data/; if absent, 8 sample photos (a demonstration)
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
SUB_SIZE, STEP = None, None  # TVAT split: HR sub-image size and stride. None: from the photo sizes
                        #   (the paper's 480, 240 for DIV2K-sized photos; smaller for small photos)
SPLIT_ARGS = None       # class bounds. None: the paper's "--bounds 2,4", or "--calibrate 3" (three
                        #   equal classes) when those leave a class nearly empty; or give either
FRESH = False           # True: ignore existing checkpoints and start training from step 0
WORK_DIR = "output/mmsr_notebook"  # split, runs, logs and results go here

# %%
# Find the repository (this notebook's folder or above it, else ~/work/*/), then
# set up: work from its root, pip install (INSTALL), quiet logs, pick the device.
import sys
from pathlib import Path

REPO = next((d for d in [Path.cwd(), *Path.cwd().parents, *sorted(Path.home().glob("work/*"))]
             if (d / "paddle_mmsr" / "notebook.py").is_file()), None)
assert REPO, f"the paddle-mmsr repository is not in {Path.cwd()}, above it or in ~/work/: see the top cell"
sys.path.insert(0, str(REPO))
from paddle_mmsr.notebook import setup_notebook  # noqa: E402

START_DIR, DEVICE = setup_notebook(REPO, install=INSTALL, device=DEVICE)

# %% [markdown]
# ## 1. Data
#
# **On AI Studio**, data sets you add to the project are mounted under
# `~/data` (one folder per data set, usually holding zip files).
# Add a DIV2K data set to your project; this cell finds `DIV2K_train_HR`
# (a folder, or `DIV2K_train_HR.zip`, which it unzips into `WORK_DIR`).
# Anywhere else, put the photos in a folder and set `DATA_DIR` to it: any folder
# of images works, DIV2K's layout is not required. Without data, eight sample
# photos from scikit-image stand in, with the short `configs/demo_cpu.yaml`:
# that shows every step working in minutes, it is not the experiment.

# %%
import json

from paddle_mmsr.cli.prepare_demo import TRAIN_PHOTOS  # the demo's photos: the sample data
from paddle_mmsr.image.io import list_images
from paddle_mmsr.notebook import (locate_data, make_eval_set, plot_vdl_scalars, run_tool,
                                  save_sample_photos, scaled_schedule, show_image, split_sizes,
                                  tail, tvat_split)

WORK = Path(WORK_DIR)
WORK.mkdir(parents=True, exist_ok=True)
SEARCH_ROOTS = [str(Path.home() / "data"), str(Path.home() / "work"), "data", str(WORK / "data")]

SAMPLE_DATA = not DATA_DIR and locate_data("DIV2K_train_HR", SEARCH_ROOTS, WORK / "data") is None
if DATA_DIR:
    HR_DIR = Path(DATA_DIR)
elif not SAMPLE_DATA:
    HR_DIR = locate_data("DIV2K_train_HR", SEARCH_ROOTS, WORK / "data")
else:
    print("No training data found: using 8 sample photos from scikit-image "
          "(a demonstration that everything works, not the paper's experiment).")
    HR_DIR = save_sample_photos(WORK / "data" / "sample_train", TRAIN_PHOTOS)
if not HR_DIR.is_dir():
    raise FileNotFoundError(f"DATA_DIR = {DATA_DIR!r}: not a folder")
print(f"training photos: {HR_DIR} ({len(list_images(HR_DIR))} images)")

if EVAL_DIR:
    TEST_DIR = Path(EVAL_DIR)
else:
    TEST_DIR = (locate_data("DIV2K_valid_HR", SEARCH_ROOTS, WORK / "data")
                or save_sample_photos(WORK / "data" / "sample_test", ["coffee", "hubble_deep_field"]))
if not TEST_DIR.is_dir():
    raise FileNotFoundError(f"EVAL_DIR = {EVAL_DIR!r}: not a folder")
if TEST_DIR.resolve() == HR_DIR.resolve():
    print("note: the test photos are the training photos, so the scores below flatter every model")
print(f"test photos: {TEST_DIR}")

# %% [markdown]
# The test set goes in the layout the tools read: `HR/` and the bicubic ×4
# `LR_bicubic_X4/`, made here with the same MATLAB-style bicubic as training.
# Training validates on its first few images (PSNR curves in VisualDL) and
# `tools/evaluate.py` scores every method on all of them.

# %%
SCALE = 4
EVAL_SET = WORK / "eval_set"
n_test = len(make_eval_set(TEST_DIR, EVAL_SET, SCALE, EVAL_MAX_IMAGES))
print(f"{EVAL_SET}: {n_test} test images")

# %% [markdown]
# ## 2. TVAT split
#
# `tools/split_tvat.py` cuts the photos into `SUB_SIZE` sub-images, scores each
# one's LR with TVAT and writes one manifest per class, a summary table and the
# score histogram (red lines: the class bounds). A finished split is reused
# when the command is the same.
#
# The defaults work on every data path above, and the cell says which it chose:
#
# * **Sub-image size** (`SUB_SIZE, STEP = None, None`): the paper's 480 px with
#   a 240 px step when the photos' median short side is at least 960 px (DIV2K);
#   for smaller photos half the median short side (at least 192 px), step half
#   of that, so each photo still gives several sub-images.
# * **Class bounds** (`SPLIT_ARGS = None`): the paper's bounds 2 and 4. They put
#   most natural-photo sub-images in class 0; on a few small photos they can
#   leave a class (nearly) empty, and then the split is made again with
#   `--calibrate 3`: bounds chosen for three classes of equal size.

# %%
SPLIT_DIR = WORK / "split"
if SUB_SIZE:
    sub, step, why = SUB_SIZE, STEP or SUB_SIZE // 2, "from the parameters cell"
else:
    sub, step, why = split_sizes(HR_DIR, SCALE)
print(f"sub-images: {sub} px, step {step} ({why})")
split = tvat_split(HR_DIR, SPLIT_DIR, sub, step, SPLIT_ARGS)
print((SPLIT_DIR / "summary.md").read_text())
show_image(SPLIT_DIR / "histogram.png", width=7)

# %% [markdown]
# ## 3. Train
#
# One command trains all classes: `paddle.distributed.launch` starts one
# process per card (`--devices 0,1,2`; on a CPU build `--nproc_per_node N`),
# and the classes go to the processes by estimated cost: with three cards,
# one class each, at the same time (a fourth card helps the costliest class).
# On one card or a CPU the classes train one after the other
# (`--nproc_per_node 1`). With `BASELINE = True` the single `16-8` model
# trains afterwards, with the same config and schedule, on all sub-images
# (`all.tsv` of the split).
#
# Progress of the first process is shown below; every process writes
# `workerlog.<rank>` in the `logs/` folder. If the kernel is interrupted or
# the session ends, run the cell again: training continues from the last
# checkpoint (`FRESH = True` starts over).

# %%
import paddle

from paddle_mmsr.config import load_config
from paddle_mmsr.models.vgg import default_weights_paths

if NPROC is None:
    NPROC = min(3, paddle.device.cuda.device_count()) if DEVICE == "gpu" else 1
if DEVICE == "gpu":
    NPROC = min(NPROC, paddle.device.cuda.device_count())
    LAUNCH = ["--log_level", "WARNING", "--devices", ",".join(str(i) for i in range(NPROC))]
else:
    LAUNCH = ["--log_level", "WARNING", "--nproc_per_node", str(NPROC)]
CONFIG_PATH = CONFIG or ("configs/demo_cpu.yaml" if SAMPLE_DATA else
                         "configs/mmsr_x4.yaml" if DEVICE == "gpu" else "configs/mmsr_x4_cpu.yaml")
MMSR_RUN, BASE_RUN = WORK / "mmsr", WORK / "srgan_16-8"
yq = json.dumps  # a path as a YAML string: yq(str(path))
base = [f"device={DEVICE}", f"val.dir={yq(str(EVAL_SET))}", "val.max_images=3"]
plain = load_config(CONFIG_PATH, [f"data.split={yq(str(SPLIT_DIR))}"] + base + list(OVERRIDES))
given = {o.split("=", 1)[0].strip() for o in OVERRIDES}
common = (base + scaled_schedule(plain, "pretrain_iters", ITERS, ["pretrain"], given)
          + scaled_schedule(plain, "adversarial_iters", ADV_ITERS, ["generator", "discriminator"], given)
          + list(OVERRIDES))
MMSR_OPTS = [f"data.split={yq(str(SPLIT_DIR))}", f"output={yq(str(MMSR_RUN))}"] + common
# the baseline: the same config and schedule with one 16-8 model on every sub-image
# (for the paper's GPU schedule this is configs/srgan_16-8_x4.yaml)
BASE_OPTS = ["data.split=null", f"data.sources=[{yq(str(SPLIT_DIR / 'all.tsv'))}]", 'classes=[{spec: "16-8"}]',
             "name=srgan_16-8_baseline", f"output={yq(str(BASE_RUN))}"] + common


def train_args(opts):
    """tools/train.py's arguments for a list of overrides."""
    return [a for o in opts for a in ("-o", o)] + (["--fresh"] if FRESH else [])


cfg = load_config(CONFIG_PATH, MMSR_OPTS)  # checks the config and the overrides now
configs = [cfg] + ([load_config(CONFIG_PATH, BASE_OPTS)] if BASELINE else [])
t, g = cfg.train, cfg.model.generator
print(f"{CONFIG_PATH}: classes {[c.spec for c in cfg.classes]}, {t.pretrain_iters} + {t.adversarial_iters} "
      f"iterations per model, batch {cfg.data.batch_size} x {cfg.data.crop} px, "
      f"{g.form} generators ({g.channels} channels)")
print("overrides:", " ".join(MMSR_OPTS))
print("launch:", " ".join(LAUNCH))
needs_vgg = any(c.train.adversarial_iters > 0 and c.loss.content_weight > 0
                and c.loss.vgg_weights == "auto" for c in configs)
if needs_vgg and not any(p.is_file() for p in default_weights_paths()):
    print("The GAN phase needs VGG19 weights for its content loss: fetching them (once).")
    run_tool("tools/get_vgg19.py")

# %%
LOG_DIR = MMSR_RUN / "logs"
try:
    run_tool("-m paddle.distributed.launch", *LAUNCH, "--log_dir", LOG_DIR,
             "tools/train.py", "-c", CONFIG_PATH, *train_args(MMSR_OPTS))
except RuntimeError:
    for log in sorted(LOG_DIR.glob("workerlog.*")):
        print(f"----- {log} (last lines)\n{tail(log, 25)}")
    raise
summary = json.loads((MMSR_RUN / "summary.json").read_text())
print()
for c in summary["classes"]:
    val = c.get("last_val") or {}
    print(f"class {c['class']} ({c['spec']}): {c['status']}, {c.get('steps', '?')} steps, "
          f"{c.get('train_seconds', 0):.0f} s" + (f", val PSNR-Y {val['psnr']:.2f} dB" if "psnr" in val else ""))
assert summary["bundle"], "the bundle was not assembled (see above)"
MMSR_BUNDLE = Path(summary["bundle"])
print("MMSR bundle:", MMSR_BUNDLE)

# %%
# The single-model baseline: one 16-8 SRGAN on every sub-image.
BASE_BUNDLE = None
if BASELINE:
    run_tool("tools/train.py", "-c", CONFIG_PATH, *train_args(BASE_OPTS))
    BASE_BUNDLE = Path(json.loads((BASE_RUN / "summary.json").read_text())["bundle"])
    print("baseline bundle:", BASE_BUNDLE)

# %% [markdown]
# ## 4. Watch training in VisualDL
#
# Every class logs its losses, learning rate and validation PSNR/SSIM (plus
# sample images and weight histograms) to `<run>/vdl/class<i>`.
#
# * **AI Studio**: the *Visualization* (可视化) panel in the left sidebar runs
#   VisualDL for you: set its log folder to the `.../vdl` path printed below.
# * **Elsewhere**: start VisualDL in a terminal with the command printed below
#   and open `http://<host>:8040`. Keep `--language en` (or `zh`): without it
#   some clients get an HTTP 500 page.
#
# The cell below draws the same scalar curves right here, from the log files.

# %%
import shlex

vdl_dirs = [MMSR_RUN / "vdl"] + ([BASE_RUN / "vdl"] if BASE_BUNDLE else [])
for d in vdl_dirs:
    print(f"visualdl --logdir {shlex.quote(str(d.resolve()))} --host 0.0.0.0 --port 8040 --language en")
plot_vdl_scalars(MMSR_RUN / "vdl")

# %% [markdown]
# ## 5. Evaluate: bicubic, the single 16-8 SRGAN, MMSR
#
# `tools/evaluate.py` upscales every LR test image and reports PSNR and SSIM on
# the Y channel (border of 4 px removed), per image and on average.

# %%
runs = [("bicubic", "bicubic", ["--method", "bicubic"])]
if BASE_BUNDLE:
    runs.append(("SRGAN 16-8 (single)", "srgan16-8", ["--method", "mmsr", "--bundle", BASE_BUNDLE]))
runs.append(("MMSR", "mmsr", ["--method", "mmsr", "--bundle", MMSR_BUNDLE]))
results = {}
for name, key, args in runs:
    results[name] = WORK / f"eval_{key}.json"
    run_tool("tools/evaluate.py", EVAL_SET, *args, "--json", results[name])

# %%
print(f"{'method':22s} {'PSNR-Y (dB)':>12s} {'SSIM-Y':>8s}   ({n_test} test images)")
for name, path in results.items():
    mean = json.loads(Path(path).read_text())[0]["mean"]
    print(f"{name:22s} {mean['psnr']:12.2f} {mean['ssim']:8.4f}")

# %% [markdown]
# ## 6. Speed and a look at the pictures
#
# MMSR's point is speed at equal quality: smooth tiles skip the big network.
# Both bundles upscale the test images once more here, timed, and the first
# image is shown with its routing map.

# %%
import time

import numpy as np

from paddle_mmsr import MMSR
from paddle_mmsr.image.io import read_image
from paddle_mmsr.image.resize import imresize
from paddle_mmsr.image.panels import nearest_up
from paddle_mmsr.notebook import show_routing, show_side_by_side

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
show_routing(models["MMSR"], outputs["MMSR"][0], lr0, "MMSR routing of the first test image")

# %% [markdown]
# ## 7. Upscale with the new bundle
#
# The bundle folder is all reconstruction needs: use it with `tools/upscale.py`,
# with `MMSR.load(...)` in Python, or as `BUNDLE` in `01_quickstart.ipynb`.

# %%
UPSCALED = WORK / "upscaled"
run_tool("tools/upscale.py", "examples/chelsea_lr.png", "-o", UPSCALED, "--bundle", MMSR_BUNDLE,
         "--device", DEVICE, "--routing-map", UPSCALED / "chelsea_routing.png", "--overwrite", "-q")
show_image(UPSCALED / "chelsea_lr.png", "examples/chelsea_lr.png x4 with the new bundle", width=6)
print(f"In 01_quickstart.ipynb set BUNDLE = {str(MMSR_BUNDLE)!r}")
