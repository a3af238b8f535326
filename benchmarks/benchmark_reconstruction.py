"""Benchmark MMSR reconstruction on this machine.

Prints, in one run on the same images: dygraph vs Paddle Inference time for
the largest generator on one tile, seconds per tile of every class model with
its multiply-adds and effective GFLOP/s (2 FLOP per multiply-add; share of
the machine's peak, --peak-gflops, default derived from the CPU's flags and clock),
routed MMSR vs the largest model on every
tile (end to end, and estimated from per-class tile times measured in
interleaved rounds, which other jobs' load cannot skew), TVAT + tiling
overhead as a share of the total, output megapixels/s; optionally a tile-size
sweep and the peak RSS of a large image (in a child process, so the figure is
that job's own).

Without --bundle the generators are full-size but RANDOMLY INITIALISED:
figures are for timing only (TVAT routing depends on the image, not weights).

    python benchmarks/benchmark_reconstruction.py [--images DIR] [--sweep] [--rss-size 2000]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

RANDOM_SPECS = ("4-6w16", "8-6w32", "16-8w48")   # the shipped bundle's class models
CALIBRATED_BOUNDS = [0.8864, 1.4922]  # equal thirds of T91 + BSD200 LR sub-images


def nominal_peak() -> tuple:
    """(fp32 GFLOP/s, how): physical cores x FLOP per cycle from the flags (AVX-512:
    64, AVX2 + FMA: 32, else 16; two full-width FMA units, which AMD Zen 1 lacks: it
    does half) x the highest clock in /proc/cpuinfo. An upper bound; benchmarks/speed.py
    also measures a convolution's throughput."""
    from paddle_mmsr.runtime import physical_cores
    from paddle_mmsr.sr.precision import cpu_flags
    flags = cpu_flags()
    per_cycle = 64 if "avx512f" in flags else 32 if "fma" in flags else 16
    try:
        mhz = max(float(line.split(":", 1)[1]) for line in
                  Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("cpu MHz"))
    except (OSError, ValueError):
        mhz = 2000.0  # not Linux: a guess, said so
    cores = physical_cores()
    return (cores * per_cycle * mhz / 1e3,
            f"{cores} cores x {per_cycle} FLOP/cycle x {mhz:.0f} MHz (full-width FMA units)")


def make_random_bundle(root, specs=RANDOM_SPECS, bounds=CALIBRATED_BOUNDS, channels=64,
                       form="compact", flat_bound=None, seed=0):
    """A bundle of randomly initialised generators (timing only). ``channels`` is the
    width of specs without a "wC" suffix."""
    import paddle
    from paddle_mmsr.models.weights import make_bundle
    from paddle_mmsr.models import build_generator
    from paddle_mmsr.core.tvat import TVATSettings
    paddle.seed(seed)
    head = 3 if form == "compact" else 9
    opts = dict(channels=channels, form=form, head_kernel=head, tail_kernel=3)
    gens = [(s, opts, build_generator(s, 4, **opts)) for s in specs]
    return make_bundle(root, gens, TVATSettings(bounds=list(bounds)), flat_bound=flat_bound,
                       produced_by={"note": "random weights, for timing only"})


def multiply_adds(layer, tile: int) -> int:
    """Conv multiply-adds of one forward pass on a tile x tile input (counted by hooks
    on a real forward pass; PReLU, PixelShuffle and the bicubic skip are not counted)."""
    import paddle
    total = [0]

    def hook(conv, _inputs, out):
        o, i, kh, kw = conv.weight.shape
        total[0] += int(out.shape[2] * out.shape[3]) * o * i * kh * kw // conv._groups

    hooks = [m.register_forward_post_hook(hook) for m in layer.sublayers()
             if isinstance(m, paddle.nn.Conv2D)]
    try:
        with paddle.no_grad():
            layer(paddle.zeros([1, 3, tile, tile]))
    finally:
        for h in hooks:
            h.remove()
    return total[0]


def class_throughput(sr, tile_s: dict, tile=128, peak=None) -> dict:
    """Per class: seconds per tile, GMAC, effective GFLOP/s and share of ``peak``
    (default: ``nominal_peak``)."""
    peak = peak or nominal_peak()[0]
    from paddle_mmsr.models.weights import build_class_generator
    out = {}
    for c in sr.bundle.classes:
        macs = multiply_adds(build_class_generator(sr.bundle, c, load_weights=False), tile)
        gflops = 2 * macs / 1e9 / tile_s[c.id]
        out[c.id] = {"label": sr.label(c.id), "tile_s": tile_s[c.id], "gmac": macs / 1e9,
                     "gflops": gflops, "peak_share": gflops / peak}
    return out


def sample_photos(folder=None, limit=3) -> list:
    """(name, uint8 RGB) photos: from ``folder``, else scikit-image's."""
    from paddle_mmsr.image.io import list_images, read_image
    if folder:
        return [(p.name, read_image(p)) for p in list_images(folder)[:limit]]
    from skimage import data
    return [(n, getattr(data, n)()) for n in ("astronaut", "coffee", "chelsea")][:limit]


def mosaic(size: int) -> np.ndarray:
    """A size x size RGB photo mosaic (real texture, no upscaling)."""
    photos = [p for _, p in sample_photos()]
    out = np.zeros((size, size, 3), np.uint8)
    k = 0
    for y in range(0, size, 256):
        for x in range(0, size, 256):
            p = photos[k % len(photos)]
            k += 1
            oy, ox = (k * 37) % (p.shape[0] - 256), (k * 53) % (p.shape[1] - 256)
            h, w = min(256, size - y), min(256, size - x)
            out[y:y + h, x:x + w] = p[oy:oy + h, ox:ox + w]
    return out


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def best_interleaved(calls: dict, rounds: int) -> dict:
    """Best seconds of each zero-argument call over ``rounds`` rounds in turn, after
    one warm-up call each (oneDNN builds primitives per shape); taking turns lets
    load from other jobs hit every call alike."""
    for fn in calls.values():
        fn()
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for k, fn in calls.items():
            best[k] = min(best[k], _best(fn, 1))
    return best


def time_backends(bundle, tile=128, repeat=2) -> dict:
    """Largest generator on one tile: dygraph vs Paddle Inference (oneDNN)."""
    from paddle_mmsr.sr.inference import make_runner
    from paddle_mmsr.sr.route import largest_class
    entry = next(c for c in bundle.classes if c.id == largest_class(bundle))
    x = np.random.default_rng(0).random((1, 3, tile, tile), dtype=np.float32)
    res = {"spec": entry.spec, "tile": tile}
    outs = {}
    for backend in ("dygraph", "inference"):
        t = time.perf_counter()
        runner = make_runner(bundle, entry, backend)
        res[f"{backend}_setup_s"] = time.perf_counter() - t
        outs[backend] = runner.run(x)  # warm-up
        res[f"{backend}_s"] = _best(lambda: runner.run(x), repeat)
    res["max_abs_diff"] = float(np.abs(outs["dygraph"] - outs["inference"]).max())
    res["speedup"] = res["dygraph_s"] / res["inference_s"]
    return res


def time_classes(sr, tile=128, rounds=3) -> dict:
    """Seconds per tile for each class's runner, best of interleaved rounds
    (so load from other jobs hits every class alike)."""
    x = np.random.default_rng(0).random((1, 3, tile, tile), dtype=np.float32)
    return best_interleaved({c.id: (lambda r=sr.runner(c.id): r.run(x))
                             for c in sr.bundle.classes}, rounds)


def time_routing(sr, photos, repeat=1) -> dict:
    """Routed (tvat) vs the largest model everywhere (single), same photos:
    measured end to end, and estimated from per-class tile times and the
    routing shares (robust to load changes; flat tiles count as free, bicubic
    takes ~0.03 s a tile)."""
    sr.prepare("tvat")
    res = {"tile_s": time_classes(sr)}
    best = {}  # (routing, image index) -> fastest Reconstruction
    for i, (_, img) in enumerate(photos):
        for _ in range(repeat):  # routed and single alternate, so load drifts hit both
            for routing in ("tvat", "single"):
                r = sr.reconstruct(img, routing)
                key = (routing, i)
                if key not in best or r.timings["total"] < best[key].timings["total"]:
                    best[key] = r
    for routing in ("tvat", "single"):
        total, mpix, parts, counts = 0.0, 0.0, {}, {}
        for i in range(len(photos)):
            r = best[(routing, i)]
            total += r.timings["total"]
            mpix += r.image.shape[0] * r.image.shape[1] / 1e6
            for k, v in r.timings.items():
                parts[k] = parts.get(k, 0.0) + v
            for c in r.classes.tolist():
                counts[c] = counts.get(c, 0) + 1
        n = sum(counts.values())
        res[routing] = {"seconds": total, "mpix_out": mpix, "mpix_per_s": mpix / total,
                        "overhead_share": (parts["tvat"] + parts["tiling"]) / total,
                        "tvat_share": parts["tvat"] / total,
                        "tiling_share": parts["tiling"] / total,
                        "tiles": n, "counts": counts,
                        "share": {sr.label(c): counts[c] / n for c in sorted(counts)}}
    res["speedup_routed_vs_single"] = res["single"]["seconds"] / res["tvat"]["seconds"]
    cost = {k: sum(res["tile_s"].get(c, 0.0) * m for c, m in res[k]["counts"].items())
            for k in ("tvat", "single")}
    res["speedup_estimated"] = cost["single"] / cost["tvat"]
    return res


def tile_sweep(tiles=(64, 96, 128, 192), overlaps=(8, 16, 24), spec="16-8w48", rounds=3,
               channels=64) -> list:
    """Tile-size choice for one mid-size (random) generator: network seconds per
    LR megapixel at each tile size (best of interleaved rounds, so load from
    other jobs hits every size alike) times the overlap factor (T / (T - O))^2
    that tiling a large image costs."""
    from paddle_mmsr.core.manifest import load_bundle
    from paddle_mmsr.sr.inference import make_runner
    bundle = load_bundle(make_random_bundle(tempfile.mkdtemp(prefix="mmsr-sweep-"),
                                            specs=(spec,), bounds=[], channels=channels).root)
    runner = make_runner(bundle, bundle.classes[0], "inference")
    rng = np.random.default_rng(0)
    xs = {t: rng.random((1, 3, t, t), dtype=np.float32) for t in tiles}
    best = best_interleaved({t: (lambda x=xs[t]: runner.run(x)) for t in tiles}, rounds)
    rows = []
    for t in tiles:
        per_mpix = best[t] / (t * t / 1e6)
        for ov in overlaps:
            if ov >= t // 2:
                continue
            factor = (t / (t - ov)) ** 2
            rows.append({"tile": t, "overlap": ov, "tile_s": best[t], "s_per_lr_mpix": per_mpix,
                         "overlap_factor": factor, "s_per_lr_mpix_tiled": per_mpix * factor})
    return rows


def vm_peak_mib() -> float:
    """Peak resident set size of this process (VmHWM), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure_peak_rss(bundle_dir, size: int, routing="tvat", tile=None, overlap=None) -> dict:
    """Upscale a size x size LR mosaic in a child process; its time and peak RSS."""
    code = (
        "import json, sys, time\n"
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('bench', {str(Path(__file__).resolve())!r})\n"
        "bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)\n"
        "mosaic, vm_peak_mib = bench.mosaic, bench.vm_peak_mib\n"
        "from paddle_mmsr import MMSR\n"
        f"opts = {{k: v for k, v in dict(tile={tile!r}, overlap={overlap!r}).items() if v}}\n"
        f"sr = MMSR.load({str(bundle_dir)!r}, **opts); sr.prepare({routing!r})\n"
        f"img = mosaic({size})\n"
        "before = vm_peak_mib()\n"
        f"r = sr.reconstruct(img, {routing!r})\n"
        "print(json.dumps({'size': img.shape[0], 'out_shape': list(r.image.shape),\n"
        "  'seconds': r.timings['total'], 'peak_rss_mib': vm_peak_mib(),\n"
        "  'peak_rss_before_mib': before, 'timings': r.timings,\n"
        "  'share': {sr.label(int(k)): v for k, v in r.shares().items()}}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"peak-RSS child failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_benchmark(bundle_dir=None, images=None, sweep=False, rss_size=0, bounds=None,
                  flat_bound=None, repeat=1, channels=64, backends=True, routing=True,
                  log=print, peak=None, form="compact") -> dict:
    """Run the benchmark; returns every figure as a dict (and logs as it goes)."""
    from paddle_mmsr import MMSR
    peak = peak or nominal_peak()[0]
    from paddle_mmsr.core.manifest import load_bundle
    from paddle_mmsr.sr.route import largest_class
    tmp = None
    if bundle_dir is None:
        tmp = tempfile.mkdtemp(prefix="mmsr-bench-")
        bundle_dir = tmp
        make_random_bundle(tmp, bounds=CALIBRATED_BOUNDS if bounds is None else bounds,
                           channels=channels, flat_bound=flat_bound, form=form)
        log(f"bundle: RANDOM weights (timing only), specs {', '.join(RANDOM_SPECS)}, "
            f"form {form}")
    bundle = load_bundle(bundle_dir)
    photos = sample_photos(images)
    res = {"load_avg_start": os.getloadavg(), "threads": os.cpu_count(),
           "bounds": bundle.tvat.bounds, "flat_bound": bundle.flat_bound,
           "images": [f"{n} {p.shape[1]}x{p.shape[0]}" for n, p in photos]}
    log(f"images (LR): {', '.join(res['images'])}; TVAT bounds {bundle.tvat.bounds}, "
        f"flat bound {bundle.flat_bound}")
    if backends:
        res["backends"] = b = time_backends(bundle)
        log(f"G{b['spec']} one {b['tile']}px tile: dygraph {b['dygraph_s']:.2f} s, Paddle "
            f"Inference {b['inference_s']:.2f} s ({b['speedup']:.1f}x, max diff "
            f"{b['max_abs_diff']:.1e})")
    if routing:
        sr = MMSR(bundle)
        res["routing"] = r = time_routing(sr, photos, repeat)
        for k in ("tvat", "single"):
            v = r[k]
            log(f"{k:6s}: {v['seconds']:.2f} s, {v['mpix_per_s']:.3f} MP/s out, overhead "
                f"{100 * v['overhead_share']:.1f}% (tvat {100 * v['tvat_share']:.1f}%, tiling "
                f"{100 * v['tiling_share']:.1f}%), tiles {v['tiles']}, share "
                + ", ".join(f"{c} {100 * s:.0f}%" for c, s in v["share"].items()))
        res["throughput"] = tp = class_throughput(sr, r["tile_s"], peak=peak)
        for c, v in tp.items():
            log(f"one 128px tile, {v['label']}: {1000 * v['tile_s']:.0f} ms, {v['gmac']:.2f} GMAC, "
                f"{v['gflops']:.0f} GFLOP/s ({100 * v['peak_share']:.0f}% of {peak:.0f}); "
                f"{v['tile_s'] / tp[largest_class(bundle)]['tile_s']:.2f} of the largest")
        log(f"routed vs single: {r['speedup_routed_vs_single']:.2f}x faster end to end, "
            f"{r['speedup_estimated']:.2f}x from per-class tile times x routing shares")
    if sweep:
        res["sweep"] = tile_sweep(channels=channels)
        for row in res["sweep"]:
            log(f"tile {row['tile']:3d} overlap {row['overlap']:2d}: one tile {row['tile_s']:.2f} s,"
                " "
                f"{row['s_per_lr_mpix']:.1f} s/LR-MP x overlap {row['overlap_factor']:.2f} = "
                f"{row['s_per_lr_mpix_tiled']:.1f} s per LR megapixel")
    if rss_size:
        res["rss"] = m = measure_peak_rss(bundle_dir, rss_size)
        log(f"{m['size']}x{m['size']} LR -> {m['out_shape']}: {m['seconds']:.0f} s, peak RSS "
            f"{m['peak_rss_mib']:.0f} MiB (after load {m['peak_rss_before_mib']:.0f} MiB), share "
            + ", ".join(f"{c} {100 * s:.0f}%" for c, s in m["share"].items()))
    res["load_avg_end"] = os.getloadavg()
    log(f"load average start {res['load_avg_start'][0]:.1f}, end {res['load_avg_end'][0]:.1f} "
        f"(other jobs on this machine slow every figure alike)")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", help="a trained bundle (default: random-weight bundle)")
    ap.add_argument("--images", help="folder of LR photos (default: scikit-image photos)")
    ap.add_argument("--bounds", type=float, nargs="+", help="TVAT bounds of the random bundle")
    ap.add_argument("--flat-bound", type=float, help="flat (bicubic) bound of the random bundle")
    ap.add_argument("--channels", type=int, default=64,
                    help="width of the random bundle's specs that have no wC suffix")
    ap.add_argument("--form", default="compact", choices=["compact", "fast", "srgan"],
                    help="generator form of the random bundle")
    ap.add_argument("--peak-gflops", type=float,
                    help="the machine's peak float32 GFLOP/s, for the share column (default: "
                         "from the CPU flags and clock, see nominal_peak)")
    ap.add_argument("--no-backends", action="store_true", help="skip dygraph vs inference")
    ap.add_argument("--no-routing", action="store_true", help="skip routed vs single")
    ap.add_argument("--sweep", action="store_true", help="also time tile sizes / overlaps")
    ap.add_argument("--rss-size", type=int, default=0, help="also measure peak RSS at this LR size")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", help="write all figures to this JSON file")
    args = ap.parse_args(argv)
    res = run_benchmark(args.bundle, args.images, args.sweep, args.rss_size, args.bounds,
                        args.flat_bound, args.repeat, args.channels, not args.no_backends,
                        not args.no_routing, log=lambda s: print(s, flush=True),
                        peak=args.peak_gflops, form=args.form)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
