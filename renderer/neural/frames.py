"""Learned shading frames (graphics prior 1 of the paper).

A linear layer without bias maps the latent [N, 8] to 12 numbers: for each of two frames an
offset of the normal and of the tangent. N = normalize(raw_n + (0, 0, 1)),
T = normalize(raw_t + (1, 0, 0)) made orthogonal to N, B = N x T. Both directions are then
expressed in both frames, giving the decoder's 12 direction inputs. A zero layer gives the
geometric frame twice, so training starts from the plain local-frame parameterisation.
"""

from __future__ import annotations

import torch
from torch import nn

from .architecture import FRAME_OUTPUTS

_EPS = 1e-12


def _normalize(v: torch.Tensor) -> torch.Tensor:
    return v * torch.rsqrt((v * v).sum(-1, keepdim=True) + _EPS)


class ShadingFrames(nn.Module):
    def __init__(self, latent_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(FRAME_OUTPUTS, latent_channels))

    def forward(self, latent: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
        """latent [N, C], wi/wo [N, 3] local unit vectors -> [N, 12]: for frame 0 then 1,
        (wi.T, wi.B, wi.N, wo.T, wo.B, wo.N)."""
        raw = latent @ self.weight.t()
        z = raw.new_tensor([0.0, 0.0, 1.0])
        x = raw.new_tensor([1.0, 0.0, 0.0])
        out = []
        for f in range(2):
            n = _normalize(raw[:, 6 * f : 6 * f + 3] + z)
            t = raw[:, 6 * f + 3 : 6 * f + 6] + x
            t = _normalize(t - n * (n * t).sum(-1, keepdim=True))
            b = torch.cross(n, t, dim=-1)
            for w in (wi, wo):
                out += [(w * t).sum(-1), (w * b).sum(-1), (w * n).sum(-1)]
        return torch.stack(out, dim=-1)
