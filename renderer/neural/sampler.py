"""The learned sampler (graphics prior 2): where to send the next ray.

Given the known direction wo (towards the viewer; the paper calls it wi) and the latent,
an MLP (`Architecture.sampler_hidden`, 32x3 by default) outputs 9 numbers describing a
two-lobe mixture over the incoming direction wi:

    0-1  tilt (tx, ty) of a cosine lobe around the axis normalize(tx, ty, 1)
    2-3  alpha_x, alpha_y of a GGX distribution of microfacet slopes, in [0.002, 1.502]
    4    its slope correlation rho, in (-0.95, 0.95)
    5-6  its mean slope (non-centred: the peak may sit off the normal)
    7-8  lobe logits; a softmax gives the cosine and GGX weights

A GGX sample draws slopes s = mean + L z (z from the unit isotropic slope distribution,
L the Cholesky factor of [[ax^2, rho ax ay], [rho ax ay, ay^2]]), takes the half vector
h = normalize(-s_x, -s_y, 1) and reflects wo about it. Both lobes have analytic densities
over the sphere of directions; samples at or below the horizon are returned with `valid`
False and have density 0 (their mass is simply lost, which keeps estimators unbiased).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .architecture import SAMPLER_OUTPUTS, Architecture
from .mlp import Mlp

ALPHA_MIN, ALPHA_RANGE = 0.002, 1.5
RHO_MAX = 0.95
_EPS = 1e-12


@dataclass
class SamplerLobes:
    """The mixture for a batch, every field [N] or [N, k]."""

    axis: torch.Tensor  # [N, 3] cosine lobe axis
    alpha: torch.Tensor  # [N, 2]
    rho: torch.Tensor  # [N]
    mean: torch.Tensor  # [N, 2]
    weights: torch.Tensor  # [N, 2] cosine, GGX


def _frame_around(axis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit tangents completing `axis` (Duff et al. 2017 branchless basis)."""
    x, y, z = axis.unbind(-1)
    sign = torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))
    a = -1.0 / (sign + z)
    b = x * y * a
    t = torch.stack([1.0 + sign * x * x * a, sign * b, -sign * x], -1)
    s = torch.stack([b, sign + y * y * a, -y], -1)
    return t, s


class NeuralSampler(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.mlp = Mlp(arch.sampler_inputs, arch.sampler_hidden, SAMPLER_OUTPUTS)

    def lobes(self, latent: torch.Tensor, wo: torch.Tensor) -> SamplerLobes:
        raw = self.mlp(torch.cat([wo, latent], dim=-1))
        tilt = raw[:, 0:2]
        axis = torch.cat([tilt, torch.ones_like(tilt[:, :1])], -1)
        axis = axis * torch.rsqrt((axis * axis).sum(-1, keepdim=True))
        return SamplerLobes(
            axis=axis,
            alpha=ALPHA_MIN + ALPHA_RANGE * torch.sigmoid(raw[:, 2:4]),
            rho=RHO_MAX * torch.tanh(raw[:, 4]),
            mean=raw[:, 5:7],
            weights=torch.softmax(raw[:, 7:9], dim=-1),
        )

    @staticmethod
    def pdf(lobes: SamplerLobes, wo: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
        """[N] solid-angle density of wi; 0 at and below the horizon, where `sample`
        returns nothing valid."""
        cos_pdf = torch.clamp((wi * lobes.axis).sum(-1), min=0.0) / math.pi
        h = wi + wo
        h = h * torch.rsqrt((h * h).sum(-1, keepdim=True) + _EPS)
        hz = h[:, 2]
        ok = (hz > 1e-6) & ((wi * h).sum(-1) > 0)
        hz_safe = torch.where(ok, hz, torch.ones_like(hz))
        slope = -h[:, :2] / hz_safe[:, None]
        ax, ay = lobes.alpha[:, 0], lobes.alpha[:, 1]
        root = torch.sqrt(1.0 - lobes.rho * lobes.rho)
        # z = L^-1 (slope - mean) with L = [[ax, 0], [rho ay, ay root]]
        d = slope - lobes.mean
        z0 = d[:, 0] / ax
        z1 = (d[:, 1] - lobes.rho * ay * z0) / (ay * root)
        p22 = 1.0 / (math.pi * ax * ay * root * (1.0 + z0 * z0 + z1 * z1) ** 2)
        wo_h = torch.clamp((wo * h).sum(-1), min=1e-6)
        ggx_pdf = p22 / (hz_safe**3) / (4.0 * wo_h)
        ggx_pdf = torch.where(ok, ggx_pdf, torch.zeros_like(ggx_pdf))
        total = lobes.weights[:, 0] * cos_pdf + lobes.weights[:, 1] * ggx_pdf
        return torch.where(wi[:, 2] > 1e-6, total, torch.zeros_like(total))

    @staticmethod
    def sample(
        lobes: SamplerLobes, wo: torch.Tensor, u: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """u [N, 3] uniform -> (wi [N, 3], valid [N]); u[:, 0] picks the lobe."""
        # cosine lobe around the axis
        r = torch.sqrt(u[:, 1])
        phi = 2.0 * math.pi * u[:, 2]
        local = torch.stack(
            [r * torch.cos(phi), r * torch.sin(phi), torch.sqrt(torch.clamp(1 - u[:, 1], min=0))],
            -1,
        )
        t, s = _frame_around(lobes.axis)
        wi_cos = local[:, :1] * t + local[:, 1:2] * s + local[:, 2:3] * lobes.axis
        # GGX slopes: radius of the unit distribution has CDF r^2 / (1 + r^2)
        u1 = torch.clamp(u[:, 1], max=1.0 - 1e-7)
        radius = torch.sqrt(u1 / (1.0 - u1))
        z0, z1 = radius * torch.cos(phi), radius * torch.sin(phi)
        ax, ay = lobes.alpha[:, 0], lobes.alpha[:, 1]
        root = torch.sqrt(1.0 - lobes.rho * lobes.rho)
        sx = lobes.mean[:, 0] + ax * z0
        sy = lobes.mean[:, 1] + lobes.rho * ay * z0 + ay * root * z1
        h = torch.stack([-sx, -sy, torch.ones_like(sx)], -1)
        h = h * torch.rsqrt((h * h).sum(-1, keepdim=True))
        wo_h = (wo * h).sum(-1, keepdim=True)
        wi_ggx = 2.0 * wo_h * h - wo
        use_cos = u[:, 0] < lobes.weights[:, 0]
        wi = torch.where(use_cos[:, None], wi_cos, wi_ggx)
        wi = wi * torch.rsqrt((wi * wi).sum(-1, keepdim=True) + _EPS)
        valid = (wi[:, 2] > 1e-6) & (use_cos | (wo_h[:, 0] > 0))
        return wi, valid
