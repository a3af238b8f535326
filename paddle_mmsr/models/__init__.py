"""Networks only (pure layers) and their losses; training logic lives in paddle_mmsr.train.

``spec`` imports without Paddle; the rest is loaded on first use."""
from paddle_mmsr.core.spec import ModelSpec

__all__ = ["Generator", "Discriminator", "ModelSpec", "build_generator", "build_discriminator"]


def build_generator(spec, scale: int = 4, **options):
    """Generator for a spec such as "16-8" or "4-6w16"; ``options`` are Generator
    kwargs (a width in the spec overrides ``channels``)."""
    from paddle_mmsr.models.generator import Generator
    s = ModelSpec.parse(spec)
    return Generator(num_blocks=s.g_blocks, scale=scale, **s.generator_options(options))


def build_discriminator(spec, **options):
    from paddle_mmsr.models.discriminator import Discriminator
    return Discriminator(num_layers=ModelSpec.parse(spec).d_layers, **options)


def __getattr__(name):  # lazy: importing the package does not import paddle
    if name == "Generator":
        from paddle_mmsr.models.generator import Generator
        return Generator
    if name == "Discriminator":
        from paddle_mmsr.models.discriminator import Discriminator
        return Discriminator
    raise AttributeError(name)
