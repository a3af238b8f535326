"""Upscale images with an MMSR bundle.

    python tools/upscale.py INPUT [INPUT ...] -o OUT_DIR [options]

INPUT: files, folders (searched recursively) or globs. Each output keeps the
input's name (and its path below a folder input) with the chosen extension.
A file that cannot be read is reported on one line and skipped; the exit code
is 1 when any file failed, 2 when nothing could start (bad bundle or options).
Outputs are written atomically, never over an input, and never over an
existing file without --overwrite. SIGINT and SIGTERM stop after removing the
file being written (exit 130 / 143); finished outputs are kept.
"""
from __future__ import annotations

import argparse
import glob
import os
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

from paddle_mmsr.core.shipped import DEFAULT_BUNDLE, resolve_bundle
from paddle_mmsr.image.io import PNG_COMPRESSION
from paddle_mmsr.cli import needs_paddle
from paddle_mmsr.core.devices import BACKENDS, DEVICES
from paddle_mmsr.sr.precision import PRECISIONS
from paddle_mmsr.sr.route import ROUTINGS

os.environ.setdefault("GLOG_minloglevel", "2")  # keep Paddle's C++ log quiet

WRITABLE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def _png_level(text: str) -> int:
    value = _int_at_least(0)(text)
    if value > 9:
        raise argparse.ArgumentTypeError(f"zlib levels are 0..9, got {value}")
    return value


def _bytes(text: str) -> int:
    """``4G``, ``512M``, ``1.5G``, ``800K`` or a number of bytes."""
    units = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}
    t = text.strip().upper().rstrip("B")
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 4G or 512M, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return int(value)


def available_memory() -> int | None:
    """Bytes of RAM available now (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None


MEMORY_SHARE = 0.8            # default --max-memory: this share of the available RAM
RUNTIME_BYTES = 256 * 2 ** 20  # networks, Paddle's buffers, one batch of tiles


def peak_bytes(h: int, w: int, scale: int, tile: int, itemsize: int = 1) -> int:
    """Estimated peak memory of upscaling one HxW image: the decoded input and a
    float copy, the output, two float bands of tile rows, and the runtime."""
    inp = h * w * 3 * (itemsize + 4)
    out = h * scale * w * scale * 3 * itemsize
    band = 2 * tile * scale * w * scale * 3 * 4
    return inp + out + band + RUNTIME_BYTES


def check_memory(path: Path, scale: int, tile: int, limit: int | None) -> None:
    """MemoryError naming the sizes when ``path`` would need more than ``limit``."""
    if limit is None:
        return
    from PIL import Image
    try:
        with Image.open(path) as im:  # reads the header only
            (w, h), deep = im.size, im.mode.startswith("I") or im.mode == "F"
    except Exception:
        return  # read_image reports an unreadable file
    need = peak_bytes(h, w, scale, tile, 2 if deep else 1)
    if need > limit:
        raise MemoryError(f"{path}: {w}x{h} would need about {_size(need)} to upscale "
                          f"x{scale} (output {w * scale}x{h * scale}), more than the "
                          f"{_size(limit)} allowed; pass --max-memory to raise it, "
                          "or cut the image into parts")


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2 ** 30 else f"{n / 2**20:.0f} MiB"


def _device(text: str) -> str:
    if text not in DEVICES and not (text.startswith("gpu:") and text[4:].isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: use cpu, gpu or gpu:N")
    return text


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="mmsr-upscale", description="MMSR x4 super-resolution: "
                                 "tiles routed by texture (TVAT) to generators of matching size.")
    ap.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    ap.add_argument("-o", "--out-dir", required=True, help="folder for the outputs")
    ap.add_argument("--bundle", help="bundle folder, or the name of a shipped bundle "
                    f"(default: {DEFAULT_BUNDLE})")
    ap.add_argument("--tile", type=_int_at_least(1), help="tile size in LR px (default 128)")
    ap.add_argument("--overlap", type=_int_at_least(0), help="tile overlap in LR px (default 16)")
    ap.add_argument("--device", type=_device, default="cpu",
                    help="cpu, gpu or gpu:N (the N-th visible GPU)")
    ap.add_argument("--tensorrt", action="store_true", help="with --device gpu: use TensorRT")
    ap.add_argument("--backend", choices=BACKENDS, default="auto",
                    help="auto: Paddle Inference; dygraph only for a known, named limitation")
    ap.add_argument("--routing", choices=ROUTINGS, default="tvat",
                    help="single: the largest model on every tile (for comparison)")
    ap.add_argument("--routing-map", metavar="PATH",
                    help="also draw which model handled each tile: an image file for one input, "
                         "else a folder receiving NAME_routing.png per input")
    ap.add_argument("--format", choices=("png", "jpg", "same"), default="png",
                    help="output format; same = the input's (png when not writable)")
    ap.add_argument("--png-compression", type=_png_level, default=PNG_COMPRESSION, metavar="0-9",
                    help="zlib level of PNG outputs: 0 fastest, 9 smallest; the pixels are the "
                         "same at every level (default: %(default)s)")
    ap.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    ap.add_argument("--batch", type=_int_at_least(1),
                    help="tiles per network call (default: 1 on CPU, 4 on GPU)")
    ap.add_argument("--threads", type=_int_at_least(1), help="CPU threads (default: all)")
    ap.add_argument("--precision", choices=PRECISIONS, default="auto",
                    help="auto: bf16 where the CPU (AVX512-BF16 or AMX) or GPU has it and the "
                         "bundle's recorded bf16 PSNR cost is at most 0.01 dB, else fp32")
    ap.add_argument("--max-memory", type=_bytes, metavar="SIZE",
                    help="refuse an image whose estimated peak memory is above SIZE (e.g. 8G; "
                         f"default: {MEMORY_SHARE * 100:.0f}%% of the RAM available at start)")
    ap.add_argument("-q", "--quiet", action="store_true",
                    help="no progress bars (also off when stderr is not a terminal)")
    return ap.parse_args(argv)


def expand_inputs(inputs, out_dir: Path, notes: list | None = None):
    """[(path, name below OUT_DIR or None, error or None)] in the given order;
    ``notes`` receives a line per folder holding files that are not images."""
    from paddle_mmsr.image.io import IMAGE_EXTS, list_images
    jobs = []
    out_dir = out_dir.resolve()

    def outside_out_dir(f: Path) -> bool:  # earlier outputs inside an input folder are not inputs
        return out_dir not in f.resolve().parents

    for text in inputs:
        p = Path(text)
        if p.is_dir():
            skipped = []
            files = [f for f in list_images(p, skipped) if outside_out_dir(f)]
            if not files:
                jobs.append((p, None, f"{p}: folder holds no images"))
            others = sum(map(outside_out_dir, skipped))
            if others and notes is not None:
                notes.append(f"{p}: {others} file(s) without an image extension left out "
                             f"(read: {', '.join(sorted(IMAGE_EXTS))})")
            jobs += [(f, f.relative_to(p), None) for f in files]
        elif not p.exists() and glob.has_magic(text):
            files = sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file())
            if not files:
                jobs.append((p, None, f"{text}: no file matches"))
            jobs += [(f, Path(f.name), None) for f in files]
        else:  # a file, or a missing path that plan() reports
            jobs.append((p, Path(p.name), None))
    return jobs


def output_path(out_dir: Path, rel: Path, fmt: str) -> Path:
    ext = {"png": ".png", "jpg": ".jpg"}.get(fmt)
    if ext is None:
        ext = rel.suffix.lower() if rel.suffix.lower() in WRITABLE_EXTS else ".png"
    return out_dir / rel.with_suffix(ext)


def map_path(option: str, rel: Path, single: bool) -> Path:
    p = Path(option)
    if single and p.suffix.lower() in WRITABLE_EXTS:
        return p
    return p / rel.with_name(rel.stem + "_routing.png")


class Report:
    """Counts, per-class tile counts and one line per problem."""

    def __init__(self, write):
        self.write = write
        self.done = self.failed = self.skipped = 0
        self.tiles = {}

    def fail(self, message: str) -> None:
        self.failed += 1
        self.write(f"error: {message}")

    def skip(self, message: str) -> None:
        self.skipped += 1
        self.write(f"skipped: {message}")

    def summary(self, seconds: float, label) -> str:
        n = sum(self.tiles.values())
        share = ", ".join(f"{label(c)} {100 * k / n:.0f}%" for c, k in sorted(self.tiles.items()))
        return (f"{self.done} done, {self.failed} failed, {self.skipped} skipped in "
                f"{seconds:.1f} s" + (f"; tiles: {share}" if n else ""))


def process(sr, job, img, args, report: Report, tile_bar, map_file):
    """Upscale one read image (and draw its routing map): (output image, map or None)."""
    import numpy as np
    from paddle_mmsr.image.io import to_rgb8
    from paddle_mmsr.sr.route import routing_map

    def progress(done, total):
        if tile_bar is not None:
            tile_bar.total = total
            tile_bar.n = done
            tile_bar.refresh()

    if tile_bar is not None:
        tile_bar.reset()
        tile_bar.set_description(job.name[:24])
    r = sr.reconstruct(img, args.routing, progress)
    for c in r.classes.tolist():
        report.tiles[c] = report.tiles.get(c, 0) + 1
    pic = None
    if map_file is not None:
        ids = sorted(set(r.classes.tolist()))
        pic = np.asarray(routing_map(to_rgb8(img), r.grid, r.classes,
                                     {c: sr.label(c) for c in ids}))
    return r.image, pic


def save_outputs(path: Path, out: Path, image, map_file, pic, args) -> None:
    """Write the output (with the input's ICC profile) and the routing map."""
    from paddle_mmsr.image.io import read_icc, write_image
    write_image(out, image, overwrite=args.overwrite, icc=read_icc(path),
                png_compression=args.png_compression)
    if map_file is not None:
        write_image(map_file, pic, overwrite=args.overwrite, png_compression=args.png_compression)


class Overlap:
    """Reading the next input and writing the last output run in two threads while
    the network works on the current image: at most one image read ahead and one
    output waiting to be written (bounded memory). A write's failure is its file's."""

    def __init__(self, steps, report: Report, read):
        from concurrent.futures import ThreadPoolExecutor
        self.read_image, self.report = read, report
        self.runnable = [k for k, st in enumerate(steps) if st[3] is None]
        self.steps, self.reads, self.pending = steps, {}, None
        self.reader, self.writer = ThreadPoolExecutor(1), ThreadPoolExecutor(1)
        self._read_after(-1)

    def _read_after(self, k: int) -> None:
        nxt = next((j for j in self.runnable if j > k), None)
        if nxt is not None and nxt not in self.reads:
            self.reads[nxt] = self.reader.submit(self.read_image, self.steps[nxt][0])

    def image(self, k: int):
        """Step ``k``'s image (raises its read error); starts reading the next one."""
        try:
            return self.reads.pop(k).result()
        finally:
            self._read_after(k)

    def write(self, path, *args) -> None:
        self.settle()
        self.pending = (path, self.writer.submit(save_outputs, path, *args))

    def settle(self) -> None:
        """Wait for the last write; count it done or failed."""
        if self.pending is None:
            return
        path, future = self.pending
        self.pending = None
        try:
            future.result()
            self.report.done += 1
        except FileExistsError as e:
            self.report.fail(str(e))
        except Exception as e:
            self.report.fail(f"{path}: {type(e).__name__}: {e}")

    def close(self) -> None:
        """Finish the write under way (outputs are written atomically: whole or not at
        all), drop reads not needed any more."""
        self.reader.shutdown(wait=False, cancel_futures=True)
        self.writer.shutdown(wait=True)


def load_model(bundle, args, **options):
    """The bundle loaded with a command's options (tile, overlap, backend, device,
    threads, precision, routing, quiet) and ``options``, SIGTERM caught like Ctrl-C,
    its precision said, ready to run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from paddle_mmsr.sr.inference import check_device
        from paddle_mmsr.sr.reconstruct import MMSR
        import paddle  # noqa: F401  installs a fatal-signal handler for SIGTERM...
    catch_stops()  # ...which ours replaces
    options.update({k: v for k, v in dict(tile=args.tile, overlap=args.overlap).items()
                    if v is not None})
    check_device(args.device)
    sr = MMSR.load(bundle, backend=args.backend, device=args.device, threads=args.threads,
                   precision=args.precision, on_export=first_use_note(), **options)
    if not args.quiet:
        print(f"precision: {sr.precision} ({sr.precision_reason})", file=sys.stderr)
    sr.prepare(args.routing)
    return sr


def first_use_note():
    """An ``on_export`` hook saying once why the first run of a bundle takes longer."""
    said = []

    def note(entry) -> None:
        if not said:
            said.append(True)
            print("preparing models (first use)", file=sys.stderr, flush=True)
    return note


def plan(args, notes: list | None = None) -> list:
    """[(input, output, routing map or None, problem or None)], checked before any work:
    problem is ("fail", text) or ("skip", text)."""
    out_dir = Path(args.out_dir)
    jobs = expand_inputs(args.inputs, out_dir, notes)
    inputs = {j[0].resolve() for j in jobs if j[0].exists()}
    single = len(jobs) == 1
    claimed, steps = {}, []
    for path, rel, error in jobs:
        if error:
            steps.append((path, None, None, ("fail", error)))
            continue
        if not path.is_file():
            steps.append((path, None, None, ("fail", f"{path}: no such file")))
            continue
        out = output_path(out_dir, rel, args.format)
        map_file = map_path(args.routing_map, rel, single) if args.routing_map else None
        targets = [t.resolve() for t in (out, map_file) if t is not None]
        problem = None
        if any(t in inputs for t in targets):
            problem = ("fail", f"{path}: output {out} would overwrite an input file; "
                               "choose another -o")
        elif any(t in claimed for t in targets):
            other = next(claimed[t] for t in targets if t in claimed)
            problem = ("fail", f"{path}: output {out} is also the output of {other}; "
                               "rename one of them")
        elif not args.overwrite and any(t.exists() for t in targets):
            existing = next(t for t in targets if t.exists())
            problem = ("skip", f"{path}: {existing} exists (pass --overwrite to replace it)")
        else:
            claimed.update((t, path) for t in targets)
        steps.append((path, out, map_file, problem))
    return steps


def tiling_error(args) -> str | None:
    from paddle_mmsr.core.tiles import DEFAULT_OVERLAP, DEFAULT_TILE
    tile = DEFAULT_TILE if args.tile is None else args.tile
    overlap = DEFAULT_OVERLAP if args.overlap is None else args.overlap
    if overlap >= tile:
        return (f"--overlap ({overlap}) must be smaller than --tile ({tile})"
                + ("" if args.tile is not None else "; lower --overlap or raise --tile"))
    return None


def write_error(folder: Path, option: str) -> str | None:
    """Why nothing can be written in ``folder`` (created if missing), or None."""
    from paddle_mmsr.image.io import TMP_PREFIX
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=TMP_PREFIX + "probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f"{option} {folder}: cannot write there ({e.strerror or e})"
    return None


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM: unwinds like Ctrl-C, so partial files are removed."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum, frame):
    raise Stopped(signum)


def catch_stops() -> dict:
    """SIGINT and SIGTERM raise Stopped; returns the previous handlers."""
    return {s: signal.signal(s, _raise_stopped) for s in (signal.SIGINT, signal.SIGTERM)}


@needs_paddle
def main(argv=None) -> int:
    args = parse_args(argv)
    from paddle_mmsr.runtime import tune_process
    tune_process()  # before Paddle loads; never over the user's settings
    if args.max_memory is None:
        avail = available_memory()
        args.max_memory = int(avail * MEMORY_SHARE) if avail else None
    problem = tiling_error(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    handlers = catch_stops()
    try:
        return _run(args)
    except Stopped as e:
        print(f"\nstopped by {e}: no partial file is left; finished outputs are "
              "kept (run again to do the rest)", file=sys.stderr)
        return 128 + e.signum
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)


def _run(args) -> int:
    try:
        bundle = resolve_bundle(args.bundle)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        print(f"error: -o {out_dir} is a file, not a folder", file=sys.stderr)
        return 2
    if args.tensorrt and not args.device.startswith("gpu"):
        print("error: --tensorrt needs --device gpu", file=sys.stderr)
        return 2
    notes = []
    steps = plan(args, notes)
    if (args.routing_map and Path(args.routing_map).suffix.lower() in WRITABLE_EXTS
            and len(steps) > 1):
        print(f"error: --routing-map {args.routing_map} names one image, but there are "
              "several inputs; give a folder", file=sys.stderr)
        return 2
    for line in notes:
        print(f"note: {line}", file=sys.stderr)
    bars = not args.quiet and sys.stderr.isatty()  # plain lines when logged to a file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tqdm import tqdm
    report = Report(lambda s: tqdm.write(s, file=sys.stderr) if bars else print(s, file=sys.stderr))
    start, sr = time.perf_counter(), None
    if any(problem is None for *_, problem in steps):
        folders = [(out_dir, "-o")]
        if args.routing_map:
            rm = Path(args.routing_map)
            folders.append((rm.parent if rm.suffix.lower() in WRITABLE_EXTS else rm,
                            "--routing-map"))
        for folder, option in folders:
            problem = write_error(folder, option)
            if problem:
                print(f"error: {problem}", file=sys.stderr)
                return 2
        from paddle_mmsr.core.manifest import BundleError
        try:
            sr = load_model(bundle, args, batch_size=args.batch, tensorrt=args.tensorrt)
        except (BundleError, RuntimeError, ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    from paddle_mmsr.image.io import ImageReadError
    file_bar = tqdm(total=len(steps), desc="files", unit="file", disable=not bars, file=sys.stderr)
    tile_bar = (tqdm(total=0, unit="tile", leave=False, position=1, file=sys.stderr)
                if bars else None)
    from paddle_mmsr.image.io import read_image

    def read(path):  # refuses, before decoding, an image too big for the memory allowed
        check_memory(path, sr.scale, sr.tile, args.max_memory)
        return read_image(path)

    io = Overlap(steps, report, read)
    try:
        for k, (path, out, map_file, problem) in enumerate(steps):
            file_bar.update(1)
            if problem is not None:
                (report.fail if problem[0] == "fail" else report.skip)(problem[1])
                continue
            try:
                image, pic = process(sr, path, io.image(k), args, report, tile_bar, map_file)
                io.write(path, out, image, map_file, pic, args)
            except (ImageReadError, MemoryError) as e:
                report.fail(str(e))
            except KeyboardInterrupt:
                raise
            except Exception as e:  # one bad file must not stop the batch
                report.fail(f"{path}: {type(e).__name__}: {e}")
        io.settle()
    finally:
        io.close()
    if tile_bar is not None:
        tile_bar.close()
    file_bar.close()
    label = sr.label if sr is not None else str
    print(report.summary(time.perf_counter() - start, label), file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
