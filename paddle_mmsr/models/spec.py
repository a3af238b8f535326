"""Model specs by the paper's names: "x-y" = generator with x residual blocks,
discriminator with y conv layers (e.g. "16-8", "8-6", "4-6", "2-2"); the
generator forms; the VGG19 layer names the content loss can use. No Paddle."""
from __future__ import annotations

import re
from dataclasses import dataclass

FORMS = ("srgan", "fast")  # generator forms, see models/generator.py
_SPEC = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")

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

    @classmethod
    def parse(cls, text) -> "ModelSpec":
        if isinstance(text, ModelSpec):
            return text
        m = _SPEC.match(str(text))
        if not m:
            raise ValueError(f"model spec {text!r} is not of the form 'x-y' (e.g. '16-8')")
        g, d = int(m.group(1)), int(m.group(2))
        if g < 1 or d < 1:
            raise ValueError(f"model spec {text!r}: both numbers must be >= 1")
        return cls(g, d)

    def __str__(self) -> str:
        return f"{self.g_blocks}-{self.d_layers}"
