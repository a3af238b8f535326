"""Read and write images: one place for every input kind.

``read_image`` returns an HxW (gray) or HxWxC (gray + alpha, RGB, RGBA) numpy
array of dtype uint8 or uint16 (16-bit PNG and TIFF keep 16 bits), or float32
in [0, 1] for a floating-point TIFF (NaN or values outside [0, 1] are an
error), with EXIF orientation applied, palette and CMYK converted to RGB(A).
Integer images deeper than 16 bits are refused, not clipped. Files with several
frames (animated GIF / PNG / WebP, multi-page TIFF) are refused.
``write_image`` writes atomically (temp file ``.tmp-*`` + rename);
``list_images`` never lists such temp files. PNGs are encoded by OpenCV
(libpng) at zlib level ``png_compression`` (default 1: about 3x faster than
PIL's level 6 for files about 10% larger; the pixels are the same at every level).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from paddle_mmsr.core.pixels import to_float, to_uint  # noqa: F401 (part of this module's API)

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
TMP_PREFIX = ".tmp-"  # write_image's temporary files: never inputs
PNG_COMPRESSION = 1  # zlib level of written PNGs: 0 (none, fastest) .. 9 (smallest, slowest)


class ImageReadError(Exception):
    """An input file could not be read as an image; the message says why."""


_DEEP = ("only 8- and 16-bit integer images are read (deeper values would be clipped): "
         "convert it to 16 bits or to float in [0, 1]")


def _from_pil(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.array(im, dtype=np.uint16)
    if mode == "I":  # 32-bit int, used by PIL for 16-bit gray PNGs
        a = np.array(im)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ImageReadError(f"integer samples in [{a.min()}, {a.max()}]; {_DEEP}")
        return a.astype(np.uint16)
    if mode == "F":
        return np.array(im, dtype=np.float32)
    if mode in ("1", "L"):
        return np.array(im.convert("L"), dtype=np.uint8)
    if mode == "LA":
        return np.array(im, dtype=np.uint8)
    if mode == "P":
        has_alpha = "transparency" in im.info
        return np.array(im.convert("RGBA" if has_alpha else "RGB"), dtype=np.uint8)
    if mode in ("RGBA", "RGB"):
        return np.array(im, dtype=np.uint8)
    if mode == "La":
        return np.array(im.convert("LA"), dtype=np.uint8)
    if mode == "PA" or mode == "RGBa":
        return np.array(im.convert("RGBA"), dtype=np.uint8)
    # CMYK, YCbCr, LAB, HSV, ...
    return np.array(im.convert("RGB"), dtype=np.uint8)


def _read_16bit_rgb_png(path: Path) -> np.ndarray | None:
    """PIL reads 16-bit RGB(A) PNGs as 8-bit; decode them with pypng instead."""
    import png
    w, h, rows, info = png.Reader(filename=str(path)).asDirect()
    if info["bitdepth"] != 16:
        return None
    a = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
    return a.reshape(h, w, info["planes"])


def read_image(path) -> np.ndarray:
    """Load an image file as uint8/uint16 HxW or HxWxC. Raises ImageReadError."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    try:
        with Image.open(path) as im:
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                raise ImageReadError(f"{path}: has {frames} frames (animated or multi-page); "
                                     "only single images are upscaled: save one frame as PNG")
            if im.format == "TIFF" and _tiff_float(im):
                return _float_image(path, _read_tiff(path, np.floating))
            if im.format == "TIFF" and _tiff_bits(im) > 16:
                raise ImageReadError(f"{path}: {_tiff_bits(im)}-bit samples; {_DEEP}")
            deep_tiff = im.format == "TIFF" and _tiff_bits(im) == 16 and im.mode in ("RGB", "RGBA")
            im.load()
            im = ImageOps.exif_transpose(im)
            arr = _read_16bit_tiff(path) if deep_tiff else _from_pil(im)
    except PermissionError:
        raise ImageReadError(f"{path}: cannot open (permission denied)") from None
    except ImageReadError as e:
        if str(e).startswith(str(path)):
            raise
        raise ImageReadError(f"{path}: {e}") from None
    except UnidentifiedImageError:
        if path.suffix.lower() in (".tif", ".tiff"):  # e.g. RGB float, which PIL cannot open
            return _float_image(path, _read_tiff(path, np.floating))
        raise ImageReadError(f"{path}: not an image file (format not recognised)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: corrupt or truncated image ({e})") from None
    if arr.ndim == 3 and arr.dtype == np.uint8 and path.suffix.lower() == ".png":
        deep = _maybe_16bit_png(path)
        if deep is not None and deep.shape[:2] == arr.shape[:2]:
            arr = deep
    if arr.size == 0:
        raise ImageReadError(f"{path}: image has no pixels")
    if arr.dtype == np.float32:
        return _float_image(path, arr)
    return arr


def _tiff_float(im) -> bool:
    fmt = im.tag_v2.get(339, (1,))  # SampleFormat: 3 = IEEE float
    return int(fmt[0] if isinstance(fmt, tuple) else fmt) == 3


def _read_tiff(path: Path, kind) -> np.ndarray:
    import tifffile
    try:
        a = tifffile.imread(str(path))
    except Exception as e:
        raise ImageReadError(f"{path}: not decoded by tifffile ({e})") from None
    if not np.issubdtype(a.dtype, kind):
        raise ImageReadError(f"{path}: decoded as {a.dtype}, not a supported image")
    return a


def _float_image(path: Path, a: np.ndarray) -> np.ndarray:
    """A float image as float32 HxW[xC], values checked to be finite and in [0, 1]."""
    a = np.asarray(a, np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] not in (1, 2, 3, 4):
        a = np.moveaxis(a, 0, 2)  # planar
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4)):
        raise ImageReadError(f"{path}: float image of shape {a.shape}, expected HxW or HxWxC")
    bad = int(np.count_nonzero(~np.isfinite(a)))
    if bad:
        raise ImageReadError(f"{path}: float image with {bad} NaN or infinite value(s)")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 1:
        raise ImageReadError(f"{path}: float image with values in [{lo:g}, {hi:g}]; only "
                             "[0, 1] is read (scale it, or save it as 8/16-bit)")
    return a


def read_icc(path) -> bytes | None:
    """The embedded ICC colour profile of an image file, or None."""
    try:
        with Image.open(path) as im:
            icc = im.info.get("icc_profile")
    except (OSError, SyntaxError, ValueError):
        return None
    return bytes(icc) if icc else None


def _tiff_bits(im) -> int:
    bits = im.tag_v2.get(258, (8,))  # BitsPerSample
    return int(bits[0] if isinstance(bits, tuple) else bits)


def _read_16bit_tiff(path: Path) -> np.ndarray:
    """PIL reads 16-bit RGB(A) TIFFs as 8-bit; tifffile keeps the 16 bits."""
    import tifffile
    try:
        a = tifffile.imread(str(path))
    except Exception as e:  # e.g. a compression tifffile cannot decode
        raise ValueError(f"16-bit TIFF not decoded by tifffile: {e}") from None
    if a.dtype != np.uint16 or a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"16-bit TIFF decoded as {a.dtype} {a.shape}, expected HxWx3 or 4 uint16")
    return a


def _maybe_16bit_png(path: Path) -> np.ndarray | None:
    with open(path, "rb") as f:
        head = f.read(26)
    if not (len(head) >= 25 and head[24] == 16):  # IHDR bit depth
        return None
    try:
        return _read_16bit_rgb_png(path)
    except Exception as e:
        raise ImageReadError(f"{path}: corrupt 16-bit PNG ({e})") from None


def to_rgb8(img: np.ndarray) -> np.ndarray:
    """uint8/uint16/float gray, RGB or RGBA -> uint8 HxWx3 (rounded, alpha dropped)."""
    if img.dtype.kind == "f":
        img = to_uint(img, np.uint8)
    if img.dtype == np.uint16:
        img = np.round(img / 257.0).astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] in (2, 4):  # drop alpha
        img = img[:, :, :-1]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


def write_image(path, img: np.ndarray, quality: int = 95, overwrite: bool = True,
                icc: bytes | None = None, png_compression: int = PNG_COMPRESSION) -> None:
    """Write atomically: to a temp file in the same folder, then rename. Without
    ``overwrite`` the name is taken only if free at that moment (FileExistsError
    otherwise, also when another process published it meanwhile). ``quality``: JPEG
    quality; ``png_compression``: zlib level 0-9 of a PNG."""
    if not 0 <= int(png_compression) <= 9:
        raise ValueError(f"png_compression must be 0..9, got {png_compression}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:  # an interrupt right after mkstemp must not leave the empty file
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
        os.close(fd)
        if path.suffix.lower() == ".png":
            _save_png(tmp, to_uint(img, np.uint16) if img.dtype.kind == "f" else img,
                      int(png_compression), icc)
        else:
            _save(tmp, img, path.suffix.lower(), quality, icc)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files
        if overwrite:
            os.replace(tmp, path)
        else:
            publish_new(tmp, path)
    except BaseException:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise


def publish_new(tmp, path) -> None:
    """Give the finished file ``tmp`` the name ``path`` only if no file has it:
    a hard link fails when the name exists (checked by the file system at that
    moment), then ``tmp`` goes. Where links are not supported, the name is
    claimed with an exclusive create and then replaced."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} exists (written meanwhile?); pass --overwrite to "
                              "replace it") from None
    except OSError:  # no hard links here (some network or FAT file systems)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            raise FileExistsError(f"{path} exists (written meanwhile?); pass --overwrite to "
                                  "replace it") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _save(tmp: str, img: np.ndarray, ext: str, quality: int, icc: bytes | None = None) -> None:
    if img.dtype.kind == "f":  # float in [0, 1]: float TIFF, else 16 bits
        if ext in (".tif", ".tiff"):
            import tifffile
            rgb = img.ndim == 3 and img.shape[2] in (3, 4)
            tifffile.imwrite(tmp, np.clip(img, 0, 1).astype(np.float32),
                             photometric="rgb" if rgb else "minisblack", iccprofile=icc,
                             extrasamples=["unassalpha"] if img.ndim == 3 and img.shape[2] in (2, 4)
                             else None)
            return
        img = to_uint(img, np.uint16)
    if img.dtype == np.uint16:
        if ext in (".tif", ".tiff"):
            import tifffile
            rgb = img.ndim == 3 and img.shape[2] in (3, 4)
            tifffile.imwrite(tmp, img, photometric="rgb" if rgb else "minisblack",
                             extrasamples=["unassalpha"] if img.ndim == 3 and img.shape[2] in (2, 4)
                             else None, iccprofile=icc)
            return
        img = (img // 257).astype(np.uint8)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP",
           ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}.get(ext, "PNG")
    im = Image.fromarray(img)
    extra = {"icc_profile": icc} if icc and fmt in ("JPEG", "PNG", "TIFF", "WEBP") else {}
    if fmt == "JPEG":
        if im.mode == "RGBA":
            im = im.convert("RGB")
        im.save(tmp, format=fmt, quality=quality, **extra)
    else:
        im.save(tmp, format=fmt, **extra)


def _save_png(tmp: str, img: np.ndarray, level: int, icc: bytes | None = None) -> None:
    """8- or 16-bit gray, gray + alpha, RGB or RGBA PNG at zlib ``level``, with the
    ICC profile ``icc`` if given."""
    if img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG needs uint8 or uint16 pixels, got {img.dtype}")
    img3 = img[:, :, None] if img.ndim == 2 else img
    h, w, c = img3.shape
    if c == 2:  # gray + alpha: OpenCV has no such PNG; pypng writes it (rare, slower)
        import io
        import png
        writer = png.Writer(w, h, greyscale=True, alpha=True, bitdepth=8 * img.itemsize,
                            compression=level)
        buf = io.BytesIO()
        writer.write(buf, img3.reshape(h, w * c))
        data = buf.getvalue()
    else:
        import cv2
        if c == 3:
            img3 = cv2.cvtColor(img3, cv2.COLOR_RGB2BGR)
        elif c == 4:
            img3 = cv2.cvtColor(img3, cv2.COLOR_RGBA2BGRA)
        elif c != 1:
            raise ValueError(f"PNG needs 1 to 4 channels, got {c}")
        ok, enc = cv2.imencode(".png", img3, [cv2.IMWRITE_PNG_COMPRESSION, level])
        if not ok:
            raise OSError(f"OpenCV could not encode a {h}x{w}x{c} {img.dtype} PNG")
        data = enc.tobytes()
    with open(tmp, "wb") as f:
        f.write(_with_icc(data, icc) if icc else data)


def _with_icc(png_bytes: bytes, icc: bytes) -> bytes:
    """The PNG with an iCCP chunk (the profile, zlib-compressed) right after IHDR."""
    import struct
    import zlib
    body = b"iCCP" + b"icc\0\0" + zlib.compress(icc)
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    end_of_ihdr = 8 + 8 + 13 + 4   # signature, IHDR length + type, IHDR data, CRC
    return png_bytes[:end_of_ihdr] + chunk + png_bytes[end_of_ihdr:]


def list_images(folder, others: list | None = None) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted, without write_image's temp
    files; ``others`` receives the files left out for not having an image extension."""
    images = []
    for p in Path(folder).rglob("*"):
        if not p.is_file() or p.name.startswith(TMP_PREFIX):
            continue
        if p.suffix.lower() in IMAGE_EXTS:
            images.append(p)
        elif others is not None:
            others.append(p)
    return sorted(images)
