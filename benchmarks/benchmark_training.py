#!/usr/bin/env python
"""Training step speed per model spec and phase (the paper's speed-up argument).

    python benchmarks/benchmark_training.py [--specs 4-6,16-8] [--batch 16] [--crop 96]
        [--form srgan] [--tail-kernel 9] [--iters 5] [--data DIR] [-o bench.json]

Times one G-pretraining step and one adversarial step (G + D + VGG content
loss) on synthetic batches, so data loading is excluded; ``--data`` also
times the batch pipeline alone on a folder of images. Prints a table and the
ratio of each spec's step time to the first spec's.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from paddle_mmsr.core.devices import TRAIN_DEVICES
from paddle_mmsr.core.spec import FORMS


def make_step(spec: str, phase: str = "pretrain", batch: int = 16, crop: int = 96,
              scale: int = 4, generator: dict | None = None, vgg=None, d_channels: int = 64):
    """A zero-argument function running one training step of ``phase`` for ``spec``
    on a fixed synthetic batch (data loading excluded) and waiting for the result."""
    import paddle
    import paddle.nn.functional as F

    from paddle_mmsr.models.losses import content_loss, d_loss, g_adv_loss
    from paddle_mmsr.models import build_discriminator, build_generator
    from paddle_mmsr.train.steps import AdversarialWeights, adversarial_step, pretrain_step

    g = build_generator(spec, scale=scale, **(generator or {}))
    opt_g = paddle.optimizer.Adam(1e-4, parameters=g.parameters())
    lr = paddle.rand([batch, 3, crop // scale, crop // scale])
    hr = paddle.rand([batch, 3, crop, crop])
    if phase == "pretrain":
        def step():
            return float(pretrain_step(g, opt_g, lr, hr, F.mse_loss)["g_pixel"])
        return step
    if vgg is None:
        from paddle_mmsr.models.vgg import load_vgg19_features
        vgg = load_vgg19_features("conv5_4", weights="random")  # same cost as real weights
    d = build_discriminator(spec, base_channels=d_channels)
    opt_d = paddle.optimizer.Adam(1e-4, parameters=d.parameters())

    def step():
        out = adversarial_step(g, d, opt_g, opt_d, lr, hr, lambda s, t: content_loss(vgg, s, t),
                               g_adv_loss, d_loss, AdversarialWeights())
        return float(out["d_total"])
    return step


def measure_step_speed(specs, phase: str = "pretrain", batch: int = 16, crop: int = 96,
                       scale: int = 4, generator: dict | None = None, iters: int = 5,
                       warmup: int = 1, vgg=None) -> list:
    """Median seconds per step of ``phase`` for each spec. Specs take turns step by
    step, so a busy machine slows them alike and their ratio stays meaningful."""
    import paddle
    steps = {s: make_step(s, phase, batch, crop, scale, generator, vgg) for s in specs}
    times = {s: [] for s in specs}
    cpu = {s: [] for s in specs}
    for i in range(warmup + iters):
        for s in specs:
            t0, c0 = time.perf_counter(), time.process_time()
            steps[s]()
            if i >= warmup:
                times[s].append(time.perf_counter() - t0)
                cpu[s].append(time.process_time() - c0)
    out = []
    for s in specs:
        sec = sorted(times[s])[len(times[s]) // 2]
        cpu_sec = sorted(cpu[s])[len(cpu[s]) // 2]
        out.append({"spec": s, "phase": phase, "batch": batch, "crop": crop,
                    "generator": generator or {}, "seconds_per_step": round(sec, 4),
                    "cpu_seconds_per_step": round(cpu_sec, 4),  # all threads; robust to a busy machine
                    "it_per_s": round(1.0 / sec, 4), "samples_per_s": round(batch / sec, 2),
                    "times": [round(t, 4) for t in times[s]], "device": paddle.get_device()})
    return out


def measure_data_speed(source, batch: int = 16, crop: int = 96, scale: int = 4,
                       batches: int = 10) -> dict:
    """Seconds per batch of the training pipeline alone (crop, augment, bicubic LR)."""
    from paddle_mmsr.data.dataset import SRDataset
    from paddle_mmsr.train.batches import batch_stream
    ds = SRDataset(source, scale=scale, crop=crop, seed=0)
    stream = batch_stream(ds, batch, seed=0)
    next(stream)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(stream)
    sec = (time.perf_counter() - t0) / batches
    return {"source": str(source), "batch": batch, "crop": crop,
            "seconds_per_batch": round(sec, 4)}


def run_benchmark(specs, phases=("pretrain", "adversarial"), batch=16, crop=96, scale=4,
                  generator=None, iters=5, data=None, log=print) -> dict:
    results = []
    vgg = None
    for phase in phases:
        if phase == "adversarial" and vgg is None:
            from paddle_mmsr.models.vgg import load_vgg19_features
            vgg = load_vgg19_features("conv5_4", weights="random")
        for r in measure_step_speed(specs, phase, batch, crop, scale, generator, iters, vgg=vgg):
            log(f"{r['spec']:>6} {phase:<12} {r['seconds_per_step']:8.3f} s/step "
                f"{r['it_per_s']:7.3f} it/s {r['samples_per_s']:7.2f} samples/s "
                f"({r['cpu_seconds_per_step']:.2f} CPU-s/step)")
            results.append(r)
    ratios = {}
    for phase in phases:
        rs = [r for r in results if r["phase"] == phase]
        base = rs[0]["seconds_per_step"]
        ratios[phase] = {r["spec"]: round(r["seconds_per_step"] / base, 3) for r in rs}
        log(f"{phase}: step time relative to {rs[0]['spec']}: {ratios[phase]}")
    out = {"results": results, "ratios": ratios}
    if data:
        out["data"] = measure_data_speed(data, batch, crop, scale)
        log(f"data pipeline alone: {out['data']['seconds_per_batch']:.3f} s/batch")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--specs", default="4-6,16-8")
    p.add_argument("--phases", default="pretrain,adversarial")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=96, help="HR crop (LR = crop / scale)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--form", default="srgan", choices=FORMS)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--head-kernel", type=int, default=9)
    p.add_argument("--tail-kernel", type=int, default=9)
    p.add_argument("--iters", type=int, default=5, help="timed steps (median reported)")
    p.add_argument("--threads", type=int, default=0, help="CPU math threads (0 = default)")
    p.add_argument("--device", default="auto", choices=TRAIN_DEVICES)
    p.add_argument("--data", help="also time the data pipeline on this folder")
    p.add_argument("-o", "--output", help="write the results as JSON")
    a = p.parse_args(argv)
    import paddle
    if a.device != "auto":
        paddle.set_device(a.device)
    if a.threads:
        from paddle.base import core
        core.set_num_threads(a.threads)
    gen = {"channels": a.channels, "form": a.form, "head_kernel": a.head_kernel,
           "tail_kernel": a.tail_kernel}
    out = run_benchmark(a.specs.split(","), a.phases.split(","), a.batch, a.crop, a.scale, gen,
                        a.iters, a.data)
    out["settings"] = vars(a)
    if a.output:
        Path(a.output).write_text(json.dumps(out, indent=1))
        print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
