"""Networks, optimisers and the VGG loss network of one class run."""
from __future__ import annotations

import copy
import warnings

import paddle

from paddle_mmsr.models import build_discriminator, build_generator


def build_networks(spec: str, scale: int, generator_options: dict, adversarial: bool,
                   d_channels: int = 64, ema: bool = False) -> dict:
    """{"g", "d" (None without phase 2), "ema" (None unless enabled)}."""
    g = build_generator(spec, scale=scale, **generator_options)
    d = build_discriminator(spec, base_channels=d_channels) if adversarial else None
    g_ema = None
    if ema:
        g_ema = copy.deepcopy(g)
        for p in g_ema.parameters():
            p.stop_gradient = True
        g_ema.eval()
    return {"g": g, "d": d, "ema": g_ema}


def adam(params, o) -> tuple:
    """Adam with step decay; ``o`` is an OptimizerConfig. Returns (optimizer, scheduler)."""
    sched = paddle.optimizer.lr.MultiStepDecay(o.lr, list(o.milestones), o.gamma)
    opt = paddle.optimizer.Adam(learning_rate=sched, beta1=o.beta1, beta2=o.beta2,
                                parameters=params, weight_decay=o.weight_decay or None)
    return opt, sched


def build_optimizers(cfg, nets: dict) -> dict:
    """name -> (optimizer, scheduler): "pretrain" (phase 1 G), "g" and "d" (phase 2)."""
    out = {}
    if cfg.train.pretrain_iters:
        out["pretrain"] = adam(nets["g"].parameters(), cfg.optim.pretrain)
    if cfg.train.adversarial_iters:
        out["g"] = adam(nets["g"].parameters(), cfg.optim.generator)
        out["d"] = adam(nets["d"].parameters(), cfg.optim.discriminator)
    return out


def load_vgg(loss_cfg, log=print, seed: int = 0):
    """The frozen VGG19 for the content loss; fails early with a clear message.

    ``seed`` (the run's) fixes the weights of ``vgg_weights: random``."""
    from paddle_mmsr.models.vgg import load_vgg19_features
    weights = loss_cfg.vgg_weights
    if weights == "random":
        msg = (f"loss.vgg_weights=random: the content loss uses an UNTRAINED VGG19 "
               f"(weights from seed {seed}). Only for tests; results are meaningless.")
        warnings.warn(msg)
        log("WARNING " + msg)
    return load_vgg19_features(loss_cfg.vgg_layer, weights=None if weights == "auto" else weights,
                               seed=seed)
