"""SRGAN losses: VGG content loss, pixel MSE, adversarial (BCE with logits).

Images are NCHW float32 RGB in [0, 1]; discriminator outputs are raw logits.
"""
from __future__ import annotations

import paddle
import paddle.nn.functional as F

__all__ = ["content_loss", "pixel_mse", "g_adv_loss", "d_loss", "SRGAN_FEATURE_SCALE"]

# SRGAN rescales VGG feature maps by 1/12.75 (the squared loss times ~0.006)
# to bring the VGG loss nearer the MSE's scale. It assumes Caffe-scale VGG
# activations, which the weights from tools/get_vgg19.py reproduce; other
# weights (e.g. paddle.vision's) have other scales. See docs/vgg19.md.
SRGAN_FEATURE_SCALE = 1.0 / 12.75


def content_loss(vgg, sr, hr, feature_scale: float = SRGAN_FEATURE_SCALE):
    """MSE between ``feature_scale * vgg(sr)`` and ``feature_scale * vgg(hr)``.

    ``vgg`` is a frozen ``VGG19Features``; gradients flow to ``sr`` only.
    """
    f_sr = vgg(sr) * feature_scale
    with paddle.no_grad():
        f_hr = vgg(hr) * feature_scale
    return F.mse_loss(f_sr, f_hr.detach())


def pixel_mse(sr, hr):
    return F.mse_loss(sr, hr)


def _bce(logits, target: float):
    return F.binary_cross_entropy_with_logits(logits, paddle.full_like(logits, target))


def g_adv_loss(fake_logits):
    """Generator loss: -log D(G(lr)) (non-saturating), mean over the batch."""
    return _bce(fake_logits, 1.0)


def d_loss(real_logits, fake_logits):
    """Discriminator loss; returns (d_real, d_fake, d_total = d_real + d_fake).

    Pass ``fake_logits`` of detached generator output when training D.
    """
    d_real = _bce(real_logits, 1.0)
    d_fake = _bce(fake_logits, 0.0)
    return d_real, d_fake, d_real + d_fake
