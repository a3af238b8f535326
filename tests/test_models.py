import numpy as np
import paddle
import pytest

from paddle_mmsr.models import Discriminator, Generator, ModelSpec, build_discriminator, build_generator


def test_spec_parsing():
    assert ModelSpec.parse("16-8") == ModelSpec(16, 8)
    assert str(ModelSpec.parse(" 4 - 6 ")) == "4-6"
    for bad in ("16", "a-b", "0-2", "16-8-1"):
        with pytest.raises(ValueError):
            ModelSpec.parse(bad)


def n_blocks(g):
    return len(g.blocks)


@pytest.mark.parametrize("spec", ["2-2", "4-6", "8-6", "16-8"])
def test_paper_specs_build(spec):
    s = ModelSpec.parse(spec)
    g = build_generator(spec, channels=8, tail_kernel=3)
    assert n_blocks(g) == s.g_blocks
    d = build_discriminator(spec, base_channels=8)
    convs = [m for m in d.features if isinstance(m, paddle.nn.Conv2D)]
    assert len(convs) == s.d_layers
    assert d(paddle.rand([2, 3, 32, 48])).shape == [2, 1]


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("form", ["srgan", "fast"])
def test_generator_scales_and_forms(scale, form):
    g = Generator(num_blocks=1, channels=8, scale=scale, form=form, tail_kernel=3)
    g.eval()
    assert g(paddle.rand([1, 3, 10, 12])).shape == [1, 3, 10 * scale, 12 * scale]


def test_paper_generator_layout():
    g = Generator(num_blocks=16)
    assert g.head[0].weight.shape == [64, 3, 9, 9]
    assert g.tail.weight.shape == [3, 64, 9, 9]
    ups = [m for m in g.upsample if isinstance(m, paddle.nn.Conv2D)]
    assert [m.weight.shape for m in ups] == [[256, 64, 3, 3]] * 2
    assert any(isinstance(m, paddle.nn.BatchNorm2D) for m in g.blocks[0].body)


def test_discriminator_channels_and_strides():
    d = Discriminator(num_layers=8)
    convs = [m for m in d.features if isinstance(m, paddle.nn.Conv2D)]
    assert [c.weight.shape[0] for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c._stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    bns = [m for m in d.features if isinstance(m, paddle.nn.BatchNorm2D)]
    assert len(bns) == 7


def test_fast_form_starts_near_bicubic():
    x = paddle.rand([1, 3, 16, 16])
    g = Generator(num_blocks=2, channels=16, form="fast", tail_kernel=3)
    bic = paddle.nn.functional.interpolate(x, scale_factor=4, mode="bicubic")
    assert float((g(x) - bic).abs().mean()) < 0.05


def test_generator_learns_a_few_steps():
    paddle.seed(0)
    g = Generator(num_blocks=1, channels=8, form="fast", tail_kernel=3)
    opt = paddle.optimizer.Adam(learning_rate=1e-3, parameters=g.parameters())
    rng = np.random.default_rng(0)
    hr = paddle.to_tensor(rng.random((2, 3, 32, 32)).astype("float32"))
    lr = paddle.nn.functional.avg_pool2d(hr, 4)
    losses = []
    for _ in range(30):
        loss = paddle.nn.functional.mse_loss(g(lr), hr)
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


# ---- width in the spec, and the compact (LR-resolution) form ----

def test_spec_width_suffix():
    s = ModelSpec.parse("4-6w16")
    assert (s.g_blocks, s.d_layers, s.channels) == (4, 6, 16)
    assert str(s) == "4-6w16" and str(ModelSpec.parse(" 16 - 8 w 48 ")) == "16-8w48"
    assert ModelSpec.parse("16-8").channels is None
    assert s.generator_options({"form": "compact"}) == {"channels": 16, "form": "compact"}
    assert s.generator_options({"channels": 16}) == {"channels": 16} and s.width({}) == 16
    with pytest.raises(ValueError, match="sets the width to 16, but channels is 64"):
        s.generator_options({"channels": 64, "form": "compact"})
    assert ModelSpec.parse("16-8").generator_options({"channels": 64}) == {"channels": 64}
    assert ModelSpec.parse("16-8").width({"channels": 32}) == 32
    assert ModelSpec.parse("16-8").width({}) == 64  # GeneratorOptions' default
    for bad in ("4-6w", "4-6w0", "4-6c16", "w16"):
        with pytest.raises(ValueError):
            ModelSpec.parse(bad)


def test_spec_width_sets_generator_channels():
    g = build_generator("2-2w12", form="compact", head_kernel=3, tail_kernel=3)
    assert g.head[0].weight.shape == [12, 3, 3, 3]
    with pytest.raises(ValueError, match="sets the width to 12"):
        build_generator("2-2w12", channels=64, form="compact")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_compact_form_runs_every_conv_at_lr(scale):
    g = Generator(num_blocks=2, channels=8, scale=scale, form="compact", head_kernel=3,
                  tail_kernel=3)
    g.eval()
    sizes = []
    hooks = [m.register_forward_post_hook(lambda m, i, o: sizes.append(tuple(o.shape[2:])))
             for m in g.sublayers() if isinstance(m, paddle.nn.Conv2D)]
    y = g(paddle.rand([1, 3, 10, 12]))
    for h in hooks:
        h.remove()
    assert y.shape == [1, 3, 10 * scale, 12 * scale]
    assert sizes and set(sizes) == {(10, 12)}
    assert g.tail.weight.shape == [3 * scale * scale, 8, 3, 3]
    assert not any(isinstance(m, paddle.nn.BatchNorm2D) for m in g.sublayers())


def test_compact_cost_grows_with_blocks_and_width():
    def n_params(spec):
        g = build_generator(spec, form="compact", head_kernel=3, tail_kernel=3)
        return sum(int(np.prod(p.shape)) for p in g.parameters())
    small, large = n_params("4-6w16"), n_params("16-8w48")
    assert large > 25 * small  # 16 x 48^2 vs 4 x 16^2 in the residual body


def test_compact_form_starts_near_bicubic():
    x = paddle.rand([1, 3, 16, 16])
    g = Generator(num_blocks=2, channels=16, form="compact", head_kernel=3, tail_kernel=3)
    bic = paddle.nn.functional.interpolate(x, scale_factor=4, mode="bicubic")
    assert float((g(x) - bic).abs().mean()) < 0.05


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_compact_skip_at_lr_equals_bicubic_interpolation(scale):
    g = Generator(num_blocks=1, channels=8, scale=scale, form="compact", head_kernel=3,
                  tail_kernel=3)
    g.eval()
    g.tail.weight.set_value(g.tail.weight * 0)
    g.tail.bias.set_value(g.tail.bias * 0)
    x = paddle.rand([2, 3, 13, 17])
    bic = paddle.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic",
                                           align_corners=False)
    assert float((g(x) - bic).abs().max()) < 1e-5  # borders included
    assert "skip_kernel" not in g.state_dict()  # fixed, not stored with the weights
