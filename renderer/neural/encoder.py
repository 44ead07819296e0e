"""The encoder (training only): stacked per-texel parameters -> latent.

An MLP (`Architecture.encoder_hidden`, 64x2 by default) maps the C parameter channels of
one texel, normalised by their mean and spread over the finest level, to the latent.
During phase 1 the four texels around a lookup are encoded and blended bilinearly, exactly
as the baked pyramid will be read, so the encoder learns what the pyramid will hold.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .architecture import Architecture
from .mlp import Mlp
from .parameters import ParameterStack
from .pyramid import LevelIndex


class Encoder(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.mlp = Mlp(arch.parameter_channels, arch.encoder_hidden, arch.latent_channels)

    def forward(self, parameters: torch.Tensor) -> torch.Tensor:
        return self.mlp(parameters)


class EncodedPyramid:
    """Parameters of every level, flat like the latent pyramid, and their normalisation."""

    def __init__(self, stack: ParameterStack, index: LevelIndex) -> None:
        flat = np.concatenate([lvl.reshape(-1, lvl.shape[-1]) for lvl in stack.levels])
        finest = stack.levels[0].reshape(-1, stack.channels)
        mean = finest.mean(axis=0)
        spread = np.maximum(finest.std(axis=0), 1e-3)
        normalised = ((flat - mean) / spread).astype(np.float32)
        self.flat = torch.from_numpy(normalised).to(index.offsets.device)
        self.index = index

    def lookup(self, encoder: Encoder, uv: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        index, weight = self.index.taps(uv, level)
        latents = encoder(self.flat[index.reshape(-1)]).reshape(*index.shape, -1)
        return (latents * weight[..., None]).sum(1)

    def bake(self, encoder: Encoder, chunk: int = 1 << 16) -> torch.Tensor:
        """Run the encoder on every texel of every level -> flat latents [texels, C]."""
        with torch.no_grad():
            return torch.cat(
                [encoder(self.flat[i : i + chunk]) for i in range(0, len(self.flat), chunk)]
            )
