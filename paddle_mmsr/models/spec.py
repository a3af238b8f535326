"""Model specs by the paper's names: "x-y" = generator with x residual blocks,
discriminator with y conv layers (e.g. "16-8", "8-6", "4-6", "2-2")."""
from __future__ import annotations

import re
from dataclasses import dataclass

FORMS = ("srgan", "fast")  # generator forms, see models/generator.py
_SPEC = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


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
