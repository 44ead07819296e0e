"""Energy of a neural material: its directional albedo, and the per-direction normalisation
the renderer applies so that it never reflects more light than it receives.

A decoder can extrapolate badly where training data is thin, above all at grazing view
directions over smooth coats: baked coated_plastic reflects up to 25x the light it
receives there. `albedo_table` estimates the albedo a(uv, wo) = integral of f * cos over
wi on a coarse grid - `ENERGY_GRID`^2 cells of uv (the finest level's latents at random
points of each cell), `ENERGY_ANGLES` bins of cos(theta_o) and `ENERGY_AZIMUTHS` azimuths -
by importance sampling with the runtime's own sampler (learned lobes plus the defensive
cosine lobe, shaders/neural/neural_bsdf.slang), and keeps the largest over the azimuths.
Each estimate is the median of `ENERGY_GROUPS` means: where the sampler misses a sharp
highlight the one-sample estimator has a heavy tail, and plain means put spurious
"albedo 50" cells anywhere (seen at 512 samples); the median keeps the gross, systematic
excess (coated_plastic's grazing bin: 3.4 in most cells) and drops the outliers.
The renderer multiplies f * cos by min(1, 1 / a), interpolated bilinearly in uv and
linearly in cos(theta_o) (`energy_scale`). Where a <= 1 nothing changes.

A bake stores the table in its `.nmat` (`energy.albedo`, 4-9 s of torch on a 2-core CPU);
for a file baked without one, the renderer computes it when loading. It depends only on
the material and a fixed seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .architecture import ENERGY_ANGLES, ENERGY_GRID
from .directions import cosine_hemisphere
from .nmat import NeuralMaterial
from .sampler import NeuralSampler

ENERGY_AZIMUTHS = 4
ENERGY_SAMPLES = 256  # wi samples per (cell, angle, azimuth)
ENERGY_GROUPS = 8  # median of this many group means: robust to the estimator's heavy tail
DEFENSIVE_COSINE = 0.1  # as shaders/neural/neural_bsdf.slang
ENERGY_SEED = 0x0E4E


def view_directions() -> torch.Tensor:
    """[ENERGY_ANGLES, ENERGY_AZIMUTHS, 3] the table's view directions."""
    cos_t = (torch.arange(ENERGY_ANGLES, dtype=torch.float64) + 0.5) / ENERGY_ANGLES
    phi = (
        2.0 * math.pi * (torch.arange(ENERGY_AZIMUTHS, dtype=torch.float64) + 0.5) / ENERGY_AZIMUTHS
    )
    sin_t = torch.sqrt(1.0 - cos_t**2)
    return torch.stack(
        torch.broadcast_tensors(
            sin_t[:, None] * torch.cos(phi)[None],
            sin_t[:, None] * torch.sin(phi)[None],
            cos_t[:, None].expand(-1, ENERGY_AZIMUTHS),
        ),
        -1,
    ).float()


def estimate_albedo(
    material: NeuralMaterial, uv: torch.Tensor, wo: torch.Tensor, u: torch.Tensor
) -> torch.Tensor:
    """[N] luminance albedo estimates, one sample each: uv [N, 2], wo [N, 3], u [N, 3]
    uniform (u[:, 0] picks the defensive lobe as the runtime does)."""
    from ..image_io import LUMINANCE

    with torch.no_grad():
        latent = material.pyramid()(uv, torch.zeros(len(uv), dtype=torch.long))
        lobes = material.sampler.lobes(latent, wo)
        defensive = u[:, 0] < DEFENSIVE_COSINE
        rescaled = torch.stack(
            [
                ((u[:, 0] - DEFENSIVE_COSINE) / (1 - DEFENSIVE_COSINE)).clamp(0, 1 - 1e-7),
                u[:, 1],
                u[:, 2],
            ],
            -1,
        )
        learned, valid = NeuralSampler.sample(lobes, wo, rescaled)
        wi = torch.where(defensive[:, None], cosine_hemisphere(u[:, 1:3]), learned)
        valid = torch.where(defensive, wi[:, 2] > 1e-6, valid)
        pdf = (1 - DEFENSIVE_COSINE) * NeuralSampler.pdf(
            lobes, wo, wi
        ) + DEFENSIVE_COSINE * torch.clamp(wi[:, 2], min=0) / math.pi
        f = material.brdf(latent, wi, wo) @ torch.tensor(LUMINANCE, dtype=torch.float32)
        ok = valid & (pdf > 0) & (wi[:, 2] > 1e-6)
        return torch.where(ok, f / pdf.clamp(min=1e-12), torch.zeros_like(f))


def albedo_table(
    material: NeuralMaterial, samples: int = ENERGY_SAMPLES, seed: int = ENERGY_SEED
) -> np.ndarray:
    """[ENERGY_GRID, ENERGY_GRID, ENERGY_ANGLES] float32: for each uv cell (row 0 at the
    top, v = 1, as the pyramid) and view angle, the largest over azimuths of the mean
    albedo over the cell, from `samples` directions per entry (a multiple of
    ENERGY_GROUPS)."""
    if samples % ENERGY_GROUPS or samples <= 0:
        raise ValueError(f"samples must be a positive multiple of {ENERGY_GROUPS}, got {samples}")
    g = torch.Generator().manual_seed(seed)
    n = ENERGY_GRID
    views = view_directions().reshape(-1, 3)  # [A * Z, 3]
    cells = n * n
    out = torch.zeros(cells, len(views))
    # cells in batches to bound memory: each is cells x views x samples decoder runs
    per_batch = max(1, (1 << 18) // (len(views) * samples))
    for start in range(0, cells, per_batch):
        idx = torch.arange(start, min(cells, start + per_batch))
        count = len(idx) * len(views) * samples
        row, col = idx // n, idx % n
        jitter = torch.rand(count, 2, generator=g)
        cell_uv = torch.stack([col.float(), (n - 1 - row).float()], -1)  # lower-left corners
        uv = (cell_uv.repeat_interleave(len(views) * samples, 0) + jitter) / n
        wo = views.repeat_interleave(samples, 0).repeat(len(idx), 1)
        u = torch.rand(count, 3, generator=g)
        albedo = estimate_albedo(material, uv, wo, u)
        groups = albedo.reshape(len(idx), len(views), ENERGY_GROUPS, -1).mean(-1)
        out[idx] = groups.median(-1).values
    table = out.reshape(n, n, ENERGY_ANGLES, ENERGY_AZIMUTHS).amax(-1)
    return table.numpy().astype(np.float32)


def energy_scale(table: np.ndarray) -> np.ndarray:
    """min(1, 1 / albedo), what the renderer multiplies f * cos by."""
    return np.minimum(1.0, 1.0 / np.maximum(table, 1e-6)).astype(np.float32)


def energy_summary(table: np.ndarray) -> dict[str, object]:
    """For reports: the largest albedo in each view-angle bin and the share of table
    entries above 1 (those the renderer scales down)."""
    return {
        "cos_theta_o_bins": [round((k + 0.5) / ENERGY_ANGLES, 4) for k in range(ENERGY_ANGLES)],
        "max_albedo": [round(float(v), 4) for v in table.max(axis=(0, 1))],
        "fraction_over_1": round(float((table > 1.0).mean()), 5),
    }
