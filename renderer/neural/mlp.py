"""A plain ReLU multilayer perceptron, the building block of every network here."""

from __future__ import annotations

import itertools

import torch
from torch import nn


class Mlp(nn.Module):
    """inputs -> hidden... (ReLU) -> outputs (linear). Parameters are named
    `layers.{i}.weight` / `layers.{i}.bias`, which is how `.nmat` files store them."""

    def __init__(self, inputs: int, hidden: tuple[int, ...], outputs: int) -> None:
        super().__init__()
        sizes = [inputs, *hidden, outputs]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = torch.relu(x)
        return x
