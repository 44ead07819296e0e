"""Baked neural materials -> the device tables of shaders/neural/neural_bsdf.slang.

`NeuralTables(device, kernel, materials)` packs any number of `.nmat` materials into five
buffers shared by all of them: material records, pyramid levels, fp16 latents (one uint4
of 8 halves per texel), MLP layer records and fp32 weights (W^T then bias per layer), plus
zero-padded fp16 W^T tiles on CUDA for the tensor-core path. Layouts are those
shaders/neural/mlp.slang documents: fp32 weights as float4 rows. Record layouts come from the
kernel's reflection (renderer/layout.py). `check_runtime_support` says whether the Slang
runtime can run an architecture at all; a scene loader calls it before any work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..device import Kernel, RenderDevice
from ..errors import NeuralMaterialError
from .architecture import ENERGY_ANGLES, SAMPLER_OUTPUTS, Architecture
from .energy import albedo_table, energy_scale
from .nmat import NeuralMaterial

RUNTIME_LATENT_CHANNELS = 8  # LATENT_CHANNELS of shaders/neural/pyramid.slang
RUNTIME_MAX_WIDTH = 64  # MLP_MAX_WIDTH of shaders/neural/mlp.slang
TILE = 16  # cooperative-matrix tile of shaders/neural/coop_mlp.slang


def check_runtime_support(arch: Architecture) -> None:
    """Raise NeuralMaterialError (message without the file) when the Slang runtime cannot
    run `arch`: it is compiled for 8 latent channels and layers at most 64 wide."""
    if arch.latent_channels != RUNTIME_LATENT_CHANNELS:
        raise NeuralMaterialError(
            f"the renderer runs neural materials with {RUNTIME_LATENT_CHANNELS} latent "
            f"channels, this one has {arch.latent_channels}"
        )
    for name, sizes in (
        ("decoder", (arch.decoder_inputs, *arch.decoder_hidden)),
        ("sampler", (arch.sampler_inputs, *arch.sampler_hidden, SAMPLER_OUTPUTS)),
    ):
        if max(sizes) > RUNTIME_MAX_WIDTH:
            raise NeuralMaterialError(
                f"its {name} has a layer {max(sizes)} wide; the renderer runs layers at most "
                f"{RUNTIME_MAX_WIDTH} wide"
            )


def load_for_rendering(path: str | os.PathLike[str]) -> NeuralMaterial:
    """A `.nmat` checked whole (file, tensors, values) and runnable by the renderer; any
    problem is one NeuralMaterialError naming the file."""
    material = NeuralMaterial.load(path)
    try:
        check_runtime_support(material.arch)
    except NeuralMaterialError as exc:
        raise NeuralMaterialError(f"{path}: {exc}") from None
    return material


def material_energy(material: NeuralMaterial) -> np.ndarray:
    """The material's albedo table (energy.py): stored by its bake, or computed now (and
    kept on the material) for files baked without one."""
    if material.energy is None:
        material.energy = torch.from_numpy(albedo_table(material))
    return material.energy.detach().cpu().numpy()


def _round_up(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


def row_floats(outputs: int) -> int:
    """Floats in a packed W^T row (row_quads of shaders/neural/mlp.slang, times 4)."""
    quads = _round_up(outputs, 4) // 4
    return 4 * (quads if quads <= 4 else _round_up(quads, 4))


def pack_latents(level: torch.Tensor) -> np.ndarray:
    """fp16 [h, w, 8] -> [h * w, 4] uint32: channel 2k in the low half of word k."""
    halves = level.detach().cpu().to(torch.float16).contiguous().numpy()
    return halves.reshape(-1, RUNTIME_LATENT_CHANNELS).view(np.uint32).reshape(-1, 4)


@dataclass
class PackedMlps:
    weights: list[np.ndarray]
    weights_f16: list[np.ndarray]
    layers: list[dict[str, int]]
    fp32_size: int = 0
    fp16_size: int = 0

    def add_block(
        self, rows: np.ndarray, row_count: int | None = None, row_width: int | None = None
    ) -> int:
        """Rows of floats, zero-padded to `row_width` floats (default: a multiple of 4) and
        `row_count` rows; the first float4's index."""
        rows = np.atleast_2d(np.asarray(rows, np.float32))
        count = rows.shape[0] if row_count is None else row_count
        width = _round_up(rows.shape[1], 4) if row_width is None else row_width
        padded = np.zeros((count, width), np.float32)
        padded[: rows.shape[0], : rows.shape[1]] = rows
        offset = self.fp32_size
        self.weights.append(padded.reshape(-1, 4))
        self.fp32_size += padded.size // 4
        return offset

    def network(self, device: RenderDevice, kernel: Kernel) -> dict[str, Any]:
        """The uploaded `MlpNetwork` value (neural/mlp.slang): layers and fp32 weights, and
        the fp16 weights where the program has the tensor-core path (CUDA only; other
        programs have no such field)."""
        net = {
            "layers": device.upload(kernel.filled_records("MlpLayer", self.layers)),
            "weights": device.upload(
                np.concatenate(self.weights) if self.weights else np.zeros((1, 4), np.float32)
            ),
        }
        if "weights_f16" in kernel.struct_fields("MlpNetwork"):
            f16 = np.concatenate(self.weights_f16) if self.weights_f16 else np.zeros(2)
            net["weights_f16"] = device.upload(f16.astype(np.float16))
        return net

    def add_layer(self, weight: torch.Tensor, bias: torch.Tensor) -> int:
        """torch Linear weight [out, in] and bias [out] -> a layer record; its index."""
        w = weight.detach().cpu().float().numpy()
        b = bias.detach().cpu().float().numpy()
        outputs, inputs = w.shape
        offset = self.add_block(w.T, _round_up(inputs, 4), row_floats(outputs))
        self.add_block(b[None], row_width=row_floats(outputs))
        padded = np.zeros((_round_up(inputs, TILE), _round_up(outputs, TILE)), np.float16)
        padded[:inputs, :outputs] = w.T
        offset_f16 = self.fp16_size
        self.weights_f16.append(padded.reshape(-1))
        self.fp16_size += padded.size
        self.layers.append(
            {"weights": offset, "weights_f16": offset_f16, "inputs": inputs, "outputs": outputs}
        )
        return len(self.layers) - 1


def pack_mlp_layers(packed: PackedMlps, module: torch.nn.Module) -> tuple[int, int]:
    """Pack every Linear of an Mlp; (first layer index, layer count)."""
    linears = list(module.layers)
    first = len(packed.layers)
    for linear in linears:
        packed.add_layer(linear.weight, linear.bias)
    return first, len(linears)


class NeuralTables:
    """Device buffers of a list of neural materials; `bind()` is the `NeuralTables` value.
    Material i of the list is entry i of the tables (a material object listed twice is
    packed twice: callers that share one pass it once)."""

    def __init__(
        self, device: RenderDevice, kernel: Kernel, materials: list[NeuralMaterial]
    ) -> None:
        packed = PackedMlps([], [], [])
        level_rows: list[dict[str, int]] = []
        latents: list[np.ndarray] = []
        texel_count = 0
        material_rows: list[dict[str, Any]] = []
        for material in materials:
            check_runtime_support(material.arch)
            first_level = len(level_rows)
            for level in material.levels:
                h, w = int(level.shape[0]), int(level.shape[1])
                level_rows.append({"offset": texel_count, "width": w, "height": h})
                latents.append(pack_latents(level))
                texel_count += h * w
            frames = packed.add_block(material.brdf.frames.weight.detach().cpu().numpy())
            scale = energy_scale(material_energy(material))
            energy = packed.add_block(scale.reshape(-1, ENERGY_ANGLES))
            decoder_first, decoder_count = pack_mlp_layers(packed, material.brdf.mlp)
            sampler_first, sampler_count = pack_mlp_layers(packed, material.sampler.mlp)
            material_rows.append(
                {
                    "level_begin": first_level,
                    "level_count": len(material.levels),
                    "frames": frames,
                    "decoder_begin": decoder_first,
                    "decoder_count": decoder_count,
                    "sampler_begin": sampler_first,
                    "sampler_count": sampler_count,
                    "raw_limit": float(material.brdf.raw_limit),
                    "lod_offset": material.arch.lod_offset,
                    "energy": energy,
                    "energy_grid": scale.shape[0],
                }
            )
        self.buffers = {
            "materials": device.upload(kernel.filled_records("NeuralMaterialData", material_rows)),
            "levels": device.upload(kernel.filled_records("LatentLevel", level_rows)),
            "latents": device.upload(
                np.concatenate(latents) if latents else np.zeros((1, 4), np.uint32)
            ),
        }
        self.net = packed.network(device, kernel)
        self.count = len(materials)

    def bind(self) -> dict[str, Any]:
        b = self.buffers
        return {
            "materials": b["materials"],
            "pyramid": {"levels": b["levels"], "latents": b["latents"]},
            "net": self.net,
        }
