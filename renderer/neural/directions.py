"""Where baking looks: texture coordinates, direction pairs and mip levels.

Training pairs come from a scrambled Sobol sequence (stratified and reproducible):
three quarters are drawn in half/difference space (Rusinkiewicz), with the half vector
crowded towards the normal (theta_h = pi/2 u^2) so that sharp highlights get samples; the
rest are independent wi and wo uniform over the hemisphere, which cover the whole domain
evenly, grazing angles included.
Pairs with a direction at or below the horizon are dropped: a neural material is a BRDF.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

HALF_DIFFERENCE_FRACTION = 0.75
FINEST_LEVEL_PROBABILITY = 0.5
MIN_COSINE = 1e-3


def cosine_hemisphere(u: torch.Tensor) -> torch.Tensor:
    """[N, 2] uniform -> [N, 3] cosine-distributed directions about +Z."""
    r = torch.sqrt(u[:, 0])
    phi = 2.0 * math.pi * u[:, 1]
    z = torch.sqrt(torch.clamp(1.0 - u[:, 0], min=0.0))
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)


def uniform_hemisphere(u: torch.Tensor) -> torch.Tensor:
    """[N, 2] uniform -> [N, 3] directions uniform over the upper hemisphere (pdf 1/2pi)."""
    z = u[:, 0]
    r = torch.sqrt(torch.clamp(1.0 - z * z, min=0.0))
    phi = 2.0 * math.pi * u[:, 1]
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)


def _half_difference(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    theta_h = 0.5 * math.pi * u[:, 0] ** 2
    phi_h = 2.0 * math.pi * u[:, 1]
    theta_d = 0.5 * math.pi * u[:, 2]
    phi_d = 2.0 * math.pi * u[:, 3]
    d = torch.stack(
        [
            torch.sin(theta_d) * torch.cos(phi_d),
            torch.sin(theta_d) * torch.sin(phi_d),
            torch.cos(theta_d),
        ],
        -1,
    )
    mirrored = d * d.new_tensor([-1.0, -1.0, 1.0])

    def to_world(v: torch.Tensor) -> torch.Tensor:
        ch, sh = torch.cos(theta_h), torch.sin(theta_h)
        x = v[:, 0] * ch + v[:, 2] * sh
        z = -v[:, 0] * sh + v[:, 2] * ch
        cp, sp = torch.cos(phi_h), torch.sin(phi_h)
        return torch.stack([x * cp - v[:, 1] * sp, x * sp + v[:, 1] * cp, z], -1)

    return to_world(d), to_world(mirrored)


def _valid_pairs(
    count: int, seed: int, pairs: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    engine = torch.quasirandom.SobolEngine(dimension=6, scramble=True, seed=seed)
    uv_parts, wi_parts, wo_parts = [], [], []
    have = 0
    while have < count:
        u = engine.draw(max(1024, 2 * (count - have)), dtype=torch.float64)
        wi, wo = pairs(u[:, 2:6])
        keep = (wi[:, 2] > MIN_COSINE) & (wo[:, 2] > MIN_COSINE)
        keep &= torch.cumsum(keep.long(), 0) <= count - have
        uv_parts.append(u[keep, :2])
        wi_parts.append(wi[keep])
        wo_parts.append(wo[keep])
        have += int(keep.sum())
    return torch.cat(uv_parts), torch.cat(wi_parts), torch.cat(wo_parts)


def training_pairs(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uv [count, 2], wi [count, 3], wo [count, 3] as float32, all above the horizon."""
    half_count = round(count * HALF_DIFFERENCE_FRACTION)
    a = _valid_pairs(half_count, seed, _half_difference)
    b = _valid_pairs(
        count - half_count,
        seed + 1,
        lambda u: (uniform_hemisphere(u[:, 0:2]), uniform_hemisphere(u[:, 2:4])),
    )
    uv, wi, wo = (torch.cat([x, y]) for x, y in zip(a, b, strict=True))

    def unit(v: torch.Tensor) -> np.ndarray:
        return (v / v.norm(dim=-1, keepdim=True)).float().numpy()

    return uv.float().numpy(), unit(wi), unit(wo)


def sample_levels(generator: torch.Generator, count: int, level_count: int) -> torch.Tensor:
    """Mip level per lookup: the finest half the time, the others uniformly, so that every
    level of the pyramid is trained for the footprints the path tracer will ask for."""
    if level_count == 1:
        return torch.zeros(count, dtype=torch.long)
    coarse = torch.randint(1, level_count, (count,), generator=generator)
    finest = torch.rand(count, generator=generator) < FINEST_LEVEL_PROBABILITY
    return torch.where(finest, torch.zeros_like(coarse), coarse)


def step_generator(seed: int, phase: int, step: int) -> torch.Generator:
    """The random numbers of one training step depend on (seed, phase, step) only, so a
    resumed bake draws exactly what an uninterrupted one would."""
    return torch.Generator().manual_seed((seed * 1_000_003 + phase * 7_919 + step) % (2**63))
