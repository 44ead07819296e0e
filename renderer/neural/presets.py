"""Bake presets: how long and how hard to train.

`quick` fits in a few minutes on a 2-core CPU; `default` is sized for a GPU (a few
minutes there, far longer on a CPU). A test may shrink any preset with
dataclasses.replace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import NrenderError
from .architecture import DECODER_SIZES


@dataclass(frozen=True)
class BakePreset:
    name: str
    max_resolution: int  # finest latent level is the material's, capped here (per side)
    train_queries: int  # reference (uv, wi, wo) pairs
    target_samples: int  # stochastic evaluations averaged per target
    batch: int
    encoder_steps: int  # phase 1: encoder + decoder
    latent_steps: int  # phase 2: latents + decoder
    sampler_steps: int
    # coarse levels train on footprint averages (references.py): pairs as a fraction of
    # train_queries, a grid x grid jittered stratification of each footprint, evaluations
    # per point. The quick preset's 1.0 x 2x2 x 1 costs what its point references cost.
    footprint_fraction: float = 1.0
    footprint_grid: int = 2
    footprint_samples: int = 1
    encoder_lr: float = 1e-2
    decoder_lr: float = 3e-3  # phase 2
    latent_lr: float = 1e-2  # phase 2
    sampler_lr: float = 2e-3
    sampler_batch: int = 1024  # known directions per step
    sampler_proposals: int = 8  # candidate directions per known direction
    final_lr_fraction: float = 0.05  # cosine decay ends here
    checkpoint_every: int = 250
    heldout_queries: int = 1 << 16
    heldout_samples: int = 32
    energy_samples: int = 256  # wi samples per entry of the energy table (energy.py)
    decoder: str = "2x32"

    def __post_init__(self) -> None:
        if not self.footprint_fraction > 0 or min(self.footprint_grid, self.footprint_samples) < 1:
            raise NrenderError(
                f"preset {self.name!r}: footprint_fraction must be > 0 (got "
                f"{self.footprint_fraction}), footprint_grid and footprint_samples >= 1 (got "
                f"{self.footprint_grid}, {self.footprint_samples})"
            )
        if self.decoder not in DECODER_SIZES:
            raise NrenderError(
                f"decoder size {self.decoder!r} is not one of {', '.join(DECODER_SIZES)}"
            )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


PRESETS = {
    "quick": BakePreset(
        name="quick",
        max_resolution=512,
        train_queries=1 << 19,
        target_samples=4,
        batch=4096,
        encoder_steps=1500,
        latent_steps=1500,
        sampler_steps=600,
    ),
    "default": BakePreset(
        name="default",
        max_resolution=2048,
        train_queries=1 << 22,
        target_samples=16,
        batch=16384,
        encoder_steps=20000,
        latent_steps=20000,
        sampler_steps=6000,
        footprint_grid=4,
        checkpoint_every=1000,
        heldout_queries=1 << 18,
        heldout_samples=64,
    ),
}


def preset(name: str) -> BakePreset:
    if name not in PRESETS:
        raise NrenderError(f"unknown bake preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
