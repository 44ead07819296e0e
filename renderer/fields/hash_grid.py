"""The multiresolution hash encoding (Mueller et al., "Instant Neural Graphics Primitives",
2022) as a torch module: what training fits and shaders/fields/hash_grid.slang evaluates.

    grid = HashGrid(HashGridConfig(levels=16, features=2, log2_table=19))
    features = grid(points)            # points [B, 3] in [0, 1]^3 -> [B, 32]

Level l has floor(N_min * b^l) cells per axis, with b the growth factor that takes N_min to
N_max over the levels. A level whose vertices fit its table is indexed densely; finer
levels use the spatial hash (i * 1) XOR (j * 2654435761) XOR (k * 805459861) modulo the
table size, in 32-bit unsigned arithmetic. A point's features on a level are the
trilinear interpolation of its cell's eight vertices (the conventions are written once, in
the Slang file's header, and tests/test_hash_grid.py holds both sides to them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

HASH_PRIMES = (1, 2654435761, 805459861)
MAX_ENCODING = 64  # levels * features, as MAX_ENCODING in hash_grid.slang
_MASK32 = 0xFFFFFFFF


@dataclass(frozen=True)
class HashGridConfig:
    """The encoding's shape: `levels` grids of `features` floats per vertex, 2^log2_table
    vertices per level at most, resolutions growing geometrically from `base_resolution`
    to `max_resolution` cells per axis."""

    levels: int = 16
    features: int = 2
    log2_table: int = 19
    base_resolution: int = 16
    max_resolution: int = 2048

    def __post_init__(self) -> None:
        if not 1 <= self.levels * self.features <= MAX_ENCODING:
            raise ValueError(
                f"levels x features must be in [1, {MAX_ENCODING}], "
                f"got {self.levels} x {self.features}"
            )
        if not 1 <= self.log2_table <= 24:
            raise ValueError(f"log2_table must be in [1, 24], got {self.log2_table}")
        if not 1 <= self.base_resolution <= self.max_resolution <= 1 << 20:
            raise ValueError(
                "resolutions must satisfy 1 <= base <= max <= 2^20, got "
                f"{self.base_resolution} and {self.max_resolution}"
            )

    @property
    def table_size(self) -> int:
        return 1 << self.log2_table

    @property
    def growth(self) -> float:
        if self.levels == 1:
            return 1.0
        ratio = math.log(self.max_resolution) - math.log(self.base_resolution)
        return math.exp(ratio / (self.levels - 1))

    def resolutions(self) -> np.ndarray:
        """[levels] uint32 cells per axis of each level, computed once here (in float64)
        and uploaded, so host and device never round them differently."""
        b = self.growth
        cells = [math.floor(self.base_resolution * b**level + 1e-9) for level in range(self.levels)]
        return np.array([max(1, c) for c in cells], np.uint32)

    def is_dense(self, cells: int) -> bool:
        return (cells + 1) ** 3 <= self.table_size


def vertex_index(vertex: torch.Tensor, cells: int, config: HashGridConfig) -> torch.Tensor:
    """Table slots [...] (int64) of grid vertices `vertex` [..., 3] (int64) on a level of
    `cells` cells per axis: dense, or the spatial hash."""
    side = cells + 1
    i, j, k = vertex.unbind(-1)
    if config.is_dense(cells):
        return i + side * (j + side * k)
    # 32-bit unsigned products, as the kernel's uint arithmetic (int64 cannot overflow:
    # vertex coordinates stay below 2^21)
    y, z = (j * HASH_PRIMES[1]) & _MASK32, (k * HASH_PRIMES[2]) & _MASK32
    return ((i * HASH_PRIMES[0]) ^ y ^ z) & (config.table_size - 1)


_CORNERS = torch.tensor([[c & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)])


class HashGrid(nn.Module):
    """The encoding with its trainable table [levels, 2^log2_table, features]."""

    def __init__(self, config: HashGridConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        generator = torch.Generator().manual_seed(seed)
        # Instant-NGP's initialisation: small uniform values, so early training is
        # driven by the MLPs, not by noise in the table.
        table = torch.rand((config.levels, config.table_size, config.features), generator=generator)
        self.table = nn.Parameter((table * 2 - 1) * 1e-4)
        # plain ints: reading them from a device tensor would sync a GPU every level
        self.cells = [int(c) for c in config.resolutions()]
        self.register_buffer("corners", _CORNERS.clone(), persistent=False)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """[B, levels * features] encodings of `points` [B, 3] (clamped to [0, 1]^3)."""
        p01 = points.clamp(0.0, 1.0)
        corners = self.corners
        outputs = []
        for level, cells in enumerate(self.cells):
            p = p01 * cells
            cell = torch.floor(p).long().clamp(max=cells - 1)
            t = p - cell
            vertices = cell[:, None, :] + corners[None]  # [B, 8, 3]
            weights = torch.where(corners[None] == 1, t[:, None, :], 1 - t[:, None, :]).prod(-1)
            values = self.table[level][vertex_index(vertices, cells, self.config)]  # [B, 8, F]
            outputs.append((weights[..., None] * values).sum(1))
        return torch.cat(outputs, dim=-1)
