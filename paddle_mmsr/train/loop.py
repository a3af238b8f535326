"""One class's training run: phase 1 (pixel loss), phase 2 (adversarial),
periodic logging, validation and checkpoints, then the final G export.

``train_class`` sets the run up (networks, optimisers, resume, data) and hands
it to a ``ClassTrainer``, which holds the state of the run in progress and
does one thing per method: ``step``, ``log``, ``log_pictures``, ``validate``,
``checkpoint``.
"""
from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import paddle

from paddle_mmsr.models.weights import check_state_dict, load_class_state, save_weights
from paddle_mmsr.data.dataset import SRDataset
from paddle_mmsr.models.losses import content_loss, d_loss, g_adv_loss
from paddle_mmsr.train.batches import batch_stream, warm_then
from paddle_mmsr.train.builders import build_networks, build_optimizers
from paddle_mmsr.train.curves import snapshot_path, snapshot_steps
from paddle_mmsr.train.checkpoint import (BEST, G_FINAL, LATEST, LEGACY_LATEST, load_checkpoint,
                         remove_orphan_temps, load_portable_optimizer_state,
                         load_scaler_state, portable_optimizer_state, rng_state, save_checkpoint,
                         scaler_state, set_rng_state)
from paddle_mmsr.train.monitor import Monitor
from paddle_mmsr.train.steps import (AdversarialWeights, adversarial_step, amp_dtype_for, ema_update,
                                    make_scaler, pixel_loss_fn, pretrain_step)
from paddle_mmsr.train.validate import load_pairs, picture, upscale, val_pairs, validate_generator


class Interrupted(Exception):
    """SIGTERM/SIGINT: the run saved a checkpoint and stopped."""


class NonFiniteLoss(RuntimeError):
    pass


class SplitChanged(RuntimeError):
    """The class's training data (TVAT bounds, manifest) differ from its checkpoint's."""


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
    data_id: dict = field(default_factory=dict)  # what a resume must find unchanged
    warm_sources: list = field(default_factory=list)  # the first warm_iters batches' data
    warm_iters: int = 0

    @property
    def name(self) -> str:
        return f"class{self.id}"


def data_identity(sources, split: dict | None) -> dict:
    """The split's TVAT settings and the sha256 of each manifest file in ``sources``:
    a checkpoint keeps them, and resuming with other values is refused."""
    from paddle_mmsr.core.files import sha256_file
    manifests = {str(s): sha256_file(s) for s in map(Path, sources) if s.is_file()}
    return {"tvat": dict(split["tvat"]) if split else None, "manifests": manifests}


def _data_changes(saved: dict, now: dict) -> list[str]:
    out = []
    if saved.get("tvat") != now.get("tvat"):
        old, new = saved.get("tvat") or {}, now.get("tvat") or {}
        out += [f"tvat.{k} {old.get(k)} -> {new.get(k)}" for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)] or ["TVAT settings"]
    old, new = saved.get("manifests") or {}, now.get("manifests") or {}
    if sorted(old.values()) != sorted(new.values()):
        names = sorted({Path(k).name for k in set(old) ^ set(new)}
                       | {Path(k).name for k in set(old) & set(new) if old[k] != new[k]})
        out.append(f"manifest {', '.join(names) or '(renamed)'} changed")
    return out


def check_split_unchanged(job: ClassJob, state: dict | None = None) -> None:
    """Raise SplitChanged if ``job``'s checkpoint was made on other training data."""
    latest = job.dir / LATEST
    if state is None:
        if not (latest.exists() or latest.with_name(LEGACY_LATEST).exists()):
            return
        state = load_checkpoint(latest)
    saved = state.get("data")
    if saved is None:  # a checkpoint from before this check: nothing to compare
        return
    changes = _data_changes(saved, job.data_id)
    if changes:
        raise SplitChanged(
            f"{job.name}: the training split changed since its checkpoint {latest} "
            f"(step {state['progress']['step']}): {'; '.join(changes)}. Resuming would continue "
            "a model trained on other data. Start again with --fresh, or train into a new "
            "output folder (-o output=...).")


@dataclass
class Progress:
    """Everything about a run's position that a checkpoint keeps."""
    step: int = 0                 # optimisation steps done (phase 1 then phase 2)
    batches: int = 0              # batches drawn from the stream
    best_psnr: float = -1.0       # best val PSNR of the current phase
    best_step: int = -1
    seconds: dict = field(default_factory=lambda: {"pretrain": 0.0, "adversarial": 0.0})
    iters: dict = field(default_factory=lambda: {"pretrain": 0, "adversarial": 0})
    last_val: dict = field(default_factory=dict)
    curve: list = field(default_factory=list)  # [{train_seconds, iteration, psnr_y}] per validation
    scalers: dict = field(default_factory=dict)  # AMP loss-scaler states (amp: true on GPU)

    @property
    def train_seconds(self) -> float:
        """Cumulative time in training steps (not validation, pictures or checkpoints)."""
        return sum(self.seconds.values())


def phase_of(step: int, pretrain_iters: int) -> str:
    return "pretrain" if step < pretrain_iters else "adversarial"


# ------------------------------------------------------------ state <-> file
def _checkpoint_state(nets, opts, progress: Progress, job: ClassJob) -> dict:
    state = {"class_id": job.id, "spec": job.spec, "generator": dict(job.generator),
             "data": job.data_id, "progress": asdict(progress), "rng": rng_state()}
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
    check_split_unchanged(job, state)
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


def _train_crop(dataset, scale: int, size: int = 192):
    """A fixed LR/HR pair from the class's own training data: the centre of its
    first image, degraded as in training (fixed seed; the run's RNGs untouched)."""
    from paddle_mmsr.image.io import read_image, to_rgb8
    img = to_rgb8(read_image(dataset.paths[0]))
    h, w = img.shape[:2]
    s = min(size, h, w) // scale * scale
    y, x = (h - s) // 2, (w - s) // 2
    hr = np.ascontiguousarray(img[y:y + s, x:x + s])
    return dataset.degradation(hr, scale, np.random.default_rng(0)), dataset.degradation.target(hr)


def _train_picture(g, lr, hr, scale: int) -> np.ndarray:
    was = g.training
    g.eval()
    sr = upscale(g, lr)
    if was:
        g.train()
    return picture(lr, sr, hr, scale, size=hr.shape[0])


def init_from_bundle(nets: dict, root, job: ClassJob) -> None:
    """Start G (and its EMA) from class ``job.id`` of the bundle at ``root``."""
    state = load_class_state(root, job.id)  # verified before reading
    for key in ("g", "ema"):
        if nets[key] is not None:
            check_state_dict(nets[key], state, f"train.init_bundle {root} class {job.id} "
                                               f"for {job.name} ({job.spec})")
            nets[key].set_state_dict(state)


# ------------------------------------------------------------ the run
def train_class(cfg, job: ClassJob, vgg=None, resume: str = "auto", stop=lambda: False,
                console: bool = True, replica=None) -> dict:
    """Train one class to the end (or until ``stop()``); returns its summary dict.

    resume: "auto" (continue from the latest checkpoint if present), "require"
    (fail without one) or "fresh" (ignore it). ``replica``: this rank's place
    among the ranks training the class together (``train.replicas``).
    """
    t_start = time.time()
    if replica is not None and not replica.leader:  # own folder; starts from the leader's state
        sub = job.dir / f"replica{replica.index}"
        job = ClassJob(**{**asdict(job), "dir": sub, "vdl_dir": sub / "vdl"})
        resume = "fresh"
    tc, P, A = cfg.train, cfg.train.pretrain_iters, cfg.train.adversarial_iters
    total = P + A
    job.dir.mkdir(parents=True, exist_ok=True)
    remove_orphan_temps(job.dir)
    paddle.seed(cfg.seed * 1000 + job.id)
    np.random.seed(cfg.seed * 1000 + job.id)

    nets = build_networks(job.spec, cfg.scale, job.generator, A > 0,
                          cfg.model.discriminator_channels, tc.ema_decay > 0)
    opts = build_optimizers(cfg, nets)
    progress = Progress()
    latest = job.dir / LATEST
    if resume != "fresh" and (latest.exists() or latest.with_name(LEGACY_LATEST).exists()):
        progress = _restore(load_checkpoint(latest), nets, opts, job)
    elif resume == "require":
        raise FileNotFoundError(f"{latest}: no checkpoint to resume from")
    elif tc.init_bundle:
        init_from_bundle(nets, tc.init_bundle, job)
    if replica is not None:  # every replica continues from the leader's weights and optimiser
        state = replica.share_start(_checkpoint_state(nets, opts, progress, job)
                                    if replica.leader else None)
        if not replica.leader:
            progress = _restore({**state, "data": job.data_id}, nets, opts, job)
    if progress.step > total:
        raise RuntimeError(
            f"{latest} is at step {progress.step}, past this config's {P} + {A} iterations; "
            "raise train.pretrain_iters / adversarial_iters, or use another output folder")

    for it, path in snapshot_steps(job.dir).items():  # from a run this one replaces
        if it > progress.step:
            path.unlink()
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
        warm = None
        if job.warm_iters:
            warm = SRDataset(job.warm_sources, scale=cfg.scale, crop=cfg.data.crop,
                             degradation=job.degradation, augment=cfg.data.augment,
                             cache=cfg.data.cache, seed=cfg.seed * 1000 + job.id)
            mon.info(f"warm start: the first {job.warm_iters} steps on {len(warm.paths)} "
                     f"images from {job.warm_sources}")
        val_images = []
        if cfg.val.dir:
            val_images = load_pairs(val_pairs(cfg.val.dir, cfg.scale, cfg.val.max_images),
                                    cfg.scale)
            mon.info(f"validation: {len(val_images)} images from {cfg.val.dir}")
        if A > 0 and cfg.loss.content_weight > 0 and progress.step < total and vgg is None:
            raise RuntimeError("phase 2 needs the VGG19 loss network (vgg=None)")
        ClassTrainer(cfg, job, nets, opts, progress, dataset, val_images, vgg, mon,
                     replica, warm).run(stop)
        g_out = nets["ema"] or nets["g"]
        save_weights(g_out, job.dir / G_FINAL)
        summary = class_summary(cfg, job, progress, time.time() - t_start)
        (job.dir / "summary.json").write_text(json.dumps(summary, indent=1))
        mon.info(f"done: {job.dir / G_FINAL}")
        return summary
    except Exception as e:
        if not isinstance(e, Interrupted):
            mon.info(f"FAILED: {e}\n{traceback.format_exc()}")
        raise
    finally:
        mon.close()


class ClassTrainer:
    """A class run in progress. ``progress`` is the state a checkpoint keeps; the
    other attributes are rebuilt from the config on resume."""

    def __init__(self, cfg, job: ClassJob, nets: dict, opts: dict, progress: Progress,
                 dataset, val_images: list, vgg, mon: Monitor, replica=None, warm=None):
        tc = cfg.train
        self.cfg, self.job, self.nets, self.opts = cfg, job, nets, opts
        self.progress, self.val_images, self.vgg, self.mon = progress, val_images, vgg, mon
        self.g, self.d, self.g_ema = nets["g"], nets["d"], nets["ema"]
        self.pretrain_iters = tc.pretrain_iters
        self.total = tc.pretrain_iters + tc.adversarial_iters
        self.pixel_fn = pixel_loss_fn(cfg.loss.pixel)
        self.weights = AdversarialWeights(cfg.loss.content_weight, cfg.loss.adv_weight,
                                          cfg.loss.pixel_weight)
        amp = tc.amp and "gpu" in paddle.get_device()
        if tc.amp and not amp:
            mon.info("train.amp ignored: mixed precision is used on GPU only")
        dtype = amp_dtype_for(tc.amp_dtype, mon.info) if amp else None
        self.scalers = {k: make_scaler(dtype) if amp else None for k in ("pretrain", "g", "d")}
        load_scaler_state(self.scalers, progress.scalers)
        self.sync = replica.average_gradients if replica else None
        self.train_crop = _train_crop(dataset, cfg.scale)
        self.crop_border = cfg.val.crop_border if cfg.val.crop_border is not None else cfg.scale
        stream = lambda data, start: batch_stream(  # noqa: E731
            data, cfg.data.batch_size, seed=cfg.seed * 1000 + job.id, start=start,
            workers=cfg.data.workers, shard=(replica.index, replica.size) if replica else (0, 1),
            log=mon.info)
        self.stream = warm_then(stream, warm, job.warm_iters, dataset, progress.batches)
        self.meter = LossMeter()
        self.last_save = time.time()      # wall clock of the last checkpoint
        self.saved_step = progress.step   # step of the last good checkpoint

    @property
    def generator(self):
        """The generator that is validated and exported (the EMA copy when enabled)."""
        return self.g_ema or self.g

    # ------------------------------------------------------------ the loop
    def run(self, stop=lambda: False) -> None:
        """Steps until the end of phase 2; ``stop()`` -> checkpoint and Interrupted."""
        self.g.train()
        if self.d is not None:
            self.d.train()
        while self.progress.step < self.total:
            if stop():
                self.checkpoint("stop requested")
                raise Interrupted(f"{self.job.name}: stopped at step {self.progress.step}")
            self.after_step(*self.timed_step())

    def timed_step(self) -> tuple[str, bool]:
        """One step plus its log line, its time added to the phase's train seconds."""
        t0 = time.perf_counter()
        phase = self.step()
        s = self.progress.step
        end_of_phase = s in (self.pretrain_iters, self.total)
        if s % self.cfg.log.every == 0 or end_of_phase:
            self.log(phase)  # reads the losses: waits for the device, so it is counted
        self.progress.seconds[phase] += time.perf_counter() - t0
        self.progress.iters[phase] += 1
        return phase, end_of_phase

    def after_step(self, phase: str, end_of_phase: bool) -> None:
        """Pictures, validation, checkpoint and flush when they are due (not timed)."""
        cfg, s = self.cfg, self.progress.step
        self.log_pictures(phase, end_of_phase)
        improved = False
        if self.val_images and (s % cfg.val.every == 0 or end_of_phase):
            improved = self.validate()
        if s == self.pretrain_iters and 0 < s < self.total:  # phase 2 keeps its own best
            self.progress.best_psnr, self.progress.best_step = -1.0, -1
        minutes = cfg.checkpoint.minutes
        if (s % cfg.checkpoint.every == 0 or s == self.total or improved or end_of_phase
                or (minutes > 0 and time.time() - self.last_save > minutes * 60)):
            if self.meter.n:
                self.log(phase)
            self.checkpoint("best" if improved else "interval", best=improved)
        if s % cfg.log.every == 0:
            self.mon.flush()

    # ------------------------------------------------------------ the parts
    def step(self) -> str:
        """One optimisation step (phase 2: one G and ``d_updates`` D updates)."""
        p, tc = self.progress, self.cfg.train
        phase = phase_of(p.step, self.pretrain_iters)
        lr, hr = next(self.stream)
        p.batches += 1
        if phase == "pretrain":
            opt, sched = self.opts["pretrain"]
            losses = pretrain_step(self.g, opt, lr, hr, self.pixel_fn, self.scalers["pretrain"],
                                   self.sync)
            sched.step()
        else:
            opt, sched = self.opts["g"]
            extra = [next(self.stream) for _ in range(tc.d_updates - 1)]
            p.batches += len(extra)
            losses = adversarial_step(
                self.g, self.d, opt, self.opts["d"][0], lr, hr,
                lambda sr, t: content_loss(self.vgg, sr, t), g_adv_loss, d_loss, self.weights,
                self.pixel_fn, extra, (self.scalers["g"], self.scalers["d"]), self.sync)
            sched.step()
            self.opts["d"][1].step()
        if self.g_ema is not None:
            ema_update(self.g_ema, self.g, tc.ema_decay)
        p.step += 1
        self.meter.add(losses)
        return phase

    def log(self, phase: str) -> None:
        """Mean losses since the last log: VisualDL, the bar, the log file."""
        s = self.progress.step
        losses = self.meter.read()
        bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
        if bad:
            raise NonFiniteLoss(
                f"{self.job.name}: non-finite loss {bad} in {phase} around step {s}; stopped, "
                f"{self.last_good()}")
        opt = self.opts["pretrain" if phase == "pretrain" else "g"][0]
        lr_now = opt.get_lr()
        self.mon.scalars(s, losses, "loss/")
        self.mon.scalars(s, {"lr": lr_now}, "train/")
        rate = self.mon.advance(s, {**{k: f"{v:.4g}" for k, v in losses.items()},
                                    "lr": f"{lr_now:.2g}"})
        self.mon.scalars(s, {"it_per_s": rate}, "train/")
        self.mon.log.info(f"step {s} {phase} " + " ".join(f"{k}={v:.5g}" for k, v in losses.items())
                          + f" lr={lr_now:.3g} {rate:.3g} it/s ({self.mon.eta(s, rate)})")

    def log_pictures(self, phase: str, end_of_phase: bool) -> None:
        cfg, s = self.cfg, self.progress.step
        if s % cfg.log.images_every == 0 or end_of_phase:
            self.mon.images(s, "train/lr_bicubic_sr_hr",
                            _train_picture(self.generator, *self.train_crop, cfg.scale))
        if s % cfg.log.histograms_every == 0 or s == self.total:
            self.mon.histograms(s, self.g, "weights/g/")
            if self.d is not None and phase == "adversarial":
                self.mon.histograms(s, self.d, "weights/d/")

    def validate(self) -> bool:
        """PSNR/SSIM-Y on the val images; True when the phase's best improved."""
        p = self.progress
        res = validate_generator(self.generator, self.val_images, self.cfg.scale,
                                 self.crop_border)
        p.last_val = {"step": p.step, "psnr": res["psnr"], "ssim": res["ssim"]}
        p.curve.append({"train_seconds": round(p.train_seconds, 3), "iteration": p.step,
                        "psnr_y": round(res["psnr"], 4)})
        self.mon.scalars(p.step, {"psnr": res["psnr"], "ssim": res["ssim"]}, "val/")
        # the same PSNR-Y with training seconds as the step axis (time to quality)
        self.mon.scalars(int(round(p.train_seconds)), {"psnr_y_by_train_seconds": res["psnr"]},
                         "val/")
        if self.cfg.val.curve:  # the routed curve puts these together after the last class
            save_weights(self.generator, snapshot_path(self.job.dir, p.step))
        if res["sample"] is not None:
            self.mon.images(p.step, "val/lr_bicubic_sr_hr", res["sample"])
        improved = res["psnr"] > p.best_psnr
        if improved:
            p.best_psnr, p.best_step = res["psnr"], p.step
        self.mon.info(f"val step {p.step}: PSNR-Y {res['psnr']:.3f} dB, SSIM-Y "
                      f"{res['ssim']:.4f}" + (" (best)" if improved else ""))
        return improved

    def last_good(self) -> str:
        """Where the run can continue from: an existing checkpoint, or nothing yet."""
        path = self.job.dir / LATEST
        if path.is_file():
            return f"the last good checkpoint is {path} (step {self.saved_step})"
        return (f"no checkpoint was written yet ({path} does not exist), so a new run starts "
                "at step 0")

    def checkpoint(self, reason: str, best: bool = False) -> None:
        """The latest checkpoint (and the best), refused when the weights went non-finite."""
        p = self.progress
        if not _all_finite(self.g) or (self.d is not None and not _all_finite(self.d)):
            raise NonFiniteLoss(f"{self.job.name}: non-finite weights at step {p.step}; not "
                                f"saved: {self.last_good()}")
        p.scalers = scaler_state(self.scalers)
        state = _checkpoint_state(self.nets, self.opts, p, self.job)
        save_checkpoint(self.job.dir / LATEST, state)
        if best:
            save_checkpoint(self.job.dir / BEST, state)
        self.last_save, self.saved_step = time.time(), p.step
        self.mon.info(f"checkpoint at step {p.step} ({reason})")


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
            "train_seconds": round(progress.train_seconds, 3),
            "wall_seconds_this_session": round(wall, 3),
            "best_val": {"psnr": progress.best_psnr, "step": progress.best_step}
            if progress.best_step >= 0 else None,
            "last_val": progress.last_val or None,
            "curve": progress.curve,
            "weights": str(job.dir / G_FINAL)}
