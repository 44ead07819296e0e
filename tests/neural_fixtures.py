"""Neural materials for runtime tests, without baking: random weights and latents of a
real architecture (parity does not need a trained network), and the shipped bake."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from conftest import REPO

from renderer.neural.architecture import Architecture
from renderer.neural.decoder import NeuralBrdf
from renderer.neural.nmat import NeuralMaterial
from renderer.neural.sampler import NeuralSampler

SHIPPED_BAKE = REPO / "materials" / "baked" / "brass_verdigris.nmat"
SHIPPED_SOURCE = REPO / "materials" / "brass_verdigris.json"


def random_material(
    seed: int = 0,
    size: int = 16,
    decoder: tuple[int, ...] = (32, 32),
    frame_scale: float = 0.3,
    latent_scale: float = 1.0,
) -> NeuralMaterial:
    """A neural material with random latents (every level independent) and random
    weights, learned frames included, so that every part of the runtime is exercised."""
    g = torch.Generator().manual_seed(seed)
    arch = Architecture(parameter_channels=1, width=size, height=size, decoder_hidden=decoder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        brdf, sampler = NeuralBrdf(arch), NeuralSampler(arch)
    with torch.no_grad():
        brdf.frames.weight.copy_(frame_scale * torch.randn(brdf.frames.weight.shape, generator=g))
    levels = [
        (latent_scale * torch.randn(h, w, arch.latent_channels, generator=g)).half()
        for h, w in arch.levels
    ]
    metadata = {
        "source": "random",
        "source_hash": "0" * 64,
        "preset": json.dumps({"name": "random"}),
        "steps": json.dumps({}),
        "losses": json.dumps({}),
    }
    return NeuralMaterial(arch, levels, brdf, sampler, metadata)


def write_random_nmat(path: Path, seed: int = 0, **options) -> Path:
    random_material(seed, **options).save(path)
    return path


def exp_channel_decoder(material: NeuralMaterial) -> NeuralMaterial:
    """Make the decoder return f * cos = exp(latent channel 0) for every pair of directions
    (learned frames off; channel 0 must stay above -10 to pass the ReLUs), so that a test
    sets what a texel reflects through its latents. The material must have 2 hidden layers."""
    brdf = material.brdf
    with torch.no_grad():
        brdf.frames.weight.zero_()
        first, middle, last = brdf.mlp.layers
        for layer in (first, middle, last):
            layer.weight.zero_()
            layer.bias.zero_()
        first.weight[0, 12] = 1.0  # hidden 0 = channel 0 + 10
        first.bias[0] = 10.0
        middle.weight[0, 0] = 1.0
        last.weight[:, 0] = 1.0  # raw = channel 0 + 3: exp(raw - 3) = exp(channel 0)
        last.bias[:] = -7.0
    return material
