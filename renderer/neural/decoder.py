"""The BRDF decoder: latent + directions -> f * cos(theta_i), RGB.

Inputs are the 12 direction values of the learned frames (frames.py) and the 8 latents
(20 in all); hidden layers are `Architecture.decoder_hidden` (2x32 by default), ReLU; the
output is exp(min(raw, raw_limit) - 3), positive by construction and starting near a dim
grey.

`raw_limit` is a guard, not part of the fit: a bake sets it so the output cannot exceed
twice the brightest reference value it trained on (`limit_output`). Where the network
extrapolates, e.g. a smooth coat's highlight carried to grazing angles, an unguarded
decoder has produced f*cos of 10^7, a firefly that no renderer should see.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .architecture import Architecture
from .frames import ShadingFrames
from .mlp import Mlp

OUTPUT_SHIFT = 3.0
UNLIMITED = 80.0  # exp(77) still fits a float32


class NeuralBrdf(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.frames = ShadingFrames(arch.latent_channels)
        self.mlp = Mlp(arch.decoder_inputs, arch.decoder_hidden, 3)
        self.register_buffer("raw_limit", torch.tensor(UNLIMITED))

    def limit_output(self, brightest: float) -> None:
        """Cap f*cos at twice `brightest` (the largest training target)."""
        limit = math.log(2.0 * max(brightest, 1e-3)) + OUTPUT_SHIFT
        self.raw_limit.fill_(min(limit, UNLIMITED))

    def forward(self, latent: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
        """latent [N, C], wi [N, 3] towards the light, wo [N, 3] towards the viewer, both in
        the local frame (normal +Z) -> [N, 3] f * cos(theta_i)."""
        x = torch.cat([self.frames(latent, wi, wo), latent], dim=-1)
        return torch.exp(torch.clamp(self.mlp(x), max=self.raw_limit) - OUTPUT_SHIFT)
