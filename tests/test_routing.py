"""The routing rule: cell_max scoring, its manifest fields, bound calibration, and the
compact form through Paddle Inference."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

paddle = pytest.importorskip("paddle")
skdata = pytest.importorskip("skimage.data")

from paddle_mmsr import MMSR  # noqa: E402
from paddle_mmsr.core.tvat import TVATSettings, tvat, vsp  # noqa: E402
from paddle_mmsr.models import build_generator  # noqa: E402
from paddle_mmsr.core.manifest import BundleError, load_bundle  # noqa: E402
from paddle_mmsr.models.weights import make_bundle  # noqa: E402
from paddle_mmsr.sr.calibrate import choose_bounds  # noqa: E402
from paddle_mmsr.sr.inference import make_runner  # noqa: E402
from paddle_mmsr.sr.route import FLAT, largest_class, tile_scores  # noqa: E402
from paddle_mmsr.core.tiles import TileGrid  # noqa: E402

COMPACT = dict(form="compact", head_kernel=3, tail_kernel=3)


def line_art(size=128) -> np.ndarray:
    """A drawing: a few black strokes in one corner of white paper (uint8 RGB)."""
    from PIL import Image, ImageDraw
    im = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(im)
    d.line([(4, 4), (28, 20)], fill=(0, 0, 0), width=2)
    d.ellipse([6, 10, 26, 28], outline=(0, 0, 0), width=1)
    return np.asarray(im)


def gray_rgb(img) -> np.ndarray:
    img = np.asarray(img)
    img = (img * 255).astype(np.uint8) if img.dtype == bool else img
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img


def test_busiest_cell_scores_strokes_on_paper_high():
    img = line_art()
    grid, tv = TileGrid(128, 128, 128, 16), TVATSettings()
    tile = tile_scores(img, grid, tv, "tile")[0]
    cell = tile_scores(img, grid, tv, "cell_max", 32)[0]
    assert tile == pytest.approx(tvat(img))
    assert cell > 8 * tile  # one busy cell out of 16
    # the busiest cell's score is that cell's share of the image's thresholded VSP
    v = vsp(img)
    v[v <= tv.tau] = 0
    brute = max(v[y:y + 32, x:x + 32].mean() for y in range(0, 128, 32)
                for x in range(0, 128, 32)) / tv.norm
    assert cell == pytest.approx(brute, rel=1e-6)


@pytest.mark.parametrize("name", ["text", "page", "horse"])
def test_cell_max_never_scores_a_tile_below_its_average(name):
    img = gray_rgb(getattr(skdata, name)())
    grid, tv = TileGrid(img.shape[0], img.shape[1], 64, 16), TVATSettings()
    whole = tile_scores(img, TileGrid(*img.shape[:2], 10 ** 4, 0), tv, "tile")[0]
    cells = tile_scores(img, grid, tv, "cell_max", 16)
    assert cells.max() >= whole
    assert (cells >= tile_scores(img, grid, tv, "tile") * 0.9).all()  # tile VSP pads edges


@pytest.fixture(scope="module")
def three_class_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("three")
    paddle.seed(0)
    gens = [(s, COMPACT, build_generator(s, 4, **COMPACT)) for s in ("1-1w4", "1-1w8", "2-2w8")]
    make_bundle(root, gens, TVATSettings(bounds=[0.5, 2.0]), route_score="cell_max",
                route_cell=16)
    return root


def test_route_rule_is_stored_in_the_manifest(three_class_bundle, tmp_path):
    b = load_bundle(three_class_bundle)
    assert (b.route_score, b.route_cell) == ("cell_max", 16)
    assert largest_class(b) == 2
    m = yaml.safe_load((three_class_bundle / "manifest.yaml").read_text())
    for k in ("route_score", "route_cell"):  # an old manifest: the paper's rule
        m.pop(k)
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(m))
    for c in b.classes:
        (tmp_path / c.weights).write_bytes((three_class_bundle / c.weights).read_bytes())
    assert load_bundle(tmp_path).route_score == "tile"
    m["route_score"] = "busiest"
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(m))
    with pytest.raises(BundleError, match="route_score"):
        load_bundle(tmp_path)


@pytest.mark.parametrize("name", ["text", "page", "line_art"])
def test_text_and_line_art_tiles_go_to_bigger_models_with_cell_max(three_class_bundle, name):
    img = line_art(256) if name == "line_art" else getattr(skdata, name)()
    sr = MMSR.load(three_class_bundle, tile=128, overlap=16)
    cell = sr.reconstruct(img)
    sr.bundle.route_score = "tile"
    tile = sr.reconstruct(img)
    assert cell.image.shape == tile.image.shape
    assert (cell.classes >= tile.classes).all()
    assert cell.classes.mean() > tile.classes.mean()


def test_choose_bounds_keeps_hard_tiles_on_the_large_model():
    rng = np.random.default_rng(0)
    scores = np.sort(rng.random(300) * 4)
    top = np.full(300, 100.0)  # the large model's error everywhere
    # bicubic and the small models are as good as the large one on low scores only
    sse = np.stack([top * np.where(scores < 0.5, 1.0, 3.0),
                    top * np.where(scores < 1.5, 1.0, 2.0),
                    top * np.where(scores < 2.5, 1.0, 1.5), top], axis=1)
    seconds = np.array([0.001, 0.05, 0.2, 1.0])
    flat, bounds, loss, cost, cost_top = choose_bounds(scores, sse, seconds, 0.0, top=3)
    assert loss <= 1e-9 and cost < 0.5 * cost_top
    # thresholds come from 40 score quantiles: at most one step (~0.1) on the safe side
    assert 0.3 <= flat <= 0.5 and 1.3 <= bounds[0] <= 1.5 and 2.3 <= bounds[1] <= 2.5
    _, loose, loss2, cost2, _ = choose_bounds(scores, sse, seconds, 0.5, top=3)
    assert 0 < loss2 <= 0.5 and cost2 < cost  # a looser tolerance buys speed


def test_choose_bounds_falls_back_to_the_largest_model_when_nothing_qualifies():
    """Against a reference on another tiling that no routing reaches, every tile goes to
    the largest model's column, even when that is not the last one."""
    scores, sse = np.arange(5.0), np.ones((5, 4))
    flat, bounds, loss, _, _ = choose_bounds(scores, sse, np.ones(4), 0.0, top=2, ref=(1.0, 5.0))
    th = [-np.inf if flat is None else flat] + bounds
    assert (np.searchsorted(th, scores, side="right") == 2).all() and loss > 0


def test_compact_form_exports_to_paddle_inference(three_class_bundle):
    b = load_bundle(three_class_bundle)
    x = np.random.default_rng(0).random((2, 3, 24, 40), dtype=np.float32)
    for c in b.classes:
        dy = make_runner(b, c, "dygraph").run(x)
        inf = make_runner(b, c, "inference").run(x)
        assert inf.shape == (2, 3, 96, 160)
        assert np.abs(inf - dy).max() < 1e-4


def test_flat_bound_with_cell_max_sends_only_blank_tiles_to_bicubic(three_class_bundle):
    img = line_art(192)
    sr = MMSR.load(three_class_bundle, tile=64, overlap=16)
    sr.bundle.flat_bound = 0.01
    r = sr.reconstruct(img)
    assert r.classes[0] != FLAT  # the strokes' tile
    assert (r.classes[1:] == FLAT).any()


def test_benchmark_counts_multiply_adds_of_every_lr_conv():
    import importlib.util
    from conftest import ROOT
    spec = importlib.util.spec_from_file_location(
        "bench_rec", ROOT / "benchmarks" / "benchmark_reconstruction.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    g = build_generator("2-2w8", 4, **COMPACT)
    t = 16
    # head 3->8, 2 blocks x 2 convs 8->8, mid 8->8, tail 8->48, all 3x3 at 16x16; skip 5x5 grouped
    expected = t * t * 9 * (3 * 8 + 5 * 8 * 8 + 8 * 48)
    assert bench.multiply_adds(g, t) == expected


def test_calibration_end_to_end_keeps_its_promise(three_class_bundle):
    from paddle_mmsr.image.resize import imresize
    from paddle_mmsr.sr.calibrate import calibrate_bundle, drawn_page
    sr = MMSR.load(three_class_bundle, tile=64, overlap=16)
    hr = skdata.astronaut()[:192, :192]
    page = drawn_page(100, size=192)
    res = calibrate_bundle(sr, [(imresize(hr, 0.25), hr)], 0.05,
                           rules=(("cell_max", 16), ("tile", None)),
                           guard_pairs=[(imresize(page, 0.25), page)], guard_max_loss_db=0.1)
    assert [t["route_score"] for t in res["tried"]] == ["cell_max", "tile"]
    assert res["loss_db"] <= 0.05 and res["speedup_estimated"] >= 1.0
    assert sr.bundle.route_score == res["route_score"]
    assert res["bounds"] == sorted(res["bounds"])


def test_calibration_tries_tilings_against_the_default_tiling(three_class_bundle, tmp_path):
    """Each tiling is scored against the largest model at 128/16; the winner's tiling
    goes into the manifest and becomes the bundle's default when upscaling."""
    import shutil
    from paddle_mmsr.image.resize import imresize
    from paddle_mmsr.core.manifest import load_bundle, write_manifest
    from paddle_mmsr.sr.calibrate import calibrate_bundle
    sr = MMSR.load(three_class_bundle)
    hr = skdata.astronaut()[:256, :384]
    res = calibrate_bundle(sr, [(imresize(hr, 0.25), hr)], 0.05, rules=(("cell_max", 16),),
                           grids=[(128, 16), (32, 8)], frontier=(0.0, 0.05, 10.0))
    assert [(t["tile"], t["overlap"]) for t in res["tried"]] == [(128, 16), (32, 8)]
    assert res["tried"][1]["tiles"] > res["tried"][0]["tiles"] == res["reference"]["tiles"]
    assert res["loss_db"] <= 0.05 and (sr.tile, sr.overlap) == (res["tile"], res["overlap"])
    fr = res["frontier"]  # a looser tolerance never estimates slower
    assert fr["0.05"] == pytest.approx(res["speedup_estimated"]) and fr["10"] >= fr["0.05"]
    assert fr["0"] is None or fr["0"] <= fr["0.05"]
    assert set(res["tile_seconds"]) == {"64x96", "27x30"}  # 64x96: one 128 tile; 4x4 of 27x30
    from paddle_mmsr.sr.calibrate import tile_errors  # shares of each pixel sum to 1 on any tiling
    lr = imresize(hr, 0.25)
    totals = [tile_errors(MMSR.load(three_class_bundle, tile=t, overlap=o), lr, hr)[1].sum(0)
              for t, o in ((128, 16), (32, 8))]
    np.testing.assert_allclose(totals[0][0], totals[1][0], rtol=1e-6)  # bicubic: no tiling effect
    np.testing.assert_allclose(totals[0], totals[1], rtol=0.05)
    copy = tmp_path / "b"
    shutil.copytree(three_class_bundle, copy)
    b = load_bundle(copy)
    b.tile, b.overlap = 32, 8
    write_manifest(b)
    assert (MMSR.load(copy).tile, MMSR.load(copy).overlap) == (32, 8)
    assert (MMSR.load(copy, tile=48).tile, MMSR.load(copy, overlap=4).overlap) == (48, 4)
    b.overlap = 40
    write_manifest(b)
    with pytest.raises(BundleError, match="need tile > overlap"):
        load_bundle(copy)


def test_compare_tools_read_cpu_time_and_hold_out_the_drawing(tmp_path):
    import importlib.util
    import subprocess
    from conftest import ROOT
    spec = importlib.util.spec_from_file_location("compare_eval", ROOT / "benchmarks" / "compare_eval.py")
    ce = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ce)
    t = tmp_path / "run.time"
    t.write_text("\tUser time (seconds): 10.5\n\tSystem time (seconds): 0.5\n"
                 "\tUser time (seconds): 2.0\n\tSystem time (seconds): 0.25\n")
    assert ce.cpu_seconds(t) == 13.2 and ce.cpu_seconds(tmp_path / "none") is None
    from paddle_mmsr.sr.calibrate import drawn_page
    held_out = ce.line_art_page()
    assert held_out.shape == (1024, 1024, 3)
    assert not np.array_equal(held_out, drawn_page(100, size=1024))  # not a calibration page
    assert subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "compare_x4.sh")]).returncode == 0


def test_choose_bounds_can_bound_every_image_not_only_the_mean():
    """A smooth image whose tiles the small model handles badly: the mean loss hides it,
    the per-image bound sends its tiles to the large model."""
    scores = np.array([0.1] * 4 + [0.2] * 96 + [3.0] * 100)
    image_of = np.array([0] * 4 + [1] * 96 + [2] * 100)
    top = np.full(200, 100.0)
    small = np.where(np.arange(200) < 4, 200.0, 100.0)   # loses 3 dB on image 0 only
    sse = np.stack([top * 5, small, top], axis=1)
    seconds = np.array([0.0, 0.1, 1.0])
    _, bounds, loss, _, _ = choose_bounds(scores, sse, seconds, 0.1, top=2)
    assert loss <= 0.1 and bounds[0] > 0.2          # the mean allows the small model everywhere
    image_ref = np.bincount(image_of, weights=top)
    _, bounds, loss, cost, _ = choose_bounds(scores, sse, seconds, 0.1, top=2,
                                             per_image=(image_of, image_ref, 0.3))
    assert bounds[0] <= 0.1                          # image 0 goes to the large model
    col = np.searchsorted([-np.inf, *bounds], scores, side="right")
    per = np.bincount(image_of, weights=sse[np.arange(200), col])
    assert (10 * np.log10(per / image_ref)).max() <= 0.3


def test_benchmark_peak_follows_the_cpu_flags(tmp_path, monkeypatch):
    """The share-of-peak yardstick is derived from the CPU (it was a fixed 190 GFLOP/s)."""
    import importlib.util
    from conftest import ROOT
    from paddle_mmsr.sr import precision
    spec = importlib.util.spec_from_file_location(
        "bench_rec", ROOT / "benchmarks" / "benchmark_reconstruction.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    peaks = {}
    for name, flags in (("avx512", "fma avx2 avx512f"), ("avx2", "fma avx2")):
        (tmp_path / name).write_text(f"flags\t: {flags}\n")
        monkeypatch.setattr(precision, "CPUINFO", tmp_path / name)
        peaks[name], basis = bench.nominal_peak()
        assert f"x {64 if name == 'avx512' else 32} FLOP/cycle" in basis
    assert peaks["avx512"] == 2 * peaks["avx2"] > 0
