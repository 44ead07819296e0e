"""Volume rendering of a field along rays, in torch: what training differentiates, what
`nrender nerf render` and the training report draw, and what the path tracer's marcher
(shaders/fields/nerf.slang) is held to.

Conventions (the kernel follows them exactly)
- A ray o + t d (d unit, world space of the field) is clipped to the field's box:
  [t0, t1] with t0 >= `t_near`. Samples sit on the lattice t_k = t0 + (k + jitter) step,
  k = 0, 1, ... while t_k < min(t1, t_far), with jitter in [0, 1) per ray.
- A sample whose occupancy cell is empty has zero density; others have the field's.
- alpha_k = 1 - exp(-sigma_k step); T_k = prod_{j<k} (1 - alpha_j); the colour is
  sum_k T_k alpha_k c_k, and what remains, T, sees the background.
- With `early_stop`, marching ends at the first sample whose T_k is below
  TRANSMITTANCE_STOP, and the ray counts as opaque (T = 0): Instant-NGP's early ray
  termination, which the path tracer uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .nerf import NerfField, diag_steps
from .occupancy import OccupancyGrid

TRANSMITTANCE_STOP = 0.01


def box_interval(
    origins: torch.Tensor, dirs: torch.Tensor, aabb: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances [R] of rays into the box (entry >= exit: a miss)."""
    safe = torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    inv = 1.0 / safe
    ta = (aabb[0] - origins) * inv
    tb = (aabb[1] - origins) * inv
    t0 = torch.minimum(ta, tb).amax(-1)
    t1 = torch.maximum(ta, tb).amin(-1)
    return t0, t1


@dataclass
class RaySamples:
    """Samples of a batch of rays on the dense [R, K] lattice; `valid` marks those inside
    the box and in occupied cells (only those are evaluated)."""

    t: torch.Tensor  # [R, K]
    valid: torch.Tensor  # [R, K] bool
    points: torch.Tensor  # [N, 3] the valid samples' world positions
    dirs: torch.Tensor  # [N, 3]


def sample_rays(
    field: NerfField,
    occupancy: OccupancyGrid | None,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    jitter: torch.Tensor,
    t_near: float = 0.0,
    t_far: torch.Tensor | None = None,
) -> RaySamples:
    step = field.step
    t0, t1 = box_interval(origins, dirs, field.aabb)
    t0 = t0.clamp(min=t_near)
    if t_far is not None:
        t1 = torch.minimum(t1, t_far)
    length = (t1 - t0).clamp(min=0.0)
    k_max = min(
        int(torch.ceil(length.max() / step).item()) + 1 if len(length) else 1,
        diag_steps(field.aabb, step),
    )
    k = torch.arange(max(k_max, 1), device=origins.device, dtype=origins.dtype)
    t = t0[:, None] + (k[None, :] + jitter[:, None]) * step
    inside = t < t1[:, None]
    points = origins[:, None, :] + t[..., None] * dirs[:, None, :]
    valid = inside
    if occupancy is not None:
        flat = points[inside]
        occupied = occupancy.lookup(field.to_unit(flat))
        valid = inside.clone()
        valid[inside] = occupied
    return RaySamples(t, valid, points[valid], dirs[:, None, :].expand_as(points)[valid])


def composite(
    samples: RaySamples,
    sigma: torch.Tensor,
    rgb: torch.Tensor,
    step: float,
    early_stop: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour [R, 3] and remaining transmittance [R] from the valid samples' densities [N]
    and colours [N, 3]."""
    rays, k = samples.t.shape
    dense_sigma = torch.zeros((rays, k), dtype=sigma.dtype, device=sigma.device)
    dense_sigma = dense_sigma.masked_scatter(samples.valid, sigma)
    dense_rgb = torch.zeros((rays, k, 3), dtype=rgb.dtype, device=rgb.device)
    dense_rgb = dense_rgb.masked_scatter(samples.valid[..., None].expand(-1, -1, 3), rgb)
    optical = dense_sigma * step
    # T_k = exp(-sum_{j<k} sigma_j step): exclusive cumulative sum
    before = torch.cumsum(optical, dim=1) - optical
    transmittance = torch.exp(-before)
    alpha = 1.0 - torch.exp(-optical)
    weights = transmittance * alpha
    remaining = torch.exp(-optical.sum(dim=1))
    if early_stop:
        live = transmittance >= TRANSMITTANCE_STOP
        weights = weights * live
        remaining = torch.where(live.all(dim=1), remaining, torch.zeros_like(remaining))
    color = (weights[..., None] * dense_rgb).sum(dim=1)
    return color, remaining


def prune_occluded(field: NerfField, samples: RaySamples, cutoff: float) -> RaySamples:
    """`samples` without those behind transmittance `cutoff`, found by a density-only pass
    without gradients (training's cheap first pass: the colour network and the backward
    pass then see only samples that can matter, nerfacc's recipe)."""
    with torch.no_grad():
        sigma = field.density_at(samples.points)
        dense = torch.zeros(samples.t.shape, dtype=sigma.dtype, device=sigma.device)
        optical = dense.masked_scatter(samples.valid, sigma) * field.step
        before = torch.cumsum(optical, dim=1) - optical
        keep = torch.exp(-before)[samples.valid] >= cutoff
    valid = samples.valid.clone()
    valid[samples.valid] = keep
    return RaySamples(samples.t, valid, samples.points[keep], samples.dirs[keep])


def render_rays(
    field: NerfField,
    occupancy: OccupancyGrid | None,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    background: torch.Tensor,
    jitter: torch.Tensor | None = None,
    early_stop: bool = False,
    prune: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour [R, 3] over `background` ([3] or [R, 3]) and transmittance [R] of rays;
    `prune` drops samples behind that transmittance first (prune_occluded)."""
    if jitter is None:
        jitter = torch.full((len(origins),), 0.5, device=origins.device)
    samples = sample_rays(field, occupancy, origins, dirs, jitter)
    if prune is not None and len(samples.points):
        samples = prune_occluded(field, samples, prune)
    if len(samples.points):
        sigma, rgb = field(samples.points, samples.dirs)
    else:
        sigma = torch.zeros(0, device=origins.device)
        rgb = torch.zeros((0, 3), device=origins.device)
    color, remaining = composite(samples, sigma, rgb, field.step, early_stop)
    return color + remaining[:, None] * background, remaining


@torch.no_grad()
def render_image(
    field: NerfField,
    occupancy: OccupancyGrid | None,
    c2w: torch.Tensor,
    focal: float,
    width: int,
    height: int,
    background: torch.Tensor,
    chunk: int = 1 << 12,
) -> tuple[torch.Tensor, torch.Tensor]:
    """[H, W, 3] colour over `background` and [H, W] opacity of one view, rays through
    pixel centres, with early termination (as the path tracer marches)."""
    from .cameras import pixel_rays

    device = field.aabb.device
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij"
    )
    pixels = torch.stack([xs, ys], dim=-1).reshape(-1, 2).float() + 0.5
    colors, alphas = [], []
    for start in range(0, len(pixels), chunk):
        o, d = pixel_rays(
            c2w.to(device).float(), focal, width, height, pixels[start : start + chunk]
        )
        # pruning at the early-stop transmittance drops exactly the samples early
        # termination ignores, before the colour network sees them
        color, remaining = render_rays(
            field, occupancy, o, d, background, early_stop=True, prune=TRANSMITTANCE_STOP
        )
        colors.append(color)
        alphas.append(1.0 - remaining)
    return torch.cat(colors).reshape(height, width, 3), torch.cat(alphas).reshape(height, width)
