"""Fields whose outputs are known in closed form, for the NeRF tests."""

from __future__ import annotations

import math

import numpy as np
import torch

from renderer.fields.nerf import NerfConfig, NerfField
from renderer.fields.nfield import NerfFile
from renderer.fields.occupancy import OccupancyGrid

METADATA = {"dataset": "synthetic", "dataset_hash": "0", "preset": "{}", "training": "{}"}


def constant_field(
    config: NerfConfig, sigma: float, srgb: list[float] | tuple[float, ...], occupied: bool = True
) -> NerfFile:
    """A field over [-1, 1]^3 with density `sigma` (0: exactly zero) and sRGB colour `srgb`
    everywhere: zero weights, the last biases set; every occupancy cell `occupied`."""
    field = NerfField(config, torch.tensor([[-1.0] * 3, [1.0] * 3]))
    with torch.no_grad():
        for p in [*field.grid.parameters(), *field.density.parameters(), *field.color.parameters()]:
            p.zero_()
        field.density.layers[-1].bias[0] = math.log(sigma) if sigma > 0 else -200.0
        c = torch.tensor(srgb, dtype=torch.float64).clamp(1e-12, 1 - 1e-7)
        field.color.layers[-1].bias.copy_(torch.log(c / (1 - c)).float())
    occupancy = OccupancyGrid(config.occupancy_resolution)
    occupancy.occupied[:] = occupied
    return NerfFile(field, occupancy, np.eye(4), dict(METADATA))
