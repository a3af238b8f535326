"""One class's training run: phase 1 (pixel loss), phase 2 (adversarial),
periodic logging, validation and checkpoints, then the final G export."""
from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import paddle

from paddle_mmsr.sr.bundle import save_weights
from paddle_mmsr.data.dataset import SRDataset
from paddle_mmsr.models.losses import content_loss, d_loss, g_adv_loss
from paddle_mmsr.train.batches import batch_stream
from paddle_mmsr.train.builders import build_networks, build_optimizers
from paddle_mmsr.train.checkpoint import (BEST, LATEST, load_checkpoint, load_portable_optimizer_state,
                         portable_optimizer_state, rng_state, save_checkpoint, set_rng_state)
from paddle_mmsr.image.panels import side_by_side
from paddle_mmsr.train.monitor import Monitor
from paddle_mmsr.train.steps import AdversarialWeights, adversarial_step, ema_update, pixel_loss_fn, pretrain_step
from paddle_mmsr.train.validate import load_pairs, upscale, val_pairs, validate_generator


class Interrupted(Exception):
    """SIGTERM/SIGINT: the run saved a checkpoint and stopped."""


class NonFiniteLoss(RuntimeError):
    pass


@dataclass
class ClassJob:
    """A class run, resolved from the config."""
    id: int
    spec: str
    generator: dict
    sources: list
    degradation: dict
    dir: Path
    vdl_dir: Path

    @property
    def name(self) -> str:
        return f"class{self.id}"


@dataclass
class Progress:
    step: int = 0                 # optimisation steps done (phase 1 then phase 2)
    batches: int = 0              # batches drawn from the stream
    best_psnr: float = -1.0       # best val PSNR of the current phase
    best_step: int = -1
    seconds: dict = field(default_factory=lambda: {"pretrain": 0.0, "adversarial": 0.0})
    iters: dict = field(default_factory=lambda: {"pretrain": 0, "adversarial": 0})
    last_val: dict = field(default_factory=dict)


def phase_of(step: int, pretrain_iters: int) -> str:
    return "pretrain" if step < pretrain_iters else "adversarial"


# ------------------------------------------------------------ state <-> file
def _checkpoint_state(nets, opts, progress: Progress, job: ClassJob) -> dict:
    state = {"class_id": job.id, "spec": job.spec, "generator": dict(job.generator),
             "progress": asdict(progress), "rng": rng_state()}
    for k, net in nets.items():
        if net is not None:
            state[k] = net.state_dict()
    for k, (opt, sched) in opts.items():
        state[f"opt_{k}"] = portable_optimizer_state(opt, nets)
        state[f"sched_{k}"] = sched.state_dict()
    return state


def _restore(state: dict, nets, opts, job: ClassJob) -> Progress:
    if state.get("spec") != job.spec or state.get("generator") != job.generator:
        raise RuntimeError(
            f"{job.name}: the checkpoint was made for spec {state.get('spec')} "
            f"{state.get('generator')}, the config asks for {job.spec} {job.generator}; "
            "use another output folder or --fresh")
    for k, net in nets.items():
        if net is not None and k in state:
            net.set_state_dict(state[k])
    if nets["ema"] is not None and "ema" not in state:
        # EMA switched on for a run saved without it: start from the restored G
        nets["ema"].set_state_dict(nets["g"].state_dict())
    for k, (opt, sched) in opts.items():
        if f"opt_{k}" in state:
            load_portable_optimizer_state(opt, state[f"opt_{k}"], nets)
            sched.set_state_dict(state[f"sched_{k}"])
    set_rng_state(state.get("rng"))
    return Progress(**state["progress"])


def _all_finite(layer) -> bool:
    return all(bool(paddle.isfinite(p).all()) for p in layer.parameters())


# ------------------------------------------------------------ helpers
class LossMeter:
    """Sums detached loss tensors; converted to floats only when read."""

    def __init__(self):
        self.sums, self.n = {}, 0

    def add(self, losses: dict) -> None:
        for k, v in losses.items():
            self.sums[k] = v if k not in self.sums else self.sums[k] + v
        self.n += 1

    def read(self) -> dict:
        out = {k: float(v) / max(self.n, 1) for k, v in self.sums.items()}
        self.sums, self.n = {}, 0
        return out


def _sample_inputs(val_images, dataset, scale: int, size: int = 48):
    """A fixed LR/HR pair for the image log (val image centre, else a training crop)."""
    if val_images:
        lr, hr, _ = val_images[0]
        h, w = lr.shape[:2]
        s = min(size, h, w)
        y, x = (h - s) // 2, (w - s) // 2
        return lr[y:y + s, x:x + s], hr[y * scale:(y + s) * scale, x * scale:(x + s) * scale]
    lr, hr = dataset[0]
    to8 = lambda a: np.clip(np.round(a.transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)  # noqa
    return to8(lr), to8(hr)


def _sample_strip(g, lr, hr, scale: int) -> np.ndarray:
    from paddle_mmsr.image.resize import imresize
    was = g.training
    g.eval()
    sr = upscale(g, lr)
    if was:
        g.train()
    bic = imresize(lr, output_shape=(lr.shape[0] * scale, lr.shape[1] * scale))
    return side_by_side(bic, sr, hr)


# ------------------------------------------------------------ the run
def train_class(cfg, job: ClassJob, vgg=None, resume: str = "auto", stop=lambda: False,
                console: bool = True) -> dict:
    """Train one class to the end (or until ``stop()``); returns its summary dict.

    resume: "auto" (continue from latest.pdckpt if present), "require"
    (fail without one) or "fresh" (ignore it).
    """
    t_start = time.time()
    tc, P, A = cfg.train, cfg.train.pretrain_iters, cfg.train.adversarial_iters
    total = P + A
    job.dir.mkdir(parents=True, exist_ok=True)
    paddle.seed(cfg.seed * 1000 + job.id)
    np.random.seed(cfg.seed * 1000 + job.id)

    nets = build_networks(job.spec, cfg.scale, job.generator, A > 0,
                          cfg.model.discriminator_channels, tc.ema_decay > 0)
    opts = build_optimizers(cfg, nets)
    progress = Progress()
    latest = job.dir / LATEST
    if resume != "fresh" and latest.exists():
        progress = _restore(load_checkpoint(latest), nets, opts, job)
    elif resume == "require":
        raise FileNotFoundError(f"{latest}: no checkpoint to resume from")
    if progress.step > total:
        raise RuntimeError(
            f"{latest} is at step {progress.step}, past this config's {P} + {A} iterations; "
            "raise train.pretrain_iters / adversarial_iters, or use another output folder")

    mon = Monitor(job.name, job.dir / "log.txt", job.vdl_dir, total, progress.step,
                  progress=cfg.log.progress and console, console=console)
    try:
        if progress.step:
            mon.info(f"resumed from {latest} at step {progress.step}/{total} "
                     f"(batch {progress.batches})")
        mon.info(f"spec {job.spec}, generator {job.generator}, phase 1 {P} it, phase 2 {A} it, "
                 f"batch {cfg.data.batch_size}, crop {cfg.data.crop}, device {paddle.get_device()}")
        dataset = SRDataset(job.sources, scale=cfg.scale, crop=cfg.data.crop,
                            degradation=job.degradation, augment=cfg.data.augment,
                            cache=cfg.data.cache, seed=cfg.seed * 1000 + job.id)
        mon.info(f"data: {len(dataset.paths)} images from {[str(s) for s in job.sources]}")
        val_images = []
        if cfg.val.dir:
            val_images = load_pairs(val_pairs(cfg.val.dir, cfg.scale, cfg.val.max_images),
                                    cfg.scale)
            mon.info(f"validation: {len(val_images)} images from {cfg.val.dir}")
        if A > 0 and cfg.loss.content_weight > 0 and progress.step < total and vgg is None:
            raise RuntimeError("phase 2 needs the VGG19 loss network (vgg=None)")
        _run_steps(cfg, job, nets, opts, progress, dataset, val_images, vgg, mon, stop)
        g_out = nets["ema"] or nets["g"]
        save_weights(g_out, job.dir / "g_final.pdparams")
        summary = class_summary(cfg, job, progress, time.time() - t_start)
        (job.dir / "summary.json").write_text(json.dumps(summary, indent=1))
        mon.info(f"done: {job.dir / 'g_final.pdparams'}")
        return summary
    except Exception as e:
        if not isinstance(e, Interrupted):
            mon.info(f"FAILED: {e}\n{traceback.format_exc()}")
        raise
    finally:
        mon.close()


def _run_steps(cfg, job, nets, opts, progress: Progress, dataset, val_images, vgg, mon, stop):
    tc, P = cfg.train, cfg.train.pretrain_iters
    total = P + tc.adversarial_iters
    g, d, g_ema = nets["g"], nets["d"], nets["ema"]
    g.train()
    if d is not None:
        d.train()
    pixel_fn = pixel_loss_fn(cfg.loss.pixel)
    weights = AdversarialWeights(cfg.loss.content_weight, cfg.loss.adv_weight,
                                 cfg.loss.pixel_weight)
    amp = tc.amp and "gpu" in paddle.get_device()
    if tc.amp and not amp:
        mon.info("train.amp ignored: mixed precision is used on GPU only")
    scalers = {k: paddle.amp.GradScaler() if amp else None for k in ("pretrain", "g", "d")}
    sample_lr, sample_hr = _sample_inputs(val_images, dataset, cfg.scale)
    crop_border = cfg.val.crop_border if cfg.val.crop_border is not None else cfg.scale
    stream = batch_stream(dataset, cfg.data.batch_size, seed=cfg.seed * 1000 + job.id,
                          start=progress.batches, workers=cfg.data.workers)
    meter = LossMeter()
    last_save, saved_step = time.time(), progress.step

    def save(reason: str, best: bool = False):
        nonlocal last_save, saved_step
        if not _all_finite(g) or (d is not None and not _all_finite(d)):
            raise NonFiniteLoss(f"{job.name}: non-finite weights at step {progress.step}; "
                                f"kept the last good checkpoint (step {saved_step})")
        state = _checkpoint_state(nets, opts, progress, job)
        save_checkpoint(job.dir / LATEST, state)
        if best:
            save_checkpoint(job.dir / BEST, state)
        last_save, saved_step = time.time(), progress.step
        mon.info(f"checkpoint at step {progress.step} ({reason})")

    def validate_now():
        res = validate_generator(g_ema or g, val_images, cfg.scale, crop_border)
        progress.last_val = {"step": progress.step, "psnr": res["psnr"], "ssim": res["ssim"]}
        mon.scalars(progress.step, {"psnr": res["psnr"], "ssim": res["ssim"]}, "val/")
        if res["sample"] is not None:
            mon.images(progress.step, "val/bicubic_sr_hr", res["sample"])
        improved = res["psnr"] > progress.best_psnr
        if improved:
            progress.best_psnr, progress.best_step = res["psnr"], progress.step
        mon.info(f"val step {progress.step}: PSNR-Y {res['psnr']:.3f} dB, SSIM-Y "
                 f"{res['ssim']:.4f}" + (" (best)" if improved else ""))
        return improved

    def report(phase: str, opt):
        losses = meter.read()
        bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
        if bad:
            raise NonFiniteLoss(
                f"{job.name}: non-finite loss {bad} in {phase} around step {progress.step}; "
                f"stopped, the last good checkpoint is {job.dir / LATEST} (step {saved_step})")
        lr_now = opt.get_lr()
        mon.scalars(progress.step, losses, "loss/")
        mon.scalars(progress.step, {"lr": lr_now}, "train/")
        rate = mon.advance(progress.step, {**{k: f"{v:.4g}" for k, v in losses.items()},
                                           "lr": f"{lr_now:.2g}"})
        mon.scalars(progress.step, {"it_per_s": rate}, "train/")
        mon.log.info(f"step {progress.step} {phase} "
                     + " ".join(f"{k}={v:.5g}" for k, v in losses.items())
                     + f" lr={lr_now:.3g} {rate:.3g} it/s")

    t_mark = time.perf_counter()
    while progress.step < total:
        if stop():
            save("stop requested")
            raise Interrupted(f"{job.name}: stopped at step {progress.step}")
        phase = phase_of(progress.step, P)
        key = "pretrain" if phase == "pretrain" else "g"
        opt, sched = opts[key]
        lr, hr = next(stream)
        progress.batches += 1
        if phase == "pretrain":
            losses = pretrain_step(g, opt, lr, hr, pixel_fn, scalers["pretrain"])
            sched.step()
        else:
            extra = [next(stream) for _ in range(tc.d_updates - 1)]
            progress.batches += len(extra)
            losses = adversarial_step(
                g, d, opt, opts["d"][0], lr, hr, lambda sr, t: content_loss(vgg, sr, t),
                g_adv_loss, d_loss, weights, pixel_fn, extra, (scalers["g"], scalers["d"]))
            sched.step()
            opts["d"][1].step()
        if g_ema is not None:
            ema_update(g_ema, g, tc.ema_decay)
        progress.step += 1
        meter.add(losses)
        s = progress.step
        end_of_phase = s in (P, total)
        if s % cfg.log.every == 0 or end_of_phase:
            report(phase, opt)
        now = time.perf_counter()
        progress.seconds[phase] += now - t_mark
        progress.iters[phase] += 1
        if s % cfg.log.images_every == 0 or end_of_phase:
            mon.images(s, "train/bicubic_sr_hr", _sample_strip(g_ema or g, sample_lr,
                                                                sample_hr, cfg.scale))
        if s % cfg.log.histograms_every == 0 or s == total:
            mon.histograms(s, g, "weights/g/")
            if d is not None and phase == "adversarial":
                mon.histograms(s, d, "weights/d/")
        improved = False
        if val_images and (s % cfg.val.every == 0 or end_of_phase):
            improved = validate_now()
        if s == P and P > 0 and total > P:  # phase 2 keeps its own best
            progress.best_psnr, progress.best_step = -1.0, -1
        minutes = cfg.checkpoint.minutes
        if (s % cfg.checkpoint.every == 0 or s == total or improved or end_of_phase
                or (minutes > 0 and time.time() - last_save > minutes * 60)):
            if meter.n:
                report(phase, opt)
            save("best" if improved else "interval", best=improved)
        if s % cfg.log.every == 0:
            mon.flush()
        t_mark = time.perf_counter()


def class_summary(cfg, job: ClassJob, progress: Progress, wall: float) -> dict:
    phases = {}
    for ph in ("pretrain", "adversarial"):
        n, sec = progress.iters[ph], progress.seconds[ph]
        phases[ph] = {"iterations": n, "seconds": round(sec, 3),
                      "it_per_s": round(n / sec, 4) if sec else None,
                      "samples_per_s": round(n * cfg.data.batch_size / sec, 3) if sec else None}
    return {"class": job.id, "spec": job.spec, "generator": job.generator,
            "steps": progress.step, "batch_size": cfg.data.batch_size, "crop": cfg.data.crop,
            "device": paddle.get_device(), "phases": phases,
            "train_seconds": round(sum(progress.seconds.values()), 3),
            "wall_seconds_this_session": round(wall, 3),
            "best_val": {"psnr": progress.best_psnr, "step": progress.best_step}
            if progress.best_step >= 0 else None,
            "last_val": progress.last_val or None,
            "weights": str(job.dir / "g_final.pdparams")}
