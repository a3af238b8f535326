"""HR -> LR degradations, selected by config.

Default: MATLAB bicubic (antialiased). The others, applied in this order
when given (any combination):

1. ``gray``: BT.601 luma, kept as three equal channels (black-and-white film);
   the training target is then gray too (``target``);
2. ``blur``: Gaussian, sigma in HR px, before downscaling (soft lenses, telecine);
3. the downscale ``kernel``, one of ``DOWNSCALERS``: MATLAB's antialiased
   ``bicubic`` (the default, the benchmark sets' LR) and ``bilinear``; OpenCV's
   ``bicubic_noaa``, ``bilinear_noaa`` and ``lanczos_noaa`` (no antialiasing when
   shrinking, as ``cv2.resize`` and many video scalers do) and ``area``
   (box average); Pillow's antialiased ``pil_bicubic``, ``pil_bilinear``,
   ``pil_lanczos``;
4. ``grain``: film grain, Gaussian noise smoothed over ``grain_size`` LR px and
   rescaled to sigma ``grain`` (0-255 scale), the same on every channel;
5. ``noise``: white Gaussian noise, sigma on the 0-255 scale, per channel;
6. ``video``: one frame through a real low-bitrate codec of the bundled ffmpeg
   (``h264`` at constant QP ``video_q`` 0-51, or ``mpeg2`` at qscale
   ``video_q`` 1-31; yuv420p, so colour is subsampled too). About 0.1 s per
   call (two ffmpeg processes): use ``jpeg`` as the cheap stand-in;
7. ``jpeg`` quality 1-100.

``DegradationMix`` draws a random ``Degradation`` for every training crop
(kernel, blur, noise and JPEG, with the probabilities it documents): the
robust recipe for photos whose making is unknown.

The mismatch between training and real-world degradations is the main cause
of poor results on real photos and old footage; see docs/old_film.md.
Filters, colour conversion and JPEG use OpenCV (3-12x faster than
scipy / Pillow here, same results; measured in docs/old_film.md).
"""
from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from PIL import Image

from paddle_mmsr.image.resize import imresize

_CV = {"bicubic_noaa": cv2.INTER_CUBIC, "bilinear_noaa": cv2.INTER_LINEAR,
       "lanczos_noaa": cv2.INTER_LANCZOS4, "area": cv2.INTER_AREA}
_PIL = {"pil_bicubic": Image.BICUBIC, "pil_bilinear": Image.BILINEAR, "pil_lanczos": Image.LANCZOS}
DOWNSCALERS = ("bicubic", "bilinear", *_CV, *_PIL)


def downscale(a: np.ndarray, out_shape, kernel: str = "bicubic") -> np.ndarray:
    """float HxW[xC] (0-255 scale) -> float64 of ``out_shape`` (rows, cols), by ``kernel``."""
    if kernel in _CV:
        out = cv2.resize(np.asarray(a, np.float64), (out_shape[1], out_shape[0]),
                         interpolation=_CV[kernel])
        return out.reshape(tuple(out_shape) + a.shape[2:])
    if kernel in _PIL:  # mode "F" keeps floats: no rounding before the later steps
        planes = [a] if a.ndim == 2 else [a[:, :, c] for c in range(a.shape[2])]
        out = [np.asarray(Image.fromarray(np.asarray(c, np.float32), mode="F")
                          .resize((out_shape[1], out_shape[0]), _PIL[kernel]), np.float64)
               for c in planes]
        return out[0] if a.ndim == 2 else np.stack(out, axis=2)
    if kernel in DOWNSCALERS:
        return imresize(a, output_shape=out_shape, kernel=kernel)
    raise ValueError(f"degradation kernel must be one of {DOWNSCALERS}, got {kernel!r}")


VIDEO_CODECS = {"h264": ("libx264", "-qp", 0, 51), "mpeg2": ("mpeg2video", "-q:v", 1, 31)}


@dataclass
class Degradation:
    kernel: str = "bicubic"   # one of DOWNSCALERS
    blur: float = 0.0         # Gaussian sigma in HR pixels; 0 = off
    noise: float = 0.0        # Gaussian sigma on the 0-255 scale; 0 = off
    jpeg: int = 0             # JPEG quality 1-100; 0 = off
    gray: bool = False        # convert to gray (three equal channels)
    grain: float = 0.0        # film grain sigma on the 0-255 scale; 0 = off
    grain_size: float = 0.7   # grain smoothing sigma in LR pixels
    video: str = ""           # "" (off) | h264 | mpeg2
    video_q: int = 30         # h264: QP 0-51; mpeg2: qscale 1-31 (higher = worse)

    def __post_init__(self):
        if self.kernel not in DOWNSCALERS:
            raise ValueError(f"degradation kernel must be one of {DOWNSCALERS}, got {self.kernel!r}")
        if self.blur < 0 or self.noise < 0 or self.grain < 0 or self.grain_size < 0:
            raise ValueError("blur, noise, grain and grain_size must be >= 0")
        if not (self.jpeg == 0 or 1 <= self.jpeg <= 100):
            raise ValueError("jpeg quality must be 0 (off) or 1-100")
        if self.video:
            if self.video not in VIDEO_CODECS:
                raise ValueError(f"degradation video must be '' (off) or one of "
                                 f"{sorted(VIDEO_CODECS)}, got {self.video!r}")
            _, _, lo, hi = VIDEO_CODECS[self.video]
            if not lo <= self.video_q <= hi:
                raise ValueError(f"video_q for {self.video} must be {lo}-{hi}, got {self.video_q}")

    def to_dict(self) -> dict:
        return asdict(self)

    def target(self, hr: np.ndarray) -> np.ndarray:
        """The HR a model should learn to give back for this LR: ``hr``, in gray with
        ``gray`` (a gray film has no colour to restore)."""
        if self.gray and hr.ndim == 3:
            return np.repeat(cv2.cvtColor(np.ascontiguousarray(hr), cv2.COLOR_RGB2GRAY)[:, :, None],
                             hr.shape[2], axis=2)
        return hr

    def __call__(self, hr: np.ndarray, scale: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """uint8 HxWx3 HR (H, W multiples of ``scale``) -> uint8 LR."""
        if hr.shape[0] % scale or hr.shape[1] % scale:
            raise ValueError(f"HR size {hr.shape[:2]} is not a multiple of scale {scale}")
        out_shape = (hr.shape[0] // scale, hr.shape[1] // scale)
        a = self.target(hr).astype(np.float64)
        if self.blur > 0:
            a = _gaussian(a, self.blur)
        a = downscale(a, out_shape, self.kernel)
        if self.grain > 0 or self.noise > 0:
            rng = rng or np.random.default_rng()
        if self.grain > 0:
            g = rng.standard_normal(a.shape[:2])
            if self.grain_size > 0:
                g = _gaussian(g, self.grain_size)
                g /= max(float(g.std()), 1e-6)
            a = a + (self.grain * g)[..., None] if a.ndim == 3 else a + self.grain * g
        if self.noise > 0:
            a = a + rng.normal(0, self.noise, a.shape)
        lr = np.clip(np.round(a), 0, 255).astype(np.uint8)
        if self.video:
            lr = video_roundtrip(lr, self.video, self.video_q)
        if self.jpeg:
            lr = jpeg_roundtrip(lr, self.jpeg)
        return lr


# The robust recipe's draws: how often each downscaler is used (weights) and
# how often, and how strongly, blur (before) and noise and JPEG (after) are added.
ROBUST_KERNELS = {"bicubic": 3, "bicubic_noaa": 2, "bilinear_noaa": 1, "area": 1,
                  "lanczos_noaa": 1, "pil_bicubic": 1, "pil_bilinear": 0.5, "pil_lanczos": 0.5}


@dataclass
class DegradationMix:
    """A random ``Degradation`` per crop. Per draw, independently: the kernel by
    ``kernels`` weights (default: MATLAB bicubic 30%, OpenCV bicubic without
    antialiasing 20%, OpenCV bilinear, area, OpenCV Lanczos and Pillow bicubic
    10% each, Pillow bilinear and Lanczos 5% each); a Gaussian blur before the
    downscale with ``blur_p`` (sigma uniform in ``blur``, HR px); white noise
    with ``noise_p`` (sigma uniform in ``noise``, 0-255); JPEG with ``jpeg_p``
    (quality uniform in ``jpeg``)."""
    kernels: dict = None
    blur_p: float = 0.25
    blur: list = (0.3, 1.2)
    noise_p: float = 0.2
    noise: list = (0.5, 4.0)
    jpeg_p: float = 0.25
    jpeg: list = (60, 95)

    def __post_init__(self):
        self.kernels = dict(self.kernels or ROBUST_KERNELS)  # empty or unset: the defaults
        bad = sorted(set(self.kernels) - set(DOWNSCALERS))
        if bad or not self.kernels or min(self.kernels.values()) < 0 or sum(self.kernels.values()) <= 0:
            raise ValueError(f"degradation_mix kernels must be weights >= 0 (not all 0) for "
                             f"kernels among {DOWNSCALERS}; got {self.kernels}")
        for name in ("blur_p", "noise_p", "jpeg_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"degradation_mix {name} must be in [0, 1]")
        for name, lo, hi in (("blur", 0, 50), ("noise", 0, 255), ("jpeg", 1, 100)):
            r = tuple(getattr(self, name))
            if len(r) != 2 or not lo <= r[0] <= r[1] <= hi:
                raise ValueError(f"degradation_mix {name} must be [low, high] within [{lo}, {hi}]")
            setattr(self, name, r)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def sample(self, rng: np.random.Generator) -> Degradation:
        names = list(self.kernels)
        w = np.array([self.kernels[n] for n in names], np.float64)
        kernel = names[int(rng.choice(len(names), p=w / w.sum()))]
        blur = float(rng.uniform(*self.blur)) if rng.random() < self.blur_p else 0.0
        noise = float(rng.uniform(*self.noise)) if rng.random() < self.noise_p else 0.0
        jpeg = int(rng.integers(self.jpeg[0], self.jpeg[1] + 1)) if rng.random() < self.jpeg_p else 0
        return Degradation(kernel=kernel, blur=blur, noise=noise, jpeg=jpeg)

    def target(self, hr: np.ndarray) -> np.ndarray:
        return hr

    def __call__(self, hr: np.ndarray, scale: int, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = rng or np.random.default_rng()
        return self.sample(rng)(hr, scale, rng)


# How test LR is made for the real-input benchmark (``mmsr-evaluate --degrade``):
# fixed, seeded settings, one per way a user's image may have been made.
INPUT_KINDS = {
    "bicubic": Degradation(),                                   # MATLAB imresize (the papers' LR)
    "bicubic_noaa": Degradation(kernel="bicubic_noaa"),         # cv2.resize INTER_CUBIC
    "area": Degradation(kernel="area"),                         # cv2.resize INTER_AREA
    "blur_noise_jpeg": Degradation(blur=0.8, noise=2.0, jpeg=75),
    "h264": Degradation(video="h264", video_q=28),              # one intra frame, QP 28
}


def make_degradation(d: dict | None):
    """A ``Degradation`` from its settings, or a ``DegradationMix`` from ``{"mix": {...}}``."""
    d = dict(d or {})
    if "mix" in d:
        return DegradationMix(**(d["mix"] or {}))
    return Degradation(**d)


def _gaussian(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over the two image axes (mirror borders, like scipy's 'reflect')."""
    return cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REFLECT).reshape(a.shape)


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """uint8 HxW[x3] through JPEG at ``quality``."""
    colour = img.ndim == 3
    src = img[:, :, ::-1] if colour else img
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(src), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode JPEG")
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
    return np.ascontiguousarray(out[:, :, ::-1]) if colour else out


def video_roundtrip(img: np.ndarray, codec: str, q: int) -> np.ndarray:
    """uint8 HxWx3 encoded as one yuv420p frame by ``codec`` at ``q`` and decoded."""
    from paddle_mmsr.image.video_io import ffmpeg_exe
    name, qflag, _, _ = VIDEO_CODECS[codec]
    h, w = img.shape[:2]
    ph, pw = h + h % 2, w + w % 2   # yuv420p needs even sides: pad by edge copy
    rgb = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
    rgb = np.pad(rgb, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    exe = ffmpeg_exe()
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{pw}x{ph}"]
    enc = subprocess.run([exe, "-v", "error", *raw, "-i", "pipe:0", "-frames:v", "1",
                          "-c:v", name, qflag, str(int(q)), "-pix_fmt", "yuv420p",
                          "-f", "matroska", "pipe:1"],
                         input=np.ascontiguousarray(rgb).tobytes(), capture_output=True)
    if enc.returncode:
        raise RuntimeError(f"ffmpeg {codec} encode failed: {enc.stderr.decode(errors='replace')}")
    dec = subprocess.run([exe, "-v", "error", "-f", "matroska", "-i", "pipe:0",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
                         input=enc.stdout, capture_output=True)
    if dec.returncode or len(dec.stdout) < ph * pw * 3:
        raise RuntimeError(f"ffmpeg {codec} decode failed: {dec.stderr.decode(errors='replace')}")
    out = np.frombuffer(dec.stdout[:ph * pw * 3], np.uint8).reshape(ph, pw, 3)[:h, :w]
    return out.copy() if img.ndim == 3 else out[:, :, 0].copy()
