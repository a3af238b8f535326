"""Model specs by the paper's names: "x-y" = generator with x residual blocks,
discriminator with y conv layers (e.g. "16-8", "8-6", "4-6", "2-2"); the
generator forms; the VGG19 layer names the content loss can use. No Paddle.

A width suffix "wC" sets the generator's channels: "4-6w16" is 4 blocks of
16 channels. Without it the width comes from the generator options
(``channels``, 64 by default); with it, options that name another width are
an error (``ModelSpec.generator_options``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

FORMS = ("srgan", "fast", "compact")  # generator forms, see models/generator.py
_SPEC = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*(?:w\s*(\d+))?\s*$")


@dataclass
class GeneratorOptions:
    """A generator's options beside its spec: the config's ``model.generator`` and
    ``classes.N.generator``, a manifest's ``classes[i].generator``."""
    channels: int = 64
    form: str = "srgan"          # srgan (paper, with BN) | fast (no BN, bicubic residual)
    #                              | compact (all convs at LR, one PixelShuffle; see models/generator.py)
    head_kernel: int = 9
    tail_kernel: int = 9


# VGG19 feature layers: conv widths, "M" = max pool (paddle.vision's vgg19 layout)
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def _layer_names() -> tuple:
    names, block, conv = [], 1, 0
    for v in VGG19_LAYOUT:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            conv += 1
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    return tuple(names)


# name -> index in paddle.vision vgg19().features
LAYER_NAMES = _layer_names()


@dataclass(frozen=True)
class ModelSpec:
    g_blocks: int
    d_layers: int
    channels: Optional[int] = None   # generator width; None = from the generator options

    @classmethod
    def parse(cls, text) -> "ModelSpec":
        if isinstance(text, ModelSpec):
            return text
        m = _SPEC.match(str(text))
        if not m:
            raise ValueError(f"model spec {text!r} is not of the form 'x-y' or 'x-ywC' "
                             "(e.g. '16-8', '4-6w16')")
        g, d = int(m.group(1)), int(m.group(2))
        c = int(m.group(3)) if m.group(3) is not None else None
        if g < 1 or d < 1:
            raise ValueError(f"model spec {text!r}: both numbers must be >= 1")
        if c is not None and c < 1:
            raise ValueError(f"model spec {text!r}: the width must be >= 1")
        return cls(g, d, c)

    def generator_options(self, options: dict) -> dict:
        """Generator kwargs: ``options`` with this spec's width, if it has one (a
        ``channels`` in ``options`` that differs from it is a ValueError)."""
        out = dict(options)
        if self.channels is not None:
            if out.get("channels", self.channels) != self.channels:
                raise ValueError(f"model spec {self} sets the width to {self.channels}, "
                                 f"but channels is {out['channels']}")
            out["channels"] = self.channels
        return out

    def width(self, options: dict) -> int:
        """The generator's channels: the spec's, else ``options``' (else the default)."""
        return int(self.generator_options(options).get("channels", GeneratorOptions.channels))

    def __str__(self) -> str:
        width = "" if self.channels is None else f"w{self.channels}"
        return f"{self.g_blocks}-{self.d_layers}{width}"
