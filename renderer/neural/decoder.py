"""The BRDF decoder: latent + directions -> f * cos(theta_i), RGB.

Inputs are the 12 direction values of the learned frames (frames.py) and the 8 latents
(20 in all); hidden layers are `Architecture.decoder_hidden` (2x32 by default), ReLU; the
output is exp(raw - 3), positive by construction and starting near a dim grey.
"""

from __future__ import annotations

import torch
from torch import nn

from .architecture import Architecture
from .frames import ShadingFrames
from .mlp import Mlp

OUTPUT_SHIFT = 3.0


class NeuralBrdf(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.frames = ShadingFrames(arch.latent_channels)
        self.mlp = Mlp(arch.decoder_inputs, arch.decoder_hidden, 3)

    def forward(self, latent: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
        """latent [N, C], wi [N, 3] towards the light, wo [N, 3] towards the viewer, both in
        the local frame (normal +Z) -> [N, 3] f * cos(theta_i)."""
        x = torch.cat([self.frames(latent, wi, wo), latent], dim=-1)
        return torch.exp(self.mlp(x) - OUTPUT_SHIFT)
