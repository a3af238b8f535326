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
# # MMSR quick start: upscale a photo ×4
#
# MMSR (Wu, Yuan & Shen 2019) cuts the low-resolution (LR) image into tiles,
# scores each tile's texture with **TVAT**, and sends it to one of several SRGAN
# generators sized to that difficulty: smooth tiles get a small network, richly
# textured ones the big 16-block SRGAN. The tiles are stitched back without
# seams.
#
# This notebook loads a trained *bundle* (the class generators plus the TVAT
# settings), upscales an example photo and your own image, compares the result
# with bicubic interpolation, and shows which model handled each tile.

# %% [markdown]
# **Where this runs.** The notebook works inside this repository: it finds the
# repository from its own folder (or in `~/work/*/`), works from its root and
# installs it there. So:
#
# * **AI Studio, a forked project** holding the repository: nothing to clone, open
#   `notebooks/01_quickstart.ipynb` from the file browser and *Run All*.
# * **Anywhere else**: download the repository as a ZIP file from its page,
#   unzip it (on AI Studio: upload the ZIP into `work/`, then run
#   `!cd ~/work && unzip -q *.zip` in a cell) and open `notebooks/01_quickstart.ipynb` inside
#   the unzipped folder. With git, `git clone` the address shown on the
#   repository page instead.
#
# Run the cells from top to bottom (*Run All* works). Everything the notebook
# needs to know is in the **parameters** cell below; the other cells read it.

# %% tags=["parameters"]
# Parameters: the only cell you need to edit.
INSTALL = True                      # pip install the requirements and the package (Paddle only if missing)
BUNDLE = "pretrained/mmsr_x4_bicubic"  # trained bundle folder (holds manifest.yaml)
EXAMPLE = "examples/astronaut.png"  # ground-truth photo: shrunk x4, upscaled, compared
MY_IMAGE = None                     # your own low-resolution image (path); None: examples/chelsea_lr.png
MAX_SIDE = 400                      # larger inputs are centre-cropped to this many LR px (None: no limit)
TILE = 64                           # LR tile size for routing (tools/upscale.py uses 128)
DEVICE = "auto"                     # "auto", "gpu" or "cpu"
OUT_DIR = "output/quickstart"       # where the upscaled images are written

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
# ## Load the bundle
#
# A bundle is a folder: `manifest.yaml` (scale, TVAT settings, one entry per
# class) and one generator weight file per class. `MMSR.load` checks the
# weights against the manifest's checksums.

# %%
from paddle_mmsr import MMSR
from paddle_mmsr.image.degrade import Degradation
from paddle_mmsr.image.io import read_image, to_rgb8, write_image
from paddle_mmsr.image.resize import imresize
from paddle_mmsr.metrics.evaluate import score
from paddle_mmsr.image.panels import nearest_up
from paddle_mmsr.notebook import (crop_to_multiple, find_file, limit_size, run_tool, show_routing,
                                  show_side_by_side)

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
Path(OUT_DIR).mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## A photo with a known original
#
# The example photo is the ground truth (HR). We shrink it ×4 with the same
# MATLAB-style bicubic degradation the models were trained on, upscale that LR
# image with bicubic interpolation and with MMSR, and compare both with the
# original. The yellow box marks the zoomed crop.

# %%
hr = crop_to_multiple(limit_size(to_rgb8(read_image(EXAMPLE)), MAX_SIDE and MAX_SIDE * SCALE), SCALE)
lr = Degradation()(hr, SCALE)
bicubic = imresize(lr, SCALE)
rec = sr.reconstruct(lr)
sr_img = rec.image
print(f"{EXAMPLE}: HR {hr.shape[1]}x{hr.shape[0]} -> LR {lr.shape[1]}x{lr.shape[0]} -> x{SCALE} "
      f"in {rec.timings['total']:.2f} s ({len(rec.classes)} tiles)")
show_side_by_side({"LR (pixels)": nearest_up(lr, SCALE), "bicubic": bicubic,
                   "MMSR": sr_img, "original": hr}, crop_size=max(32, hr.shape[0] // 5))

# %% [markdown]
# PSNR and SSIM on the Y (luma) channel with a border of `scale` pixels removed,
# the usual super-resolution convention, scored by `paddle_mmsr.metrics.evaluate`
# (the evaluation training and `tools/evaluate.py` use). PSNR-trained models
# should beat bicubic on both; GAN-trained ones trade some PSNR for sharper
# texture.

# %%
print(f"{'method':10s} {'PSNR-Y (dB)':>12s} {'SSIM-Y':>8s}")
for name, img in [("bicubic", bicubic), ("MMSR", sr_img)]:
    row = score(img, hr, crop_border=SCALE, name=name)
    print(f"{name:10s} {row['psnr']:12.2f} {row['ssim']:8.4f}")
write_image(Path(OUT_DIR) / (Path(EXAMPLE).stem + "_mmsr.png"), sr_img)

# %% [markdown]
# ## Which model handled which tile
#
# Each LR tile is tinted by the class it was routed to: its TVAT score decides.
# The shipped bundle scores a tile by its busiest cell, so a tile with any hair,
# fabric or edges in it goes to the largest model; only tiles that are smooth
# throughout go to the smaller ones. In this crop of the astronaut every tile,
# dark background included, holds part of the face, hair, suit or flag, so all
# of them go to the largest model; the line above the map gives the shares. The
# cat photo of the next section has smooth tiles, and those go to the smaller
# models.

# %%
show_routing(sr, rec, lr, f"routing of {Path(EXAMPLE).name} ({TILE} px LR tiles)")

# %% [markdown]
# ## Your own image
#
# Set `MY_IMAGE` in the parameters cell to a file path and run the notebook again
# (or from this cell on). To bring a file in, use the *upload* button of the
# file browser on the left (AI Studio and JupyterLab both have one); relative
# paths are looked up from the repository root and from the notebook's folder,
# absolute paths work too. The image is taken **as it is** to be the
# low-resolution input and upscaled ×4; there is no original to compare with,
# so only the pictures are shown. Large photos are centre-cropped to `MAX_SIDE`
# here; `tools/upscale.py` (last cell) handles any size.

# %%
my_path = find_file(MY_IMAGE, [START_DIR]) if MY_IMAGE else Path("examples/chelsea_lr.png")
mine = limit_size(read_image(my_path), MAX_SIDE)
my_rec = sr.reconstruct(mine)
mine_rgb, my_sr = to_rgb8(mine), to_rgb8(my_rec.image)
print(f"{my_path}: {mine.shape[1]}x{mine.shape[0]} {mine.dtype} -> "
      f"{my_sr.shape[1]}x{my_sr.shape[0]} in {my_rec.timings['total']:.2f} s")
show_side_by_side({"input (pixels)": nearest_up(mine_rgb, SCALE),
                   "bicubic": imresize(mine_rgb, SCALE), "MMSR": my_sr},
                  crop_size=max(32, min(my_sr.shape[:2]) // 4))
show_routing(sr, my_rec, mine, f"routing of {my_path.name}")
my_out = Path(OUT_DIR) / (my_path.stem + "_x4.png")
write_image(my_out, my_rec.image)
print("saved", my_out)

# %% [markdown]
# ## The same from the command line
#
# `tools/upscale.py` (the console command `mmsr-upscale`) takes files, folders
# or globs, upscales whole images of any size tile by tile, and can draw the
# routing map. `--device gpu` runs the generators on the GPU.

# %%
cli_out = Path(OUT_DIR) / "cli"
run_tool("tools/upscale.py", my_path, "-o", cli_out, "--bundle", BUNDLE, "--device", DEVICE,
         "--routing-map", cli_out / "routing.png", "--overwrite", "-q")
print(sorted(p.name for p in cli_out.iterdir()))
