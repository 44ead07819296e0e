"""Image reading and writing: formats, colour encoding, broken files, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from renderer.errors import ImageError
from renderer.image_io import (
    atomic_path,
    linear_to_srgb,
    read_image,
    srgb_to_linear,
    write_exr,
    write_ldr,
)
from renderer.render.film import tonemap


def rgbe_bytes(pixels: np.ndarray, rle: bool) -> bytes:
    """Encode float RGB as a Radiance file (the inverse of the reader, written independently)."""
    h, w = pixels.shape[:2]
    peak = pixels.max(axis=2)
    mantissa, exponent = np.frexp(peak)
    scale = np.where(peak > 1e-32, mantissa * 256.0 / np.where(peak > 0, peak, 1), 0)
    rgbe = np.zeros((h, w, 4), np.uint8)
    rgbe[..., :3] = np.clip(pixels * scale[..., None], 0, 255).astype(np.uint8)
    rgbe[..., 3] = np.where(peak > 1e-32, exponent + 128, 0)
    out = bytearray(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n" + f"-Y {h} +X {w}\n".encode())
    for y in range(h):
        if not rle:
            out += rgbe[y].tobytes()
            continue
        out += bytes([2, 2, w >> 8, w & 255])
        for c in range(4):
            row = rgbe[y, :, c]
            x = 0
            while x < w:  # alternate runs and literals to exercise both paths
                run = 1
                while x + run < w and row[x + run] == row[x] and run < 127:
                    run += 1
                if run > 2:
                    out += bytes([128 + run, row[x]])
                    x += run
                else:
                    n = min(w - x, 2)
                    out += bytes([n]) + row[x : x + n].tobytes()
                    x += n
    return bytes(out)


@pytest.mark.parametrize("rle", [False, True])
def test_radiance_hdr(tmp_path: Path, rle: bool) -> None:
    rng = np.random.default_rng(1)
    pixels = (rng.random((6, 40, 3)) * 50).astype(np.float32)
    pixels[:, 10:20] = [3.0, 3.0, 3.0]  # runs
    (tmp_path / "a.hdr").write_bytes(rgbe_bytes(pixels, rle))
    np.testing.assert_allclose(read_image(tmp_path / "a.hdr"), pixels, rtol=0.02, atol=0.2)


def test_exr_round_trip(tmp_path: Path) -> None:
    rgb = np.random.default_rng(2).random((5, 7, 3)).astype(np.float32) * 100
    write_exr(tmp_path / "x.exr", {"RGB": rgb, "depth.Z": rgb[..., 0]})
    np.testing.assert_array_equal(read_image(tmp_path / "x.exr"), rgb)


def test_png_is_srgb_decoded(tmp_path: Path) -> None:
    write_ldr(tmp_path / "g.png", np.full((2, 2, 3), 188, np.uint8))
    assert read_image(tmp_path / "g.png")[0, 0, 0] == pytest.approx(0.5, abs=0.01)
    assert read_image(tmp_path / "g.png", srgb=False)[0, 0, 0] == pytest.approx(188 / 255)


def test_srgb_curves_invert() -> None:
    x = np.linspace(0, 1, 101, dtype=np.float32)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-6)
    assert tonemap(np.array([[[0.0, 0.5, 2.0]]]))[0, 0].tolist() == [0, 188, 255]
    assert tonemap(np.array([[[0.25, 0.25, 0.25]]]), exposure=1)[0, 0, 0] == 188


@pytest.mark.parametrize(
    "name, content, needle",
    [
        ("bad.exr", b"not an exr at all", "not a readable OpenEXR file"),
        ("bad.hdr", b"#?RADIANCE\n\n-Y 4 +X 16\n\x02\x02\x00\x10\x85", "truncated or corrupt"),
        ("bad.hdr", b"P6 not radiance", "not a Radiance HDR file"),
        ("bad.png", b"\x89PNG\r\n\x1a\n broken", "not a readable image"),
        ("img.tif", b"II*\x00", "unsupported image type"),
    ],
)
def test_broken_images(tmp_path: Path, name: str, content: bytes, needle: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageError, match=needle) as info:
        read_image(tmp_path / name)
    assert name in str(info.value)


def test_missing_image(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="image file not found"):
        read_image(tmp_path / "none.exr")


def test_failed_write_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.exr"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half an ima")
        raise RuntimeError("interrupted mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.exr"]
    write_exr(target, {"RGB": np.ones((2, 2, 3), np.float32)})
    assert read_image(target).shape == (2, 2, 3)
