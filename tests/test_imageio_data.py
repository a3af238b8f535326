import numpy as np
import pytest
from PIL import Image

from paddle_mmsr.data.dataset import SRDataset, read_manifest, write_manifest
from paddle_mmsr.image.io import ImageReadError, read_image, to_float, to_uint, write_image


def test_roundtrip_kinds(tmp_path, photos):
    rgb = photos["coffee"][:40, :50]
    cases = {
        "rgb.png": rgb,
        "gray.png": photos["camera"][:40, :50],
        "rgba.png": np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)]),
        "rgb16.png": rgb.astype(np.uint16) * 257 + 3,
        "gray16.png": photos["camera"][:40, :50].astype(np.uint16) * 250,
    }
    gray = photos["camera"][:40, :50]
    cases.update({
        "ga.png": np.dstack([gray, gray[::-1]]),
        "ga16.png": np.dstack([gray, gray[::-1]]).astype(np.uint16) * 257 + 1,
        "rgba16.png": np.dstack([rgb, rgb[..., :1]]).astype(np.uint16) * 255 + 7,
    })
    for name, img in cases.items():
        for level in (0, 1, 9):
            write_image(tmp_path / name, img, png_compression=level)
            back = read_image(tmp_path / name)
            assert back.dtype == img.dtype and back.shape == img.shape, (name, level)
            assert (back == img).all(), (name, level)


def test_png_writer_levels_and_pil_agree(tmp_path, photos):
    """The fast writer's 8-bit RGB(A) files decode in PIL to the written pixels (the
    colour order is not swapped), and a higher level gives a smaller file."""
    rgba = np.dstack([photos["coffee"][:64, :80], photos["camera"][:64, :80]])
    sizes = {}
    for level in (0, 9):
        write_image(tmp_path / f"a{level}.png", rgba, png_compression=level)
        with Image.open(tmp_path / f"a{level}.png") as im:
            assert im.mode == "RGBA" and (np.array(im) == rgba).all()
        sizes[level] = (tmp_path / f"a{level}.png").stat().st_size
    assert sizes[9] < sizes[0]
    with pytest.raises(ValueError, match="0..9"):
        write_image(tmp_path / "bad.png", rgba, png_compression=10)


def test_palette_cmyk_and_exif(tmp_path, photos):
    rgb = photos["chelsea"][:30, :40]
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (30, 40, 3)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg")
    assert read_image(tmp_path / "c.jpg").shape == (30, 40, 3)
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "r.jpg").shape == (40, 30, 3)


def test_bad_files_have_clear_errors(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    good = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    write_image(tmp_path / "trunc.png", good)
    data = (tmp_path / "trunc.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    for name, words in [("empty.png", "empty"), ("text.png", "not an image"),
                        ("missing.png", "no such file"), ("trunc.png", "corrupt")]:
        with pytest.raises(ImageReadError, match=words):
            read_image(tmp_path / name)


def test_to_float_and_back():
    g16 = np.array([[0, 65535]], np.uint16)
    assert to_float(g16).tolist() == [[0.0, 1.0]] and to_float(g16).dtype == np.float32
    rgb = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(to_uint(to_float(rgb)), rgb)
    assert np.array_equal(to_uint(to_float(g16), np.uint16), g16)


def test_dataset_crops_and_lr(tmp_path, photos):
    for n in ("astronaut", "coffee"):
        write_image(tmp_path / "hr" / f"{n}.png", photos[n][:200, :200])
    write_image(tmp_path / "hr" / "tiny.png", photos["coffee"][:40, :40])
    with pytest.warns(UserWarning, match="smaller than"):
        ds = SRDataset(tmp_path / "hr", scale=4, crop=96, seed=1, length=10)
    assert len(ds.paths) == 2 and len(ds) == 10
    lr, hr = ds[0]
    assert lr.shape == (3, 24, 24) and hr.shape == (3, 96, 96)
    assert lr.dtype == np.float32 and 0 <= lr.min() and hr.max() <= 1
    # LR is the bicubic downscale of the HR crop
    from paddle_mmsr.image.resize import imresize
    hr8 = np.round(hr.transpose(1, 2, 0) * 255).astype(np.uint8)
    assert np.abs(imresize(hr8, 1 / 4).astype(int) - np.round(lr.transpose(1, 2, 0) * 255)).max() <= 1
    a, b = ds[3][1], ds[3][1]
    ds.set_epoch(1)
    assert (a == b).all() and not (ds[3][1] == a).all()


def test_manifest_roundtrip(tmp_path, photos):
    write_image(tmp_path / "sub" / "a.png", photos["rocket"][:128, :128])
    rows = [{"path": "sub/a.png", "tvat": 1.5, "source": "x", "x": 0, "y": 0}]
    write_manifest(tmp_path / "class0.tsv", rows)
    back = read_manifest(tmp_path / "class0.tsv")
    assert back[0]["tvat"] == 1.5 and back[0]["path"].endswith("sub/a.png")
    ds = SRDataset([tmp_path / "class0.tsv"], crop=64)
    assert ds[0][1].shape == (3, 64, 64)
    with pytest.raises(FileNotFoundError):
        SRDataset([tmp_path / "nope.tsv"])


def test_side_by_side_pads_labels_and_zooms():
    from paddle_mmsr.image.panels import outline, side_by_side
    a, b = np.zeros((10, 6, 3), np.uint8), np.zeros((8, 5, 3), np.uint8)
    strip = side_by_side(a, b, gap=2)
    assert strip.shape == (10, 6 + 2 + 5, 3) and (strip[8:, 8:] == 255).all()
    labelled = side_by_side(a, b, labels=["LR", "SR"], zoom=2)
    assert labelled.shape[0] == 20 + 16 and labelled.shape[1] == 12 + 4 + 10
    assert (labelled[:16] < 255).any()  # the label text is drawn
    with pytest.raises(ValueError, match="2 images but 1 labels"):
        side_by_side(a, b, labels=["x"])
    framed = outline(np.zeros((20, 20, 3), np.uint8), 5, 5, 10)
    assert framed[5, 5:15].tolist() == [[255, 220, 0]] * 10 and framed[10, 10].tolist() == [0, 0, 0]
