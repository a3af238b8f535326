"""How fast is upscaling on this machine, and where does the time go?

    python benchmarks/speed.py [--base REF] [--rounds 3] [--out benchmarks/results/speed]

One command, one JSON and one Markdown table (``OUT.json``, ``OUT.md``):

- machine: CPU, flags that matter, physical cores, Paddle version, load average
  before and after (the machine may be shared: every comparison below is a ratio
  of runs interleaved in the same rounds, so load skews both sides alike);
- peak: fp32 GFLOP/s measured (a large matmul, the best of several) and the
  figure the CPU flags and clock would give (which assumes full-width FMA units);
- models: per class of each bundle, seconds per 128 px tile with oneDNN's fusions
  as exported now against the old export (fusions off), in fp32 and (where the CPU
  has it) bf16; GFLOP/s and share of the measured peak; batches of 4 tiles
  against 4 calls, and 64 px tiles (batch 1 and 4) per LR pixel;
- settings: the process settings of paddle_mmsr/runtime.py against Paddle's
  defaults, each in its own child process (wall, CPU and system seconds, minor
  page faults per tile);
- end to end: the upscale command on scikit-image photos (about 1 MP out each),
  seconds per output megapixel per bundle and precision, and this checkout against
  ``--base`` (a git ref, run from a temporary worktree) with a warm cache;
  start-up: the command on one 32 px image;
- video: frames per second at 352x288 and 720x576 input, model time against wall.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
BUNDLES = ("mmsr_x4_bicubic", "mmsr_x4_gan", "srgan_16-8_x4_bicubic")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "brick", "gravel", "grass",
          "immunohistochemistry")
OLD_PASSES = ("conv_activation_mkldnn_fuse_pass", "conv_activation_onednn_fuse_pass",
              "elementwise_act_onednn_fuse_pass", "conv_elementwise_add_onednn_fuse_pass")


def machine() -> dict:
    from paddle_mmsr.runtime import physical_cores
    from paddle_mmsr.sr.precision import cpu_flags
    import paddle
    flags = cpu_flags()
    model, mhz = "", []
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and not model:
            model = line.split(":", 1)[1].strip()
        if line.startswith("cpu MHz"):
            mhz.append(float(line.split(":", 1)[1]))
    return {"cpu": model, "mhz": max(mhz) if mhz else None, "physical_cores": physical_cores(),
            "flags": sorted(f for f in flags if f in ("avx2", "fma", "avx512f", "avx512_bf16",
                                                      "amx_bf16", "amx_tile")),
            "paddle": paddle.__version__, "python": platform.python_version(),
            "load_before": os.getloadavg()}


def peak_runner(tmp: Path):
    """A wide 3x3 convolution (128 -> 128 channels) run by Paddle Inference like the
    class models: the best this engine does on this CPU, and the yardstick of their
    share. Returns (runner, input, GFLOP per run)."""
    import paddle
    from paddle_mmsr.sr.inference import PredictorRunner
    layer = paddle.nn.Conv2D(128, 128, 3, padding=1)
    spec = paddle.static.InputSpec([None, 128, None, None], "float32", "x")
    paddle.jit.save(layer, str(tmp / "peak" / "model"), input_spec=[spec])
    ext = ".json" if (tmp / "peak" / "model.json").exists() else ".pdmodel"
    r = PredictorRunner(tmp / "peak" / f"model{ext}", tmp / "peak" / "model.pdiparams")
    x = np.random.default_rng(0).random((1, 128, 96, 96), dtype=np.float32)
    return r, x, 2 * 128 * 128 * 9 * 96 * 96 / 1e9


def _runner(bundle, entry, precision="fp32", fused=True):
    from paddle_mmsr.sr import inference
    saved = inference._SKIPPED_ONEDNN_PASSES
    if not fused:
        inference._SKIPPED_ONEDNN_PASSES = OLD_PASSES
    try:
        return inference.make_runner(bundle, entry, "inference", precision=precision)
    finally:
        inference._SKIPPED_ONEDNN_PASSES = saved


def _timed(run, x):
    w, c = time.perf_counter(), time.process_time()
    run(x)
    return time.perf_counter() - w, time.process_time() - c


def models(tmp: Path, rounds: int, bf16: bool, log, bundles=("mmsr_x4_bicubic",
                                                                "srgan_16-8_x4_bicubic")) -> tuple:
    """Per class: tile times (wall and process CPU, median of interleaved rounds) of
    the export as now, the old export (fusions off), bf16, batches, 64 px tiles; and
    the share of the peak kernel's throughput measured in the same rounds."""
    from benchmark_reconstruction import multiply_adds
    from paddle_mmsr.core.manifest import load_bundle
    from paddle_mmsr.models.weights import build_class_generator
    rows = []
    pk, px, pflop = peak_runner(tmp)
    pk.run(px)
    peaks = {"wall": [], "cpu": []}
    x1 = np.random.default_rng(0).random((1, 3, 128, 128), dtype=np.float32)
    x4 = np.random.default_rng(1).random((4, 3, 128, 128), dtype=np.float32)
    s4 = np.random.default_rng(2).random((4, 3, 64, 64), dtype=np.float32)
    for name in bundles:
        b = load_bundle(ROOT / "pretrained" / name)
        for e in b.classes:
            runs = {"fused": _runner(b, e), "unfused": _runner(b, e, fused=False)}
            if bf16:
                runs["bf16"] = _runner(b, e, "bf16")
            cases = {k: (r.run, x1) for k, r in runs.items()}
            cases.update({"fused_b4": (runs["fused"].run, x4),
                          "fused_t64": (runs["fused"].run, s4[:1]),
                          "fused_t64_b4": (runs["fused"].run, s4), "peak": (pk.run, px)})
            for run, x in cases.values():
                run(x)  # warm: oneDNN builds its kernels for the shape
            wall = {k: [] for k in cases}
            cpu = {k: [] for k in cases}
            for _ in range(rounds):
                for k, (run, x) in cases.items():
                    w, c = _timed(run, x)
                    wall[k].append(w)
                    cpu[k].append(c)
            med = {k: float(np.median(v)) for k, v in wall.items()}
            medc = {k: float(np.median(v)) for k, v in cpu.items()}
            peaks["wall"] += [pflop / t for t in wall["peak"]]
            peaks["cpu"] += [pflop / t for t in cpu["peak"]]
            gflop = 2 * multiply_adds(build_class_generator(b, e, load_weights=False), 128) / 1e9

            def ratio(a, b_, times=wall):
                return float(np.median(np.array(times[a]) / np.array(times[b_])))

            row = {"bundle": name, "class": e.id, "spec": e.spec, "gflop_per_tile": gflop,
                   "tile_s": med["fused"], "tile_cpu_s": medc["fused"],
                   "unfused_tile_s": med["unfused"], "unfused_over_fused": ratio("unfused", "fused"),
                   "unfused_over_fused_cpu": ratio("unfused", "fused", cpu),
                   "gflops": gflop / med["fused"], "gflops_cpu": gflop / medc["fused"],
                   "peak_share": ratio("peak", "fused") * gflop / pflop,
                   "peak_share_cpu": ratio("peak", "fused", cpu) * gflop / pflop,
                   "batch4_over_4x1": ratio("fused_b4", "fused") / 4,
                   "t64x4_over_t128": ratio("fused_t64", "fused") * 4,
                   "t64b4_over_t128": ratio("fused_t64_b4", "fused")}
            if bf16:
                row["bf16_tile_s"] = med["bf16"]
                row["fp32_over_bf16"] = ratio("fused", "bf16")
            log(f"  {name} class {e.id} ({e.spec}): {med['fused'] * 1e3:.0f} ms/tile "
                f"({medc['fused'] * 1e3:.0f} ms CPU); old export {row['unfused_over_fused']:.2f}x; "
                f"{100 * row['peak_share']:.0f}% of the peak kernel")
            rows.append(row)
    peak = {"kernel": "Conv2D 128->128 3x3 on 96x96, Paddle Inference (oneDNN), fp32",
            "measured_gflops": float(np.max(peaks["wall"])),
            "measured_gflops_median": float(np.median(peaks["wall"])),
            "measured_gflops_per_cpu_s": float(np.median(peaks["cpu"]))}
    return rows, peak


CHILD = """
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
from paddle_mmsr.runtime import tune_process
tune_process()
import numpy as np
from paddle_mmsr.core.manifest import load_bundle
from paddle_mmsr.sr.inference import make_runner
b = load_bundle({bundle!r})
r = make_runner(b, b.classes[-1], "inference")
x = np.random.default_rng(0).random((1, 3, 128, 128), dtype=np.float32)
r.run(x)
u0, f0, t = resource.getrusage(resource.RUSAGE_SELF), None, time.perf_counter()
for _ in range({n}):
    r.run(x)
wall = time.perf_counter() - t
u1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps(dict(wall=wall / {n}, cpu=(u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime) / {n},
                      sys=(u1.ru_stime - u0.ru_stime) / {n}, minflt=(u1.ru_minflt - u0.ru_minflt) / {n})))
"""

SETTINGS = {  # name: environment changes
    "Paddle defaults": {"PADDLE_MMSR_TUNING": "0"},
    "KMP_BLOCKTIME=0 only": {"PADDLE_MMSR_TUNING": "0", "KMP_BLOCKTIME": "0"},
    "malloc only": {"KMP_BLOCKTIME": "200"},
    "runtime.py (all)": {},
}


def settings(rounds: int, tiles: int, log) -> dict:
    code = CHILD.format(root=str(ROOT), bundle=str(ROOT / "pretrained" / "mmsr_x4_bicubic"), n=tiles)
    res = {k: [] for k in SETTINGS}
    for _ in range(rounds):
        for name, env in SETTINGS.items():
            e = {k: v for k, v in os.environ.items()
                 if k not in ("KMP_BLOCKTIME", "PADDLE_MMSR_TUNING") and not k.startswith("MALLOC_")}
            out = subprocess.run([sys.executable, "-c", code], env={**e, **env},
                                 capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(out.stderr[-2000:])
            res[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = {}
    for name, runs in res.items():
        table[name] = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
        table[name]["wall_vs_defaults"] = float(np.median(
            [r["wall"] / d["wall"] for r, d in zip(runs, res["Paddle defaults"])]))
        table[name]["cpu_vs_defaults"] = float(np.median(
            [r["cpu"] / d["cpu"] for r, d in zip(runs, res["Paddle defaults"])]))
        log(f"  {name}: {table[name]}")
    return table


def photos(folder: Path, size: int = 256, count: int = len(PHOTOS)) -> list:
    from skimage import data
    from paddle_mmsr.image.io import write_image
    folder.mkdir(parents=True, exist_ok=True)
    for n in PHOTOS[:count]:
        a = getattr(data, n)()
        a = np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a[:, :, :3]
        y, x = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
        write_image(folder / f"{n}.png", np.ascontiguousarray(a[y:y + size, x:x + size]))
    return sorted(folder.iterdir())


def _cli(checkout: Path, inputs, out: Path, *options) -> tuple:
    """(wall, CPU) seconds of one run of the upscale command of ``checkout``."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    t, c = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([sys.executable, "-m", "paddle_mmsr.cli.upscale", *map(str, inputs),
                        "-o", str(out), "--overwrite", "-q", *options], cwd=checkout, env=env,
                       capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{checkout}: {r.stderr[-2000:]}")
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (time.perf_counter() - t,
            u.ru_utime + u.ru_stime - c.ru_utime - c.ru_stime)


def end_to_end(tmp: Path, base: str | None, rounds: int, precisions, log, bundles=BUNDLES,
               count: int = len(PHOTOS)) -> dict:
    inputs = photos(tmp / "in", count=count)
    tiny = tmp / "tiny.png"
    from paddle_mmsr.image.io import read_image, write_image
    write_image(tiny, read_image(inputs[0])[:32, :32])
    out_mp = sum(read_image(p).shape[0] * read_image(p).shape[1] * 16 for p in inputs) / 1e6
    checkouts = {"this": ROOT}
    if base:
        wt = tmp / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(wt), base],
                       check=True, capture_output=True)
        checkouts["base"] = wt
    cases = {}
    for name in bundles:
        for p in precisions:
            cases[f"{name} {p}"] = ("this", ["--bundle", str(ROOT / "pretrained" / name),
                                             "--precision", p])
    if base and "mmsr_x4_bicubic" in bundles:  # the base's own copy of the default bundle
        cases["base mmsr_x4_bicubic fp32"] = ("base", ["--bundle", str(
            checkouts["base"] / "pretrained" / "mmsr_x4_bicubic")])
    try:
        for k, (c, opts) in cases.items():  # warm the export caches
            _cli(checkouts[c], [tiny], tmp / "warm", *opts)
        times = {k: [] for k in cases}
        startup = {c: [] for c in checkouts}
        for _ in range(rounds):
            for k, (c, opts) in cases.items():
                times[k].append(_cli(checkouts[c], inputs, tmp / "out", *opts))
            for c in checkouts:
                startup[c].append(_cli(checkouts[c], [tiny], tmp / "tinyout"))
    finally:
        if base:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(checkouts["base"])], capture_output=True)
    def med(v, i):
        return float(np.median([x[i] for x in v]))

    res = {"images": len(inputs), "output_mp": out_mp,
           "seconds_per_output_mp": {k: med(v, 0) / out_mp for k, v in times.items()},
           "cpu_seconds_per_output_mp": {k: med(v, 1) / out_mp for k, v in times.items()},
           "startup_s": {c: med(v, 0) for c, v in startup.items()},
           "startup_cpu_s": {c: med(v, 1) for c, v in startup.items()}}
    if "base mmsr_x4_bicubic fp32" in times:  # same rounds: ratios of interleaved runs
        b, t = np.array(times["base mmsr_x4_bicubic fp32"]), np.array(times["mmsr_x4_bicubic fp32"])
        res["base_over_this"] = float(np.median(b[:, 0] / t[:, 0]))
        res["base_over_this_cpu"] = float(np.median(b[:, 1] / t[:, 1]))
    log(f"  {json.dumps(res)}")
    return res


def video(tmp: Path, log, frames: int = 6) -> dict:
    from paddle_mmsr import MMSR
    from paddle_mmsr.image.video_io import write_video
    from paddle_mmsr.sr.video import upscale_video
    from skimage import data
    src = data.astronaut()
    sr = MMSR.load(ROOT / "pretrained" / "mmsr_x4_bicubic")
    sr.prepare()
    inner = sr.reconstruct
    network = [0.0]

    def timed(*a, **k):
        r = inner(*a, **k)
        network[0] += r.timings["network"] + r.timings["bicubic"]
        return r

    sr.reconstruct = timed
    res = {}
    for w, h, n in ((352, 288, frames), (720, 576, max(2, frames // 2))):
        big = np.pad(src, ((0, max(0, h + 4 * n - 512)), (0, max(0, w + 4 * n - 512)), (0, 0)),
                     mode="reflect")
        frames = [np.ascontiguousarray(big[i * 4:i * 4 + h, i * 4:i * 4 + w]) for i in range(n)]
        clip = write_video(tmp / f"clip_{w}.mp4", frames, fps=25)
        network[0] = 0.0
        t = time.perf_counter()
        upscale_video(sr, clip, tmp / f"up_{w}.mp4", preset="veryfast", progress=False,
                      overwrite=True, log=lambda s: None)
        wall = time.perf_counter() - t
        res[f"{w}x{h}"] = {"frames": n, "fps": n / wall, "wall_s": wall,
                           "model_share": network[0] / wall}
        log(f"  {w}x{h}: {res[f'{w}x{h}']}")
    return res


def markdown(r: dict) -> str:
    m, p = r["machine"], r["peak"]
    lines = [f"# Speed on {m['cpu']} ({m['physical_cores']} cores, {', '.join(m['flags'])})", "",
             f"Paddle {m['paddle']}, Python {m['python']}; load average "
             f"{m['load_before'][0]:.1f} before, {r['load_after'][0]:.1f} after "
             "(a shared machine: every comparison is a median ratio of runs interleaved in "
             f"the same rounds). Made by `python benchmarks/speed.py {r['args']}` on {r['date']}.",
             "", f"Nominal fp32 peak: {p['nominal_gflops']:.0f} GFLOP/s ({p['nominal_basis']})."]
    models = r.get("models", [])
    bf16 = bool(models) and "bf16_tile_s" in models[0]
    if models:
        lines += ["", f"Measured peak kernel: {p['kernel']}: best {p['measured_gflops']:.0f} "
                  f"GFLOP/s wall (median {p['measured_gflops_median']:.0f}), "
                  f"{p['measured_gflops_per_cpu_s']:.0f} GFLOP per CPU second.",
                  "", "Per class, one 128 px tile (fp32 unless said): time now (wall, CPU); the old "
                  "export (oneDNN fusions off) as a multiple of now; GFLOP/s; share of the peak "
                  "kernel's throughput in the same rounds (wall, CPU); a batch of 4 per tile, 4 "
                  "tiles of 64 px, one batch of 4 tiles of 64 px, each against one 128 px tile "
                  "(same LR area)" + ("; bf16" if bf16 else "") + ".", "",
                  "| bundle | class | spec | ms (CPU ms) | old export | GFLOP/s | share of peak "
                  "(CPU) | batch 4 | 64 px x4 | 64 px batch 4 |" + (" bf16 ms | fp32/bf16 |" if bf16 else ""),
                  "|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if bf16 else "")]
    for x in models:
        lines.append(f"| {x['bundle']} | {x['class']} | {x['spec']} | {x['tile_s'] * 1e3:.0f} "
                     f"({x['tile_cpu_s'] * 1e3:.0f}) | {x['unfused_over_fused']:.2f} "
                     f"(CPU {x['unfused_over_fused_cpu']:.2f}) | {x['gflops']:.1f} | "
                     f"{100 * x['peak_share']:.0f}% ({100 * x['peak_share_cpu']:.0f}%) | "
                     f"{x['batch4_over_4x1']:.2f} | {x['t64x4_over_t128']:.2f} | "
                     f"{x['t64b4_over_t128']:.2f} |"
                     + (f" {x['bf16_tile_s'] * 1e3:.0f} | {x['fp32_over_bf16']:.2f} |" if bf16 else ""))
    if "settings" in r:
        lines += ["", "Process settings (largest class, 128 px tiles, one child process each):", "",
                  "| settings | wall ms/tile | CPU ms/tile | system ms/tile | minor faults/tile "
                  "| wall vs defaults | CPU vs defaults |", "|---|---|---|---|---|---|---|"]
        for k, v in r["settings"].items():
            lines.append(f"| {k} | {v['wall'] * 1e3:.0f} | {v['cpu'] * 1e3:.0f} | "
                         f"{v['sys'] * 1e3:.0f} | {v['minflt']:.0f} | {v['wall_vs_defaults']:.2f} | "
                         f"{v['cpu_vs_defaults']:.2f} |")
    if "end_to_end" in r:
        e = r["end_to_end"]
        lines += ["", f"End to end (`mmsr-upscale`, {e['images']} photos, {e['output_mp']:.1f} MP "
                  "out, warm cache, PNG out; start-up included):", "",
                  "| run | s per output MP (wall) | CPU s per output MP |", "|---|---|---|"]
        lines += [f"| {k} | {v:.2f} | {e['cpu_seconds_per_output_mp'][k]:.2f} |"
                  for k, v in e["seconds_per_output_mp"].items()]
        lines += ["", "Start-up (the command on one 32 px image): " + ", ".join(
            f"{k} {v:.2f} s wall, {e['startup_cpu_s'][k]:.2f} s CPU"
            for k, v in e["startup_s"].items()) + "."]
        if "base_over_this" in e:
            lines.append(f"The base ({r['base']}) takes {e['base_over_this']:.2f}x this checkout's "
                         f"wall time ({e['base_over_this_cpu']:.2f}x its CPU time) for the same "
                         "photos.")
    if "video" in r:
        lines += ["", "Video (mmsr_x4_bicubic, x264 veryfast): " + "; ".join(
            f"{k}: {v['fps']:.2f} fps, model {100 * v['model_share']:.0f}% of wall"
            for k, v in r["video"].items()) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", help="git ref to compare end to end with (e.g. a commit of main)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip", nargs="*", default=[],
                    choices=("models", "settings", "end_to_end", "video"))
    ap.add_argument("--bundles", nargs="+", default=list(BUNDLES),
                    help="shipped bundles to time (pretrained/NAME; default: %(default)s)")
    ap.add_argument("--model-bundles", nargs="+", default=["mmsr_x4_bicubic", "srgan_16-8_x4_bicubic"],
                    help="bundles whose class models are timed tile by tile")
    ap.add_argument("--frames", type=int, default=6, help="frames of the 352x288 clip "
                    "(the 720x576 one has half)")
    ap.add_argument("--photos", type=int, default=len(PHOTOS),
                    help="how many of the 256 px photos to upscale end to end")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speed"))
    args = ap.parse_args(argv)
    from paddle_mmsr.runtime import tune_process
    from paddle_mmsr.sr.precision import cpu_has_bf16
    tune_process()

    def log(s):
        print(s, file=sys.stderr, flush=True)

    r = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
         "args": " ".join(argv if argv is not None else sys.argv[1:]), "base": args.base}
    r["machine"] = machine()
    from benchmark_reconstruction import nominal_peak
    gflops, basis = nominal_peak()
    r["peak"] = {"nominal_gflops": gflops, "nominal_basis": basis}
    bf16 = cpu_has_bf16()
    precisions = ("fp32", "bf16") if bf16 else ("fp32",)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():  # after each section: a run stopped later keeps what it measured
        r["load_after"] = os.getloadavg()
        out.with_suffix(".json").write_text(json.dumps(r, indent=1))
        out.with_suffix(".md").write_text(markdown(r))

    with tempfile.TemporaryDirectory() as tmp:
        if "end_to_end" not in args.skip:
            r["end_to_end"] = end_to_end(Path(tmp), args.base, args.rounds, precisions, log,
                                         args.bundles, args.photos)
            save()
        if "video" not in args.skip:
            r["video"] = video(Path(tmp), log, args.frames)
            save()
        if "models" not in args.skip:
            r["models"], measured = models(Path(tmp), max(3, 2 * args.rounds), bf16, log,
                                           args.model_bundles)
            r["peak"].update(measured)
            save()
        if "settings" not in args.skip:
            r["settings"] = settings(args.rounds, 4, log)
            save()
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
