"""Video in and out through the ffmpeg that ``imageio-ffmpeg`` bundles.

Frames travel as raw rgb24 through pipes to and from ffmpeg subprocesses, one
frame at a time, so memory does not depend on the length of the film.
``probe`` reads what ``ffmpeg -i`` prints (the bundle has no ffprobe) and
one fast decode pass (``idet`` and ``vfrdet`` filters) that counts frames and
finds variable frame rates and interlacing.
"""
from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["VideoError", "VideoInfo", "ffmpeg_exe", "probe", "FrameReader", "SegmentWriter",
           "mux", "count_frames", "write_video", "read_frames"]

_NTSC = {"23.98": Fraction(24000, 1001), "29.97": Fraction(30000, 1001),
         "59.94": Fraction(60000, 1001), "47.95": Fraction(48000, 1001),
         "119.88": Fraction(120000, 1001)}


class VideoError(ValueError):
    """Input that cannot be upscaled as a video (with the reason)."""


def ffmpeg_exe() -> str:
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: Fraction               # frames per second of the output (the input's average)
    duration: float | None      # seconds of the container, if known
    codec: str
    pix_fmt: str
    field_order: str            # progressive | tt | bb | ... | unknown
    sar: str | None             # sample aspect ratio "N:D" when not square
    audio: list = field(default_factory=list)    # codec name per audio stream
    others: int = 0             # subtitle / data streams (not copied)
    frames: int = 0             # frames in the chosen range, after the filters
    expected: int | None = None  # frames the container's duration promises (None: unknown)
    vfr: bool = False
    interlaced: bool = False
    filters: list = field(default_factory=list)  # ffmpeg filters applied before upscaling
    notes: list = field(default_factory=list)    # what was done about the input, for the user


def _run(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *args],
                          capture_output=True, **kw)


def _ff(path) -> str:
    """A file name for ffmpeg's command line: absolute, behind ``file:``, so a name
    with ``:`` (``a:b.mp4``) is never taken for a protocol."""
    return "file:" + os.path.abspath(path)


def _concat_line(path) -> str:
    """One line of an ffmpeg concat list; a quote in the name is escaped."""
    return "file '" + Path(path).resolve().as_posix().replace("'", "'\\''") + "'\n"


def _range_args(start, duration) -> list:
    out = []
    if start:
        out += ["-ss", f"{float(start):.6f}"]
    if duration:
        out += ["-t", f"{float(duration):.6f}"]
    return out


def _parse_fps(text: str) -> Fraction:
    if text in _NTSC:
        return _NTSC[text]
    if text.endswith("k"):
        return Fraction(text[:-1]) * 1000
    return Fraction(text).limit_denominator(1001)


def probe(path, start=None, duration=None, deinterlace: str = "auto") -> VideoInfo:
    """What the video is and how it will be read; raises VideoError on a bad input."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    text = _run(["-i", _ff(path)]).stderr.decode(errors="replace")
    if "Input #0" not in text:
        last = [l for l in text.strip().splitlines() if l.strip()]
        raise VideoError(f"{path}: not a video ffmpeg can read ({last[-1] if last else 'no output'})")
    streams = re.findall(r"Stream #0:\d+[^:]*: (Video|Audio|Subtitle|Data|Attachment): (.*)", text)
    video = [s for kind, s in streams if kind == "Video" and "attached pic" not in s]
    if not video:
        raise VideoError(f"{path}: no video stream (found: "
                         f"{', '.join(k.lower() for k, _ in streams) or 'nothing'})")
    v = video[0]
    codec = v.split(",")[0].split()[0]
    m = re.search(r", (\w+)(?:\(([^)]*)\))?, (\d+)x(\d+)", v)
    if not m:
        raise VideoError(f"{path}: cannot read the frame size of the video stream: {v}")
    pix_fmt, extra, width, height = m.group(1), m.group(2) or "", int(m.group(3)), int(m.group(4))
    fps_m = re.search(r"([\d.]+k?) fps", v) or re.search(r"([\d.]+k?) tbr", v)
    if not fps_m:
        raise VideoError(f"{path}: the video stream has no frame rate: {v}")
    fps = _parse_fps(fps_m.group(1))
    sar_m = re.search(r"SAR (\d+):(\d+)", v)
    sar = f"{sar_m.group(1)}:{sar_m.group(2)}" if sar_m and sar_m.group(1) != sar_m.group(2) \
        else None
    words = [w.strip() for w in extra.split(",")]
    orders = {"progressive": "progressive", "top first": "tt", "bottom first": "bb",
              "top coded first (swapped)": "tb", "bottom coded first (swapped)": "bt"}
    field_order = next((orders[w] for w in words if w in orders), "unknown")
    d_m = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    dur = int(d_m.group(1)) * 3600 + int(d_m.group(2)) * 60 + float(d_m.group(3)) if d_m else None
    audio = [s.split(",")[0].split()[0] for kind, s in streams if kind == "Audio"]
    others = sum(kind in ("Subtitle", "Data") for kind, _ in streams)
    info = VideoInfo(path, width, height, fps, dur, codec, pix_fmt, field_order, sar, audio, others)
    _analyse(info, start, duration, deinterlace)
    return info


def _analyse(info: VideoInfo, start, duration, deinterlace: str) -> None:
    """Count frames, detect VFR and interlacing, choose the filters."""
    res = _run([*_range_args(start, duration), "-i", _ff(info.path), "-map", "0:v:0",
                "-vf", "idet,vfrdet", "-f", "null", "-"])
    text = res.stderr.decode(errors="replace")
    if res.returncode:
        raise VideoError(f"{info.path}: the video stream cannot be decoded: "
                         f"{text.strip().splitlines()[-1] if text.strip() else res.returncode}")
    frames = _last_frame_count(text)
    if not frames:
        raise VideoError(f"{info.path}: no video frames in the chosen range")
    vfr_m = re.search(r"VFR:([\d.]+) \((\d+)/(\d+)\)", text)
    info.vfr = bool(vfr_m and int(vfr_m.group(2)) > 0)
    idet = re.search(r"Multi frame detection: TFF:\s*(\d+) BFF:\s*(\d+) Progressive:\s*(\d+)", text)
    if deinterlace == "on":
        info.interlaced = True
    elif deinterlace == "auto":
        if info.field_order in ("tt", "bb", "tb", "bt"):
            info.interlaced = True
        elif info.field_order == "unknown" and idet:
            tff, bff, prog = map(int, idet.groups())
            info.interlaced = tff + bff > 3 * prog and tff + bff >= 0.5 * frames
    if info.interlaced:
        info.filters.append("yadif=mode=send_frame:parity=auto:deint=all")
        info.notes.append(f"interlaced (field order {info.field_order}): deinterlaced with "
                          "yadif, one frame per frame (same frame count and rate); "
                          "--deinterlace off keeps the fields as they are")
    if info.vfr:
        info.filters.append(f"fps={info.fps.numerator}/{info.fps.denominator}")
        info.notes.append(f"variable frame rate ({vfr_m.group(2)} of {vfr_m.group(3)} frame "
                          f"steps differ): converted to constant {float(info.fps):.3f} fps "
                          "(frames repeated or dropped to keep the timing and the sound in sync)")
    if info.filters:  # the filters may change the count
        frames = count_frames(info.path, start, duration, info.filters)
    info.frames = frames
    if info.duration:
        span = max(0.0, info.duration - float(start or 0))
        span = min(span, float(duration)) if duration else span
        info.expected = int(round(span * float(info.fps)))
    if info.others:
        info.notes.append(f"{info.others} subtitle/data stream(s) are not copied")


def short_stream(info: VideoInfo) -> str | None:
    """A warning when the stream ends well before its container says (a partial
    download, a cut file): frames read against frames expected; else None."""
    if info.expected and info.frames < info.expected - max(2, 0.02 * info.expected):
        return (f"{info.path}: the video stream ends after {info.frames} frames, but its "
                f"duration promises about {info.expected} (a partial download or a cut file?)")
    return None


def _last_frame_count(text: str) -> int:
    counts = re.findall(r"frame=\s*(\d+)", text)
    return int(counts[-1]) if counts else 0


def count_frames(path, start=None, duration=None, filters=()) -> int:
    """Frames of the first video stream (after ``filters``), by decoding."""
    vf = ["-vf", ",".join(filters)] if filters else []
    res = _run([*_range_args(start, duration), "-i", _ff(path), "-map", "0:v:0", *vf,
                "-f", "null", "-"])
    if res.returncode:
        raise VideoError(f"{path}: cannot decode: {res.stderr.decode(errors='replace')[-300:]}")
    return _last_frame_count(res.stderr.decode(errors="replace"))


class FrameReader:
    """rgb24 frames (HxWx3 uint8) of ``info``'s range, from frame ``first`` on."""

    def __init__(self, info: VideoInfo, start=None, duration=None, first: int = 0):
        self.shape = (info.height, info.width, 3)
        filters = list(info.filters) + ([f"select=gte(n\\,{int(first)})"] if first else [])
        vf = ["-vf", ",".join(filters)] if filters else []
        self._proc = subprocess.Popen(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
             *_range_args(start, duration), "-i", _ff(info.path), "-map", "0:v:0", *vf,
             "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def read(self) -> np.ndarray | None:
        """The next frame, or None at the end."""
        n = int(np.prod(self.shape))
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self._proc.stdout.readinto(view[got:])
            if not k:
                break
            got += k
        if got == 0:
            return None
        if got < n:
            raise VideoError(f"truncated frame from the decoder ({got} of {n} bytes)")
        return np.frombuffer(buf, np.uint8).reshape(self.shape)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for s in (self._proc.stdout, self._proc.stderr):
            s.close()


MAX_ENCODER_SIDE = 16384  # libx264 (and libx264rgb): the widest / tallest frame it opens


def check_encoder_size(width: int, height: int) -> None:
    """VideoError when libx264 cannot take a ``width`` x ``height`` frame (measured with
    the bundled ffmpeg: 16384 x 4096 encodes, 16392 wide or 16384 x 16384 does not)."""
    if max(width, height) > MAX_ENCODER_SIDE or width * height >= MAX_ENCODER_SIDE ** 2:
        raise VideoError(f"the upscaled frames would be {width}x{height}: more than the H.264 "
                         f"encoder takes (at most {MAX_ENCODER_SIDE} px a side, and less than "
                         f"{MAX_ENCODER_SIDE}x{MAX_ENCODER_SIDE}); cut or downscale the input "
                         "first")


def encoder_args(crf: int, preset: str, lossless: bool, sar: str | None) -> list:
    """ffmpeg output options of the video stream: H.264 yuv420p, or lossless RGB H.264."""
    if lossless:
        args = ["-c:v", "libx264rgb", "-qp", "0", "-preset", preset, "-pix_fmt", "rgb24"]
    else:
        args = ["-c:v", "libx264", "-crf", str(int(crf)), "-preset", preset, "-pix_fmt", "yuv420p"]
    if sar:
        args += ["-vf", f"setsar={sar.replace(':', '/')}"]
    return args


class SegmentWriter:
    """Encode rgb24 frames into ``final`` (Matroska): written as ``*.part.mkv``
    and renamed only when ffmpeg has finished, so ``final`` is always complete."""

    def __init__(self, final: Path, width: int, height: int, fps: Fraction, codec_args: list):
        self.final = Path(final)
        self.part = self.final.with_suffix(".part.mkv")
        self.frames = 0
        self._proc = subprocess.Popen(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y",
             "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
             "-framerate", f"{fps.numerator}/{fps.denominator}", "-i", "pipe:0",
             *codec_args, "-f", "matroska", _ff(self.part)],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, frame: np.ndarray) -> None:
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame, np.uint8).data)
        except BrokenPipeError:
            raise VideoError(f"encoder stopped: {self._proc.stderr.read().decode(errors='replace')}")
        self.frames += 1

    def finish(self) -> None:
        self._proc.stdin.close()
        err = self._proc.stderr.read().decode(errors="replace")
        if self._proc.wait():
            raise VideoError(f"encoding {self.final.name} failed: {err.strip()}")
        os.replace(self.part, self.final)

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self.part.unlink(missing_ok=True)


def mux(segments: list, source: Path, dst_tmp: Path, start=None, duration=None,
        with_audio: bool = True) -> str:
    """Concatenate ``segments`` (stream copy) with the audio of ``source`` (copied; AAC
    when the container refuses the codec) into ``dst_tmp``. Returns a note or ''."""
    listing = dst_tmp.with_name(dst_tmp.name + ".txt")
    listing.write_text("".join(_concat_line(s) for s in segments))
    cut = dst_tmp.with_name(dst_tmp.name + ".audio.mka")
    base = ["-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", _ff(listing)]
    if with_audio:
        audio_src = source
        if start or duration:
            # cut on its own, -ss after -i: packet-exact (input seeking with stream copy
            # starts at the video keyframe before, and shifts the video of the other input)
            res = _run(["-v", "error", "-y", "-i", _ff(source), *_range_args(start, duration),
                        "-map", "0:a", "-c", "copy", "-f", "matroska", _ff(cut)])
            if res.returncode:
                raise VideoError(f"cutting the audio failed: "
                                 f"{res.stderr.decode(errors='replace').strip()[-500:]}")
            audio_src = cut
        base += ["-i", _ff(audio_src), "-map", "0:v:0", "-map", "1:a"]
    else:
        base += ["-map", "0:v:0"]
    tail = ["-movflags", "+faststart"] if dst_tmp.suffix.lower() in (".mp4", ".m4v", ".mov") \
        else []
    note = ""
    try:
        res = _run([*base, "-c", "copy", *tail, _ff(dst_tmp)])
        if res.returncode and with_audio:
            note = ("the audio codec cannot be stored in a "
                    f"{dst_tmp.suffix} file as it is: re-encoded to AAC 192 kb/s")
            res = _run([*base, "-c:v", "copy", "-c:a", "aac", "-b:a", "192k", *tail, _ff(dst_tmp)])
        if res.returncode:
            dst_tmp.unlink(missing_ok=True)
            raise VideoError(f"joining the segments failed: "
                             f"{res.stderr.decode(errors='replace').strip()[-500:]}")
    finally:
        listing.unlink(missing_ok=True)
        cut.unlink(missing_ok=True)
    return note


def write_video(path, frames, fps=25, tone: float | None = None, codec_args=None) -> Path:
    """Encode ``frames`` (HxWx3 uint8, all one size; any iterable) into ``path``,
    with a sine ``tone`` (Hz, mono AAC) as long as the video when given. For test
    clips and benchmarks; default video: H.264 yuv420p, CRF 18 (odd sizes: yuv444p)."""
    path = Path(path)
    it = iter(frames)
    first = next(it)
    h, w = first.shape[:2]
    fps = Fraction(fps).limit_denominator(1001)
    rate = f"{fps.numerator}/{fps.denominator}"
    if codec_args is None:
        fmt = "yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p"
        codec_args = ["-c:v", "libx264", "-crf", "18", "-preset", "veryfast", "-pix_fmt", fmt]
    audio = ["-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=44100"] if tone else []
    amap = ["-map", "1:a", "-c:a", "aac", "-shortest"] if tone else []
    proc = subprocess.Popen(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", rate,
         "-i", "pipe:0", *audio, "-map", "0:v", *codec_args, *amap, _ff(path)],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(np.ascontiguousarray(first, np.uint8).data)
        for f in it:
            proc.stdin.write(np.ascontiguousarray(f, np.uint8).data)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode(errors="replace")
    if proc.wait():
        raise VideoError(f"writing {path} failed: {err.strip()}")
    return path


def read_frames(path, gray: bool = False):
    """Every frame of ``path`` (rgb24 HxWx3, or HxW with ``gray``), one at a time."""
    info = probe(path, deinterlace="off")
    reader = FrameReader(info)
    try:
        while (f := reader.read()) is not None:
            yield f[:, :, 0] if gray else f
    finally:
        reader.close()
