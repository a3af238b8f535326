"""Checks before any class trains (and for ``tools/train.py --check``): every path
the run reads exists, and every class has training images."""
from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """A path the run needs is missing, or a class has no data; the message lists them."""


def check_inputs(cfg, jobs, split=None) -> dict:
    """{class id: number of training images}; InputError naming every problem."""
    from paddle_mmsr.data.dataset import collect_images
    from paddle_mmsr.data.split import class_range
    problems, counts = [], {}
    for job in jobs:
        try:
            counts[job.id] = len(collect_images(job.sources))
        except FileNotFoundError as e:
            problems.append(f"class {job.id}: {e}")
        except ValueError:
            where = ""
            if split is not None:
                where = (f" (TVAT {class_range(job.id, split['tvat']['bounds'])} of the split "
                         f"{cfg.data.split})")
            n = len(cfg.classes)
            problems.append(
                f"class {job.id}{where} has no training images in "
                f"{[str(s) for s in job.sources]}; re-split with other --bounds or with "
                f"--calibrate {n} ({n} equal-sized classes), or give classes.{job.id}.sources")
    if cfg.val.dir:
        from paddle_mmsr.metrics.evaluate import find_pairs
        try:
            find_pairs(cfg.val.dir, cfg.scale)
        except FileNotFoundError as e:
            problems.append(f"val.dir: {e}")
    weights = cfg.loss.vgg_weights
    if (cfg.train.adversarial_iters > 0 and cfg.loss.content_weight > 0
            and weights not in ("auto", "random") and not Path(weights).expanduser().is_file()):
        problems.append(f"loss.vgg_weights: VGG19 weights file {weights} not found (make one "
                        "with python tools/get_vgg19.py)")
    if problems:
        raise InputError("not starting, nothing trained:\n  " + "\n  ".join(problems))
    return counts
