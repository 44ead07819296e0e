"""An Instant-NGP style radiance field: what `nrender nerf train` fits and
shaders/fields/nerf.slang evaluates inside the path tracer.

    field = NerfField(NerfConfig(), aabb)
    sigma, rgb = field(points, directions)       # world points [B, 3], unit directions [B, 3]

- The field lives in a box `aabb` ([2, 3]: min, max corner) of its dataset's world; a
  point x is encoded at u = (x - min) / (max - min) in [0, 1]^3 by the hash grid.
- Density network: encoding -> `density_width` (ReLU) -> 1 + `geometry_features`; the
  density is sigma = exp(min(raw_0, DENSITY_RAW_MAX)) per unit of world length (Instant-NGP's
  exponential activation, capped so a float cannot overflow), and the other outputs are
  geometry features for the colour network.
- Colour network: [SH(view direction) (sh_degree^2 values), geometry features] ->
  `color_width` x `color_layers` (ReLU) -> 3, through a sigmoid. Colours are the dataset's
  (sRGB-encoded, as PNG pixels are); the path tracer decodes them to linear radiance.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..neural.mlp import Mlp
from .hash_grid import HashGrid, HashGridConfig
from .spherical_harmonics import MAX_DEGREE, sh_count, spherical_harmonics

DENSITY_RAW_MAX = 15.0  # exp(15) = 3.3e6 per unit length: opaque at any step size
MAX_WIDTH = 64  # as MLP_MAX_WIDTH in shaders/neural/mlp.slang
MAX_MARCH_STEPS = 4096
MAX_OCCUPANCY = 256


@dataclass(frozen=True)
class NerfConfig:
    """The field's architecture and how it is marched."""

    grid: HashGridConfig = field(default_factory=HashGridConfig)
    density_width: int = 64
    geometry_features: int = 15
    color_width: int = 64
    color_layers: int = 2
    sh_degree: int = MAX_DEGREE
    occupancy_resolution: int = 128  # cells per axis of the occupancy bitfield
    march_steps: int = 1024  # samples along the box's diagonal: step = diagonal / this

    def __post_init__(self) -> None:
        checks = (
            (1 <= self.density_width <= MAX_WIDTH, f"density_width in [1, {MAX_WIDTH}]"),
            (1 <= self.color_width <= MAX_WIDTH, f"color_width in [1, {MAX_WIDTH}]"),
            (1 <= self.color_layers <= 4, "color_layers in [1, 4]"),
            (
                1 <= self.sh_degree <= MAX_DEGREE,
                f"sh_degree in [1, {MAX_DEGREE}]",
            ),
            (
                self.geometry_features >= 0
                and sh_count(self.sh_degree) + self.geometry_features <= MAX_WIDTH
                and 1 + self.geometry_features <= MAX_WIDTH,
                f"geometry_features >= 0 with sh_degree^2 + geometry_features <= {MAX_WIDTH}",
            ),
            (
                4 <= self.occupancy_resolution <= MAX_OCCUPANCY
                and self.occupancy_resolution % 4 == 0,
                f"occupancy_resolution a multiple of 4 in [4, {MAX_OCCUPANCY}]",
            ),
            (
                8 <= self.march_steps <= MAX_MARCH_STEPS,
                f"march_steps in [8, {MAX_MARCH_STEPS}]",
            ),
        )
        for ok, what in checks:
            if not ok:
                raise ValueError(f"bad field architecture: needs {what} ({self})")

    @property
    def encoding_width(self) -> int:
        return self.grid.levels * self.grid.features

    @property
    def color_inputs(self) -> int:
        return sh_count(self.sh_degree) + self.geometry_features

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> NerfConfig:
        """The config of `to_json`; ValueError/TypeError/KeyError on anything else."""
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("grid"), dict):
            raise ValueError("the architecture is not an object with a 'grid' object")
        known = set(NerfConfig.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown architecture keys {sorted(unknown)}")
        for key, value in list(data.items()) + list(data["grid"].items()):
            if key != "grid" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"architecture key {key!r} must be an integer, got {value!r}")
        grid = HashGridConfig(**data.pop("grid"))
        return NerfConfig(grid=grid, **data)


def box_diagonal(aabb: torch.Tensor) -> float:
    return float((aabb[1] - aabb[0]).norm())


class NerfField(nn.Module):
    """Hash grid, density network and colour network over the box `aabb` [2, 3]."""

    def __init__(self, config: NerfConfig, aabb: torch.Tensor, seed: int = 0) -> None:
        super().__init__()
        aabb = torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3)
        if not (torch.isfinite(aabb).all() and (aabb[1] > aabb[0]).all()):
            raise ValueError(f"the field's box must be finite with min < max, got {aabb.tolist()}")
        self.config = config
        self.register_buffer("aabb", aabb.clone())
        with torch.random.fork_rng(devices=[]):  # seeded layers, the caller's RNG untouched
            torch.manual_seed(seed)
            self.grid = HashGrid(config.grid, seed=seed)
            self.density = Mlp(
                config.encoding_width, (config.density_width,), 1 + config.geometry_features
            )
            self.color = Mlp(config.color_inputs, (config.color_width,) * config.color_layers, 3)

    @property
    def step(self) -> float:
        """The marching step in world units: the box's diagonal / march_steps."""
        return box_diagonal(self.aabb) / self.config.march_steps

    def to_unit(self, points: torch.Tensor) -> torch.Tensor:
        return (points - self.aabb[0]) / (self.aabb[1] - self.aabb[0])

    def _density(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.density(self.grid(self.to_unit(points)))
        sigma = torch.exp(raw[:, 0].clamp(max=DENSITY_RAW_MAX))
        return sigma, raw[:, 1:]

    def density_at(self, points: torch.Tensor) -> torch.Tensor:
        """[B] densities at world points [B, 3]."""
        return self._density(points)[0]

    def forward(
        self, points: torch.Tensor, directions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Density [B] and colour [B, 3] at world points [B, 3] seen along unit `directions`."""
        sigma, geometry = self._density(points)
        sh = spherical_harmonics(directions, self.config.sh_degree)
        rgb = torch.sigmoid(self.color(torch.cat([sh, geometry], dim=-1)))
        return sigma, rgb


def occupancy_cells(config: NerfConfig) -> int:
    return config.occupancy_resolution**3


def parameter_count(field_: NerfField) -> int:
    return sum(p.numel() for p in field_.parameters())


def diag_steps(aabb: torch.Tensor, step: float) -> int:
    """Samples a ray needs at most to cross the box at `step`."""
    return math.ceil(box_diagonal(aabb) / step) + 1
