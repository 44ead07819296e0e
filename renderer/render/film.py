"""Render results: the accumulated image, its AOVs and per-pixel variance, and output.

EXR files are linear and carry every AOV as a layer (R,G,B; albedo.*, normal.*,
depth.Z, variance.*). PNG files are tonemapped: exposure, clamp, sRGB. With a transparent
background (the integrator's `transparent_background`) PNGs are RGBA with straight alpha
= coverage, and EXRs add an A layer (their RGB stays premultiplied).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageError
from ..image_io import LDR_SUFFIXES, linear_to_srgb, output_stem, write_exr, write_ldr


def tonemap(radiance: np.ndarray, exposure: float = 0.0) -> np.ndarray:
    """Linear radiance [H, W, 3] -> 8-bit sRGB [H, W, 3]: scale by 2^exposure, clamp, encode."""
    srgb = linear_to_srgb(np.asarray(radiance, np.float32) * np.float32(2.0**exposure))
    return np.round(srgb * 255.0).astype(np.uint8)


@dataclass
class RenderResult:
    """Mean of `spp` samples per pixel; arrays are [H, W, 3] unless noted."""

    radiance: np.ndarray
    variance: np.ndarray  # variance of the pixel mean (sample variance / spp)
    albedo: np.ndarray
    normal: np.ndarray
    depth: np.ndarray  # [H, W]
    spp: int
    coverage: np.ndarray | None = None  # [H, W]: share of camera rays that hit a surface
    seconds: float = 0.0
    dropped_samples: int = 0  # non-finite samples left out of the sums
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def resolution(self) -> tuple[int, int]:
        return self.radiance.shape[1], self.radiance.shape[0]

    def standard_error(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.variance, 0.0))

    @property
    def transparent(self) -> bool:
        """Rendered with a transparent background: images carry coverage as alpha."""
        return bool(self.info.get("transparent_background")) and self.coverage is not None

    def to_srgb8(self, exposure: float = 0.0) -> np.ndarray:
        """8-bit sRGB [H, W, 3], or with a transparent background RGBA [H, W, 4] with
        straight alpha: the colour is the radiance divided by the coverage."""
        if not self.transparent:
            return tonemap(self.radiance, exposure)
        alpha = np.asarray(self.coverage, np.float32)[..., None]
        straight = np.where(alpha > 0, self.radiance / np.maximum(alpha, 1e-6), 0.0)
        a8 = np.round(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)
        return np.concatenate([tonemap(straight, exposure), a8], axis=-1)

    def write(self, path: str | os.PathLike[str], *, exposure: float = 0.0) -> Path:
        """Write one file, its format chosen by suffix (.exr, or .png/.jpg...)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".exr":
            write_exr(
                path,
                {
                    "RGB": self.radiance,
                    "albedo": self.albedo,
                    "normal": self.normal,
                    "depth.Z": self.depth,
                    "variance": self.variance,
                    # premultiplied RGB with its alpha, as EXR compositing expects
                    **({"A": self.coverage} if self.transparent else {}),
                },
            )
        elif suffix in LDR_SUFFIXES:
            pixels = self.to_srgb8(exposure)
            if suffix in (".jpg", ".jpeg"):  # no alpha channel in JPEG
                pixels = pixels[..., :3]
            write_ldr(path, pixels)
        else:
            raise ImageError(f"{path}: unknown image type '{suffix}' (use .exr or .png)")
        return path

    def write_outputs(self, stem: str | os.PathLike[str], *, exposure: float = 0.0) -> list[Path]:
        """Write `stem`.exr (linear, all AOVs) and `stem`.png (tonemapped)."""
        stem = output_stem(stem)
        return [
            self.write(stem.with_name(stem.name + ".exr")),
            self.write(stem.with_name(stem.name + ".png"), exposure=exposure),
        ]
