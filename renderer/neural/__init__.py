"""Neural materials: latent pyramid, encoder, decoder with learned frames, learned sampler,
baking from layered materials, `.nmat` files and their device tables for rendering.

    from renderer.neural import bake, preset, NeuralMaterial
    result = bake("materials/leather.json", "leather.nmat", preset("quick"))
    material = NeuralMaterial.load("leather.nmat")
    f = material.evaluate(uv, wi, wo)          # torch [N, 3] f * cos(theta_i)

Names load on first use: the renderer imports the runtime modules (nmat, runtime) without
pulling in baking, which itself builds on the layered materials.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Architecture": "architecture",
    "Bake": "baking",
    "BakeInterrupted": "baking",
    "BakeResult": "baking",
    "bake": "baking",
    "NeuralMaterial": "nmat",
    "PRESETS": "presets",
    "BakePreset": "presets",
    "preset": "presets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'renderer.neural' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
