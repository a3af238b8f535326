"""Upscale a video with MMSR: stream frames through ffmpeg, keep the sound.

    from paddle_mmsr import MMSR
    from paddle_mmsr.sr.video import upscale_video
    sr = MMSR.load("pretrained/mmsr_x4_bicubic")
    upscale_video(sr, "film.mp4", "film_x4.mp4")

The range is cut into segments of ``segment`` seconds, each encoded on its own
into ``.<name>.parts/`` next to the output and renamed when complete; the
routing state at the end of each segment is stored beside it. A job started
again with the same input and options skips the finished segments, so a killed
run resumes and gives the same file as an uninterrupted one. The segments are
joined (stream copy) with the input's audio (copied) into a temporary name,
then renamed to the output; the parts folder is removed.

Temporal stability: a tile keeps its previous frame's class while that class
is still reached by its score moved by ``stability`` (relative, 0.15 = 15%),
so a score hovering at a class bound does not switch models every frame.
"""
from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import threading
import time
from pathlib import Path

import numpy as np

from paddle_mmsr.image.video_io import FrameReader, SegmentWriter, VideoError, encoder_args, \
    mux, probe
from paddle_mmsr.sr.route import route

__all__ = ["StableRouter", "upscale_video", "parts_dir", "flicker"]

FORMAT = "paddle-mmsr-video-parts/1"
CONTAINERS = (".mp4", ".m4v", ".mov", ".mkv")


class StableRouter:
    """Hysteresis on routed classes (a ``router`` for ``MMSR.reconstruct``)."""

    def __init__(self, bundle, routing: str = "tvat", margin: float = 0.15):
        if margin < 0:
            raise ValueError(f"stability margin must be >= 0, got {margin}")
        self.bundle, self.routing, self.margin = bundle, routing, float(margin)
        self.previous = None
        self.switches = 0       # class changes kept (after the first frame)

    def __call__(self, scores, classes) -> np.ndarray:
        classes = np.asarray(classes, np.int64)
        prev = self.previous
        if prev is not None and prev.shape == classes.shape and self.margin > 0:
            lo = route(np.asarray(scores) * (1 - self.margin), self.bundle, self.routing)
            hi = route(np.asarray(scores) * (1 + self.margin), self.bundle, self.routing)
            classes = np.where((prev == lo) | (prev == hi), prev, classes)
        if prev is not None and prev.shape == classes.shape:
            self.switches += int((prev != classes).sum())
        self.previous = classes.copy()
        return classes

    def state(self):
        return None if self.previous is None else self.previous.tolist()

    def load(self, state) -> None:
        self.previous = None if state is None else np.asarray(state, np.int64)


def parts_dir(dst) -> Path:
    dst = Path(dst)
    return dst.with_name(f".{dst.name}.parts")


def _job_key(src: Path, sr, options: dict) -> dict:
    st = src.stat()
    weights = hashlib.sha256("".join(c.sha256 or c.weights for c in sr.bundle.classes)
                             .encode()).hexdigest()[:16]
    return {"format": FORMAT, "input": str(src.resolve()), "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "bundle": weights, "tile": sr.tile,
            "overlap": sr.overlap, **options}


def _prepare_parts(folder: Path, key: dict) -> list:
    """Make ``folder`` hold parts of exactly this job; returns notes."""
    job_file = folder / "job.json"
    if folder.is_dir():
        try:
            old = json.loads(job_file.read_text())
        except (OSError, ValueError):
            old = None
        if old == key:
            return []
        if old is None:  # no job.json of ours: not our folder
            raise VideoError(f"{folder} exists but holds no job.json of this tool; it is not "
                             "deleted. Remove it yourself, or choose another -o")
        shutil.rmtree(folder)
        note = [f"{folder}: parts of a different job (input or options changed) removed; "
                "starting over"]
    else:
        note = []
    folder.mkdir(parents=True)
    tmp = folder / "job.json.tmp"
    tmp.write_text(json.dumps(key, indent=1))
    os.replace(tmp, job_file)
    return note


def _segment_done(folder: Path, k: int) -> bool:
    return (folder / f"seg_{k:06d}.mkv").is_file() and (folder / f"seg_{k:06d}.json").is_file()


def interrupted_note(dst, segment: float) -> str:
    """What a stopped run of ``dst`` leaves to resume from, in one line."""
    folder = parts_dir(dst)
    done = len(list(folder.glob("seg_*.json"))) if folder.is_dir() else 0
    if not done:
        return (f"interrupted before the first {segment:g} s segment was finished: a new run "
                "starts over (--segment sets the length of the resumable parts)")
    return (f"interrupted: {done} finished segment{'s' * (done > 1)} kept in {folder}; "
            "run the same command again to resume")


class _ProgressLines:
    """Progress as plain lines (a log, a pipe, a notebook): at most one every ``every`` s."""

    def __init__(self, total: int, done: int, log, every: float = 30.0):
        self.total, self.done, self.log, self.every = total, done, log, every
        self.t0 = self.last = time.perf_counter()
        self.start = done

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every or self.done == self.total:
            self.last = now
            rate = (now - self.t0) / max(self.done - self.start, 1)
            left = rate * (self.total - self.done)
            self.log(f"frame {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), "
                     f"{rate:.2f} s/frame, {left / 60:.1f} min left")

    def close(self) -> None:
        pass


def upscale_video(sr, src, dst, *, crf: int = 18, preset: str = "medium", lossless: bool = False,
                  start: float | None = None, duration: float | None = None,
                  routing: str = "tvat", stability: float = 0.15, segment: float = 10.0,
                  deinterlace: str = "auto", overwrite: bool = False, progress: bool = True,
                  log=print, info=None, depth: int = 2) -> dict:
    """Upscale ``src`` into ``dst`` (.mp4, .m4v, .mov or .mkv); returns a summary dict.
    ``log(text)`` receives notes about the input; ``progress``: a tqdm bar on stderr
    (True), progress lines through ``log`` at most every 30 s ("lines") or none;
    ``info``: ``probe(src, start, duration, deinterlace)`` when already made.
    Decoding, upscaling and encoding overlap: frames are read and written in two
    threads, at most ``depth`` waiting on each side (0: one after another)."""
    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() not in CONTAINERS:
        raise VideoError(f"{dst}: the output must end in {', '.join(CONTAINERS)}")
    if dst.resolve() == src.resolve():
        raise VideoError(f"{dst}: the output would overwrite the input")
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} exists (pass overwrite=True / --overwrite to replace it)")
    if deinterlace not in ("auto", "on", "off"):
        raise ValueError(f"deinterlace must be auto, on or off, got {deinterlace!r}")
    if segment <= 0:
        raise ValueError(f"segment must be > 0 seconds, got {segment}")
    from paddle_mmsr.locks import OutputLock
    with OutputLock(dst.with_name(f".{dst.name}.lock"), f"video output {dst}",
                    "wait for that run to finish, or choose another -o"):
        return _upscale_video(sr, src, dst, crf=crf, preset=preset, lossless=lossless,
                              start=start, duration=duration, routing=routing,
                              stability=stability, segment=segment, deinterlace=deinterlace,
                              overwrite=overwrite, progress=progress, log=log, info=info,
                              depth=depth)


def _upscale_video(sr, src: Path, dst: Path, *, crf, preset, lossless, start, duration, routing,
                   stability, segment, deinterlace, overwrite, progress, log, info,
                   depth) -> dict:
    info = info or probe(src, start, duration, deinterlace)
    from paddle_mmsr.image.video_io import check_encoder_size
    check_encoder_size(info.width * sr.scale, info.height * sr.scale)  # before any frame
    for note in info.notes:
        log(f"note: {note}")
    if not info.audio:
        log("note: no audio stream; the output has none")
    per = max(1, int(round(segment * float(info.fps))))
    n_seg = -(-info.frames // per)
    codec = encoder_args(crf, preset, lossless, info.sar)
    options = {"start": start, "duration": duration, "routing": routing,
               "stability": stability, "segment_frames": per, "codec": codec,
               "filters": info.filters, "frames": info.frames}
    folder = parts_dir(dst)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for note in _prepare_parts(folder, _job_key(src, sr, options)):
        log(f"note: {note}")
    router = StableRouter(sr.bundle, routing, stability)
    s = sr.scale
    done = [k for k in range(n_seg) if _segment_done(folder, k)]
    if n_seg == 1 and info.frames > 1:
        log(f"note: the clip is one segment ({segment:g} s): a stopped run starts over "
            "(--segment sets the length of the resumable parts)")
    initial = sum(min(per, info.frames - k * per) for k in done)
    bar = None
    if progress == "lines":
        bar = _ProgressLines(info.frames, initial, log)
    elif progress:
        from tqdm import tqdm
        bar = tqdm(total=info.frames, initial=initial,
                   unit="frame", desc=src.name[:24], dynamic_ncols=True)
    reader, at, new, t0, switches = None, 0, 0, time.perf_counter(), 0
    skipped = False    # the previous segment was done before: take its routing state
    try:
        for k in range(n_seg):
            first, count = k * per, min(per, info.frames - k * per)
            seg = folder / f"seg_{k:06d}.mkv"
            if _segment_done(folder, k):
                skipped = True
                continue
            if skipped:
                skipped = False
                state = json.loads((folder / f"seg_{k - 1:06d}.json").read_text())
                router.load(state["classes"])
            if reader is None or at != first:
                if reader is not None:
                    reader.close()
                reader, at = FrameReader(info, start, duration, first), first
            writer = SegmentWriter(seg, info.width * s, info.height * s, info.fps, codec)
            behind = Background(writer.write, depth)
            try:
                for frame in frames_ahead(reader, count, depth):
                    if frame is None:
                        raise VideoError(f"{src}: the decoder gave {at} frames, "
                                         f"{info.frames} were counted")
                    at += 1
                    behind.put(_upscale_frame(sr, frame, routing, router))
                    if bar is not None:
                        bar.update(1)
                behind.join()
                writer.finish()
            except BaseException:
                writer.abort()  # first: a write blocked on the encoder's pipe then fails
                behind.stop()
                raise
            tmp = folder / f"seg_{k:06d}.json.tmp"
            tmp.write_text(json.dumps({"frames": count, "classes": router.state()}))
            os.replace(tmp, folder / f"seg_{k:06d}.json")
            switches += router.switches
            router.switches = 0
            new += 1
    finally:
        if reader is not None:
            reader.close()
        if bar is not None:
            bar.close()
    tmp_out = dst.with_name(f".{dst.stem}.partial{dst.suffix}")
    note = mux([folder / f"seg_{k:06d}.mkv" for k in range(n_seg)], src, tmp_out, start,
               duration, with_audio=bool(info.audio))
    if note:
        log(f"note: {note}")
    if overwrite:
        os.replace(tmp_out, dst)
    else:  # never over a file that appeared meanwhile
        from paddle_mmsr.image.io import publish_new
        try:
            publish_new(tmp_out, dst)
        except FileExistsError:
            tmp_out.unlink(missing_ok=True)
            raise
    shutil.rmtree(folder, ignore_errors=True)
    return {"complete": True, "frames": info.frames, "segments": n_seg, "new_segments": new,
            "fps": float(info.fps), "size": (info.width * s, info.height * s),
            "audio": info.audio, "class_switches": switches,
            "seconds": time.perf_counter() - t0, "notes": info.notes}


def frames_ahead(reader, count: int, depth: int = 2):
    """The next ``count`` frames of ``reader`` (None past its end), read by a thread up to
    ``depth`` frames ahead; ``depth=0`` reads in the caller's thread."""
    if depth <= 0:
        for _ in range(count):
            yield reader.read()
        return
    q, stop = queue.Queue(depth), threading.Event()

    def work():
        try:
            for _ in range(count):
                item = ("frame", reader.read())
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        pass
                if stop.is_set():
                    return
        except BaseException as e:  # handed to the caller
            q.put(("error", e))

    t = threading.Thread(target=work, daemon=True, name="frame-reader")
    t.start()
    try:
        for _ in range(count):
            kind, item = q.get()
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        t.join()


class Background:
    """Calls ``fn(item)`` in a thread, in order, with at most ``depth`` items waiting
    (``put`` blocks beyond); a failure is raised by the next ``put`` or ``join``.
    ``depth=0`` calls ``fn`` in the caller's thread."""

    def __init__(self, fn, depth: int = 2):
        self.fn, self.depth, self.error = fn, depth, None
        if depth > 0:
            self.q = queue.Queue(depth)
            self.t = threading.Thread(target=self._work, daemon=True, name="frame-writer")
            self.t.start()

    def _work(self) -> None:
        while True:
            item = self.q.get()
            try:
                if item is _STOP:
                    return
                if self.error is None:
                    self.fn(item)
            except BaseException as e:
                self.error = e
            finally:
                self.q.task_done()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, item) -> None:
        if self.depth <= 0:
            self.fn(item)
            return
        self._raise()
        self.q.put(item)

    def join(self) -> None:
        """Wait until every item is done; raise a failure."""
        if self.depth > 0:
            self.q.join()
            self.stop()
            self._raise()

    def stop(self) -> None:
        """End the thread (after the items already waiting)."""
        if self.depth > 0 and self.t.is_alive():
            self.error = self.error or _Stopped()
            self.q.put(_STOP)
            self.t.join()
            if isinstance(self.error, _Stopped):
                self.error = None


class _Stopped(Exception):
    """Marks a stopped Background: the items still waiting are dropped."""


_STOP = object()


def _upscale_frame(sr, frame: np.ndarray, routing: str, router) -> np.ndarray:
    """One rgb24 frame -> rgb24 ``scale`` x larger; gray frames (R = G = B) run as gray."""
    gray = bool((frame[:, :, 0] == frame[:, :, 1]).all() and (frame[:, :, 1] == frame[:, :, 2]).all())
    img = frame[:, :, 0] if gray else frame
    out = sr.reconstruct(img, routing, router=router).image
    return np.repeat(out[:, :, None], 3, axis=2) if gray else out


def flicker(frames) -> float:
    """Mean absolute frame-to-frame difference (0-255 scale) over a frame sequence."""
    total, n, prev = 0.0, 0, None
    for f in frames:
        f = np.asarray(f, np.float32)
        if prev is not None:
            total += float(np.abs(f - prev).mean())
            n += 1
        prev = f
    return total / max(n, 1)
