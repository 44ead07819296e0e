"""Neural materials: latent pyramid, encoder, decoder with learned frames, learned sampler,
baking from layered materials, and `.nmat` files.

    from renderer.neural import bake, preset, NeuralMaterial
    result = bake("materials/leather.json", "leather.nmat", preset("quick"))
    material = NeuralMaterial.load("leather.nmat")
    f = material.evaluate(uv, wi, wo)          # torch [N, 3] f * cos(theta_i)
"""

from .architecture import Architecture
from .bake import Bake, BakeInterrupted, BakeResult, bake
from .nmat import NeuralMaterial
from .presets import PRESETS, BakePreset, preset

__all__ = [
    "PRESETS",
    "Architecture",
    "Bake",
    "BakeInterrupted",
    "BakePreset",
    "BakeResult",
    "NeuralMaterial",
    "bake",
    "preset",
]
