"""Reading and writing images: EXR (linear HDR), Radiance HDR, PNG/JPEG (sRGB).

Readers return linear float32 [H, W, 3] and raise one ImageError naming the file on
anything unreadable or non-finite. Writers go through a temporary file in the target
folder and a rename, so an interrupted write never leaves a broken image behind.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import ImageError
from .input_files import check_path_text, is_file, read_limited

LUMINANCE = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709 weights of linear RGB

LDR_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tga")
HDR_SUFFIXES = (".exr", ".hdr")
# Checked from the file's header before any pixel is decoded: a 16k x 8k equirectangular
# environment map (1.5 GB as float32 RGB) fits, a file claiming 40000 x 40000 pixels
# (19 GB) does not.
MAX_IMAGE_SIDE = 32768
MAX_IMAGE_PIXELS = 1 << 27


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, np.float32)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(c, np.float32), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def _rgb(pixels: np.ndarray, path: Path) -> np.ndarray:
    """[H, W, C] or [H, W] -> [H, W, 3] float32."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ImageError(f"{path}: expected a 2D image, got an array of shape {pixels.shape}")
    channels = pixels.shape[2]
    if channels == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    elif channels == 2:  # grey + alpha
        pixels = np.repeat(pixels[:, :, :1], 3, axis=2)
    else:
        pixels = pixels[:, :, :3]
    return np.ascontiguousarray(pixels, dtype=np.float32)


def read_image(path: str | os.PathLike[str], *, srgb: bool | None = None) -> np.ndarray:
    """Linear RGB float32 [H, W, 3]. 8/16-bit images are sRGB-decoded unless srgb=False."""
    path = Path(path)
    if problem := check_path_text(str(path)):
        raise ImageError(f"{path}: {problem}")
    if not is_file(path):
        raise ImageError(f"{path}: image file not found")
    suffix = path.suffix.lower()
    if suffix == ".exr":
        pixels = _read_exr(path)
    elif suffix == ".hdr":
        pixels = _read_radiance_hdr(path)
    elif suffix in LDR_SUFFIXES:
        pixels = _read_ldr(path, srgb=True if srgb is None else srgb)
    else:
        raise ImageError(
            f"{path}: unsupported image type '{suffix}' "
            f"(expected one of {', '.join(HDR_SUFFIXES + LDR_SUFFIXES)})"
        )
    if not np.isfinite(pixels).all():
        bad = int((~np.isfinite(pixels)).any(axis=2).sum())
        raise ImageError(f"{path}: {bad} pixels are NaN or infinite")
    return pixels


def check_image_size(path: Path, width: int, height: int) -> None:
    """Refuse an image whose header claims an empty or absurd size, before decoding it."""
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        raise ImageError(
            f"{path}: image size {width}x{height} is outside 1..{MAX_IMAGE_SIDE} per side"
        )
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(
            f"{path}: {width}x{height} pixels is more than {MAX_IMAGE_PIXELS >> 20} Mpixel"
        )


def _read_exr(path: Path) -> np.ndarray:
    import OpenEXR

    try:
        header = OpenEXR.File(str(path), header_only=True).header()
        (x0, y0), (x1, y1) = (np.asarray(v, np.int64) for v in header["dataWindow"])
    except Exception as exc:  # the binding raises bare RuntimeErrors and KeyErrors
        raise ImageError(f"{path}: not a readable OpenEXR file ({exc})") from None
    check_image_size(path, int(x1 - x0 + 1), int(y1 - y0 + 1))
    try:
        channels = OpenEXR.File(str(path), separate_channels=True).channels()
    except Exception as exc:
        raise ImageError(f"{path}: not a readable OpenEXR file ({exc})") from exc
    names = {name.upper(): name for name in channels}
    if all(c in names for c in "RGB"):
        planes = [channels[names[c]].pixels for c in "RGB"]
    elif "Y" in names:
        planes = [channels[names["Y"]].pixels] * 3
    else:
        raise ImageError(
            f"{path}: EXR has no R, G, B or Y channels (it has {', '.join(sorted(channels))})"
        )
    return _rgb(np.stack(planes, axis=2).astype(np.float32), path)


def _read_ldr(path: Path, *, srgb: bool) -> np.ndarray:
    import imageio.v3 as iio
    from PIL import Image

    try:
        with Image.open(path) as header:  # reads the header only
            width, height = header.size
    except Image.DecompressionBombError:  # Pillow's own, looser size check, at open
        raise ImageError(
            f"{path}: image size is more than {MAX_IMAGE_PIXELS >> 20} Mpixel"
        ) from None
    except Exception as exc:  # Pillow raises many types for a broken header
        raise ImageError(f"{path}: not a readable image ({exc})") from None
    check_image_size(path, width, height)
    try:
        pixels = np.asarray(iio.imread(path, index=0))  # an animation's first frame
    except Exception as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from exc
    if pixels.dtype == np.uint8:
        scaled = pixels.astype(np.float32) / 255.0
    elif pixels.dtype == np.uint16:
        scaled = pixels.astype(np.float32) / 65535.0
    elif np.issubdtype(pixels.dtype, np.integer):  # 32-bit greyscale PNGs
        scaled = np.clip(pixels.astype(np.float32) / np.iinfo(pixels.dtype).max, 0.0, 1.0)
    else:
        scaled = pixels.astype(np.float32)
    rgb = _rgb(scaled, path)
    return srgb_to_linear(rgb) if srgb else rgb


def _read_radiance_hdr(path: Path) -> np.ndarray:
    """Radiance RGBE (.hdr/.pic), flat or run-length encoded scanlines."""
    data = read_limited(path, 4 * MAX_IMAGE_PIXELS + (1 << 16), ImageError, "image file")
    header_end = data.find(b"\n\n")
    if not data.startswith((b"#?RADIANCE", b"#?RGBE")) or header_end < 0:
        raise ImageError(f"{path}: not a Radiance HDR file (bad header)")
    if b"FORMAT=32-bit_rle_xyze" in data[:header_end]:
        raise ImageError(f"{path}: XYZE Radiance files are not supported, only RGBE")
    line_end = data.find(b"\n", header_end + 2)
    size = re.match(rb"-Y (\d+) \+X (\d+)", data[header_end + 2 : line_end])
    if size is None:
        raise ImageError(f"{path}: unsupported Radiance image orientation (need '-Y H +X W')")
    height, width = int(size.group(1)), int(size.group(2))
    check_image_size(path, width, height)
    body = np.frombuffer(data, np.uint8, offset=line_end + 1)
    try:
        rgbe = _decode_rgbe(body, width, height)
    except (IndexError, ValueError) as exc:
        raise ImageError(f"{path}: truncated or corrupt Radiance pixel data") from exc
    exponent = rgbe[:, :, 3].astype(np.int32)
    scale = np.where(exponent > 0, np.ldexp(1.0, exponent - 136), 0.0).astype(np.float32)
    return (rgbe[:, :, :3].astype(np.float32) + 0.5 * (exponent > 0)[..., None]) * scale[..., None]


def _decode_rgbe(body: np.ndarray, width: int, height: int) -> np.ndarray:
    out = np.empty((height, width, 4), np.uint8)
    flat = not (8 <= width < 32768) or not (body[0] == 2 and body[1] == 2 and body[2] < 128)
    if flat:
        if body.size < width * height * 4:
            raise ValueError("short flat data")
        return body[: width * height * 4].reshape(height, width, 4).copy()
    pos = 0
    for y in range(height):
        if (
            body[pos] != 2
            or body[pos + 1] != 2
            or (int(body[pos + 2]) << 8 | body[pos + 3]) != width
        ):
            raise ValueError("bad scanline header")
        pos += 4
        for c in range(4):
            x = 0
            while x < width:
                count = int(body[pos])
                pos += 1
                if count > 128:  # a run of one value
                    count -= 128
                    if x + count > width:
                        raise ValueError("run past end of scanline")
                    out[y, x : x + count, c] = body[pos]
                    pos += 1
                else:
                    if count == 0 or x + count > width:
                        raise ValueError("bad literal length")
                    out[y, x : x + count, c] = body[pos : pos + count]
                    pos += count
                x += count
    return out


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); rename it over `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


OUTPUT_SUFFIXES = (".exr", ".json", ".md", *LDR_SUFFIXES)


def output_stem(path: str | os.PathLike[str]) -> Path:
    """The stem of a family of outputs: `x`, `x.png`, `x.exr`... all name `x`."""
    path = Path(path)
    return path.with_suffix("") if path.suffix.lower() in OUTPUT_SUFFIXES else path


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise ImageError now, before long work, if `path` could not be written later: its
    folder cannot be made or written to, or it names a folder."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, expected a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.probe{os.getpid()}")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ImageError(f"{path}: cannot write there ({exc.strerror or exc})") from None


def write_exr(path: str | os.PathLike[str], layers: dict[str, np.ndarray]) -> None:
    """Write float32 layers: "RGB" [H, W, 3] becomes R, G, B, "albedo" [H, W, 3] becomes
    albedo.R/G/B, and a single channel [H, W] keeps its full name (e.g. "depth.Z")."""
    import OpenEXR

    channels = {name: np.ascontiguousarray(p, dtype=np.float32) for name, p in layers.items()}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    try:
        with atomic_path(path) as tmp:
            OpenEXR.File(header, channels).write(str(tmp))
    except OSError as exc:
        raise ImageError(f"{path}: cannot write ({exc})") from exc


def write_ldr(path: str | os.PathLike[str], srgb8: np.ndarray) -> None:
    """Write an 8-bit [H, W, 3] image, or [H, W, 4] RGBA (PNG), by suffix."""
    import imageio.v3 as iio

    try:
        with atomic_path(path) as tmp:
            iio.imwrite(tmp, np.ascontiguousarray(srgb8, dtype=np.uint8))
    except OSError as exc:
        raise ImageError(f"{path}: cannot write ({exc})") from exc
