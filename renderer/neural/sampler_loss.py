"""The learned sampler's training loss: a cross-entropy against the learned BRDF.

The sampler is fitted to what the decoder learned (not to the reference), so that it
importance-samples the BRDF the renderer evaluates; no gradient reaches the latents or the
decoder.
"""

from __future__ import annotations

import math

import torch

from ..image_io import LUMINANCE
from .decoder import NeuralBrdf
from .directions import cosine_hemisphere, sample_levels, uniform_hemisphere
from .pyramid import LatentPyramid
from .sampler import NeuralSampler


def sampler_kl_loss(
    sampler: NeuralSampler,
    brdf: NeuralBrdf,
    pyramid: LatentPyramid,
    g: torch.Generator,
    count: int,
    proposals: int,
    level_count: int,
) -> torch.Tensor:
    """Cross-entropy of the sampler against the learned BRDF's f*cos (luminance), i.e. the
    KL divergence up to a constant, estimated per known direction with `proposals`
    candidates drawn half from a cosine lobe and half from the sampler itself (defensive
    importance sampling); only the sampler receives gradients."""
    d = pyramid.latents.device
    uv = torch.rand(count, 2, generator=g).to(d)
    level = sample_levels(g, count, level_count).to(d)
    wo = uniform_hemisphere(torch.rand(count, 2, generator=g)).to(d)
    u = torch.rand(count * proposals, 5, generator=g).to(d)
    with torch.no_grad():
        latent = pyramid(uv, level).repeat_interleave(proposals, 0)
        wo_rep = wo.repeat_interleave(proposals, 0)
        lobes = sampler.lobes(latent, wo_rep)
        own, own_valid = NeuralSampler.sample(lobes, wo_rep, u[:, :3])
        from_cosine = (torch.arange(len(u), device=d) % 2) == 0
        wi = torch.where(from_cosine[:, None], cosine_hemisphere(u[:, 3:5]), own)
        valid = torch.where(from_cosine, torch.ones_like(own_valid), own_valid) & (wi[:, 2] > 0)
        proposal = 0.5 * torch.clamp(wi[:, 2], min=0) / math.pi + 0.5 * NeuralSampler.pdf(
            lobes, wo_rep, wi
        )
        f = brdf(latent, wi, wo_rep) @ torch.tensor(LUMINANCE, dtype=torch.float32, device=d)
        weight = torch.where(valid & (proposal > 0), f / proposal.clamp(min=1e-12), 0.0)
        weight = weight.reshape(count, proposals)
        weight = weight / weight.sum(1, keepdim=True).clamp(min=1e-12)
    p = NeuralSampler.pdf(sampler.lobes(latent, wo_rep), wo_rep, wi)
    return -(weight.reshape(-1) * torch.log(p + 1e-6)).sum() / count
