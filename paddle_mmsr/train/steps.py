"""One optimisation step of each phase. Losses come back as detached tensors
(no host sync here; the loop reads them only when it logs)."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import paddle
import paddle.nn.functional as F
from paddle.utils import unique_name


@dataclass
class AdversarialWeights:
    content: float = 1.0
    adv: float = 1e-3
    pixel: float = 0.0


def pixel_loss_fn(kind: str):
    if kind == "l1":
        return F.l1_loss
    if kind == "mse":
        return F.mse_loss
    raise ValueError(f"pixel loss must be 'l1' or 'mse', got {kind!r}")


def make_scaler(dtype: str = "float16"):
    """The GradScaler of one optimiser under AMP; it also carries the autocast dtype.
    bfloat16 has float32's range, so its scaler does no loss scaling."""
    scaler = paddle.amp.GradScaler(enable=dtype == "float16")
    scaler.amp_dtype = dtype
    return scaler


def amp_dtype_for(requested: str, log=print) -> str:
    """``requested``, or float16 when the card cannot do bfloat16."""
    if requested == "bfloat16":
        supported = getattr(paddle.amp, "is_bfloat16_supported", None)
        if supported is None or not supported():
            log("train.amp_dtype: bfloat16 is not supported here; using float16")
            return "float16"
    return requested


def _cast(scaler):
    if scaler is None:
        return nullcontext()
    return paddle.amp.auto_cast(enable=True, dtype=getattr(scaler, "amp_dtype", "float16"))


def _f32(x):
    return x if x.dtype == paddle.float32 else x.astype("float32")


def _update(loss, opt, scaler, sync=None) -> None:
    # A fresh name generator: accumulator names end in _0 whichever optimisers
    # ran before in this process, so checkpointed optimiser states load back.
    # ``sync(opt)`` (data-parallel replicas) averages the gradients before the step.
    if scaler is None:
        loss.backward()
        if sync is not None:
            sync(opt)
        with unique_name.guard():
            opt.step()
    else:
        scaler.scale(loss).backward()
        if sync is not None:
            sync(opt)
        with unique_name.guard():
            scaler.step(opt)
        scaler.update()
    opt.clear_grad()


def set_trainable(layer, flag: bool) -> None:
    for p in layer.parameters():
        p.stop_gradient = not flag


def pretrain_step(g, opt, lr, hr, loss_fn, scaler=None, sync=None) -> dict:
    """Phase 1: G on the pixel loss alone."""
    with _cast(scaler):
        sr = g(lr)
    loss = loss_fn(_f32(sr), hr)
    _update(loss, opt, scaler, sync)
    return {"g_pixel": loss.detach()}


def adversarial_step(g, d, opt_g, opt_d, lr, hr, content_fn, adv_fn, d_loss_fn,
                     weights: AdversarialWeights, pixel_fn=None, extra_d_batches=(),
                     scalers=(None, None), sync=None) -> dict:
    """Phase 2: one G update, then D updates on this batch (+ ``extra_d_batches``).

    content_fn(sr, hr), adv_fn(fake_logits), d_loss_fn(real, fake) ->
    (d_real, d_fake, d_total). D's weights get no gradient in the G update.
    """
    g_scaler, d_scaler = scalers
    set_trainable(d, False)
    with _cast(g_scaler):
        sr = g(lr)
        fake_logits = d(sr)
    sr32 = _f32(sr)
    out = {}
    total = 0.0
    if weights.content:
        out["g_content"] = content_fn(sr32, hr)
        total = total + weights.content * out["g_content"]
    out["g_adv"] = adv_fn(_f32(fake_logits))
    total = total + weights.adv * out["g_adv"]
    if weights.pixel and pixel_fn is not None:
        out["g_pixel"] = pixel_fn(sr32, hr)
        total = total + weights.pixel * out["g_pixel"]
    out["g_total"] = total
    _update(total, opt_g, g_scaler, sync)
    set_trainable(d, True)

    batches = [(sr.detach(), hr)]
    for lr_k, hr_k in extra_d_batches:
        with paddle.no_grad():
            batches.append((g(lr_k), hr_k))
    for fake, real in batches:
        with _cast(d_scaler):
            real_logits, fake_logits = d(real), d(fake)
        d_real, d_fake, d_total = d_loss_fn(_f32(real_logits), _f32(fake_logits))
        _update(d_total, opt_d, d_scaler, sync)
    out.update(d_real=d_real, d_fake=d_fake, d_total=d_total)
    return {k: v.detach() for k, v in out.items()}


@paddle.no_grad()
def ema_update(ema, model, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model; buffers copied. In-place device ops:
    ``set_value`` would copy every tensor to the host and back (Paddle 2.6/3.0)."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.scale_(decay)
        pe.add_(p * (1.0 - decay))
    for be, b in zip(ema.buffers(), model.buffers()):
        paddle.assign(b, output=be)
