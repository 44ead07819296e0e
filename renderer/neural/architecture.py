"""Shapes and sizes of a neural material, written down once.

Every model in this package and the `.nmat` loader take their sizes from `Architecture`;
the header of a `.nmat` file stores it as JSON so a file describes itself.

    latent_channels   8      channels per latent texel (the paper's choice)
    decoder_hidden    32,32  BRDF decoder hidden layers; "2x16", "2x32", "3x64" are offered
    sampler_hidden    32x3   sampling-prior MLP hidden layers
    encoder_hidden    64,64  training-only encoder hidden layers
    parameter_channels       spatially varying parameter channels the encoder reads
    width, height            finest latent level, texels (powers of two); levels halve to 1x1
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from ..errors import NrenderError
from ..input_files import parse_json

FRAME_OUTPUTS = 12  # two frames, each an N and a T offset (3 + 3)
DIRECTION_INPUTS = 12  # wi and wo in both frames
SAMPLER_OUTPUTS = 9  # cosine tilt 2, GGX alpha 2, rho 1, mean slope 2, lobe logits 2
DECODER_SIZES = {"2x16": (16, 16), "2x32": (32, 32), "3x64": (64, 64, 64)}
MAX_LEVEL_TEXELS = 4096
ENERGY_GRID = 16  # energy.py's albedo table: uv cells per side
ENERGY_ANGLES = 8  # and bins of cos(theta_o), centred at (k + 0.5) / ENERGY_ANGLES


@dataclass(frozen=True)
class Architecture:
    parameter_channels: int
    width: int
    height: int
    latent_channels: int = 8
    decoder_hidden: tuple[int, ...] = (32, 32)
    sampler_hidden: tuple[int, ...] = (32, 32, 32)
    encoder_hidden: tuple[int, ...] = field(default=(64, 64))

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            size = getattr(self, name)
            if not (1 <= size <= MAX_LEVEL_TEXELS and size & (size - 1) == 0):
                raise NrenderError(
                    f"architecture: {name} must be a power of two in [1, {MAX_LEVEL_TEXELS}], "
                    f"got {size}"
                )
        if not 1 <= self.latent_channels <= 64:
            raise NrenderError(
                f"architecture: latent_channels {self.latent_channels} not in [1, 64]"
            )
        for name in ("decoder_hidden", "sampler_hidden", "encoder_hidden"):
            sizes = getattr(self, name)
            if not sizes or any(not 1 <= s <= 1024 for s in sizes) or len(sizes) > 8:
                raise NrenderError(f"architecture: {name} must be 1-8 sizes in [1, 1024]")

    @property
    def levels(self) -> list[tuple[int, int]]:
        """(height, width) of every latent level, finest first, down to 1x1."""
        out = [(self.height, self.width)]
        while out[-1] != (1, 1):
            h, w = out[-1]
            out.append((max(1, h // 2), max(1, w // 2)))
        return out

    @property
    def lod_offset(self) -> float:
        """0.5 log2(width * height): turns a footprint's log2 width in uv units into a level
        of the pyramid (shaders/neural/pyramid.slang)."""
        return 0.5 * math.log2(self.width * self.height)

    @property
    def decoder_inputs(self) -> int:
        return DIRECTION_INPUTS + self.latent_channels

    @property
    def sampler_inputs(self) -> int:
        return 3 + self.latent_channels

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Architecture:
        data = parse_json(text, "architecture", NrenderError)
        if not isinstance(data, dict):
            raise ValueError("architecture is not a JSON object")
        known = set(Architecture.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown architecture keys {unknown}")
        for key in ("decoder_hidden", "sampler_hidden", "encoder_hidden"):
            if key in data:
                data[key] = tuple(int(v) for v in data[key])
        return Architecture(**data)
