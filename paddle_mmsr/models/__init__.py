"""Networks only (pure layers); training logic lives in paddle_mmsr.train."""
from .discriminator import Discriminator
from .generator import Generator
from .spec import ModelSpec

__all__ = ["Generator", "Discriminator", "ModelSpec", "build_generator", "build_discriminator"]


def build_generator(spec, scale: int = 4, **options) -> Generator:
    """Generator for a spec such as "16-8"; ``options`` are Generator kwargs."""
    return Generator(num_blocks=ModelSpec.parse(spec).g_blocks, scale=scale, **options)


def build_discriminator(spec, **options) -> Discriminator:
    return Discriminator(num_layers=ModelSpec.parse(spec).d_layers, **options)
