"""Material graphs -> the device tables of shaders/materials/material.slang.

Graphs are flattened into record arrays (materials, nodes, stacks, lobes, layers,
textures) whose layouts come from the kernel's reflection, plus one float4 texel buffer
holding every image. A texture object used by several parameters is stored once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..device import Kernel, RenderDevice
from ..layout import INVALID_INDEX
from ..neural.nmat import NeuralMaterial
from ..neural.runtime import NeuralTables
from .graph import Layer, Lobe, MaterialGraph, Mix, Node, Stack
from .texture import Texture

TEXTURE_KINDS = {"constant": 0, "image": 1, "checker": 2}
LOBE_CODES = {"diffuse": 0, "conductor": 1, "dielectric": 2, "sheen": 3, "flakes": 4}
CONDUCTOR_MODES = {"artist": 0, "ior": 1}
NODE_STACK, NODE_MIX = 0, 1
DEFAULT_WALKS = 1
DEFAULT_WALK_DEPTH = 256  # a bound only: Russian roulette ends walks (materials/layer_stack.slang)


@dataclass
class MaterialEntry:
    """A material as the device sees it: a layered graph, or a baked neural material
    (which then replaces the graph)."""

    graph: MaterialGraph | None
    emission: np.ndarray  # [3] radiance from the front face
    neural: NeuralMaterial | None = None
    emission_texture: Texture | None = None  # multiplies `emission`


class _TableBuilder:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.textures: list[Texture] = []
        self.texture_index: dict[int, int] = {}
        self.lobes: list[Lobe] = []
        self.layers: list[Layer] = []
        self.stacks: list[dict[str, int]] = []
        self.nodes: list[dict[str, int]] = []
        self.lobe_slots: dict[int, tuple[int, int]] = {}  # id(Lobe) -> (index, slot in stack)

    def texture(self, texture: Texture | None) -> int:
        if texture is None:
            return INVALID_INDEX
        key = id(texture)
        if key not in self.texture_index:
            self.texture_index[key] = len(self.textures)
            self.textures.append(texture)
        return self.texture_index[key]

    def node(self, node: Node) -> int:
        index = len(self.nodes)
        self.nodes.append({})
        if isinstance(node, Mix):
            self.nodes[index] = {
                "kind": NODE_MIX,
                "mask": self.texture(node.mask),
                "child_a": self.node(node.a),
                "child_b": self.node(node.b),
            }
        else:
            self.nodes[index] = {"kind": NODE_STACK, "stack": self.stack(node)}
        return index

    def stack(self, stack: Stack) -> int:
        record = {
            "lobe_begin": len(self.lobes),
            "lobe_count": len(stack.lobes),
            "layer_begin": len(self.layers),
            "layer_count": len(stack.layers),
            "normal_map": self.texture(stack.normal_map),
        }
        for slot, lobe in enumerate(stack.lobes):
            self.lobe_slots[id(lobe)] = (len(self.lobes) + slot, slot)
        self.lobes.extend(stack.lobes)
        self.layers.extend(stack.layers)
        self.stacks.append(record)
        return len(self.stacks) - 1

    def lobe_row(self, lobe: Lobe) -> dict[str, Any]:
        return {
            "type": LOBE_CODES[lobe.type],
            "weight": self.texture(lobe.weight),
            "color": self.texture(lobe.color),
            "color2": self.texture(lobe.color2),
            "roughness": self.texture(lobe.roughness),
            "anisotropy": self.texture(lobe.anisotropy),
            "conductor_mode": CONDUCTOR_MODES[lobe.conductor_mode],
            "ior": lobe.ior,
            "flake_scale": lobe.flake_scale,
            "flake_spread": lobe.flake_spread,
            "flake_density": lobe.flake_density,
        }

    def layer_row(self, layer: Layer) -> dict[str, Any]:
        return {
            "roughness": self.texture(layer.roughness),
            "absorption": self.texture(layer.absorption),
            "normal_map": self.texture(layer.normal_map),
            "scatter_albedo": self.texture(layer.scatter_albedo),
            "ior": layer.ior,
            "thickness": layer.thickness,
            "scattering": layer.scattering,
            "phase_g": layer.phase_g,
        }

    def texture_records(self) -> tuple[np.ndarray, np.ndarray]:
        records = self.kernel.records("TextureData", max(len(self.textures), 1))
        texels: list[np.ndarray] = []
        offset = 0
        for i, texture in enumerate(self.textures):
            record = records[i]
            record["kind"] = TEXTURE_KINDS[texture.kind]
            record["value"] = texture.value
            record["value2"] = texture.value2
            record["uv_scale"] = texture.uv_scale
            if texture.kind == "image":
                image = np.asarray(texture.image, np.float32)
                if image.ndim == 2:
                    image = np.repeat(image[..., None], 3, axis=-1)
                h, w = image.shape[:2]
                record["offset"] = offset
                record["width"] = w
                record["height"] = h
                rgba = np.concatenate(
                    [image.reshape(-1, 3), np.ones((h * w, 1), np.float32)], axis=1
                )
                texels.append(rgba)
                offset += h * w
        texel_array = np.concatenate(texels) if texels else np.zeros((1, 4), np.float32)
        return records, texel_array


class MaterialTables:
    """Device buffers for a list of materials; `bind()` is the `MaterialTables` value."""

    def __init__(
        self,
        device: RenderDevice,
        kernel: Kernel,
        materials: list[MaterialEntry],
    ) -> None:
        builder = _TableBuilder(kernel)
        material_rows = []
        neural: list[NeuralMaterial] = []
        for entry in materials:
            row: dict[str, Any] = {
                "root": INVALID_INDEX,
                "emission": np.asarray(entry.emission, np.float32),
                "emission_texture": builder.texture(entry.emission_texture),
                "transmissive": 0,
                "neural": INVALID_INDEX,
            }
            if entry.neural is not None:
                # one upload per material object, however many scene materials name it
                known = [i for i, m in enumerate(neural) if m is entry.neural]
                row["neural"] = known[0] if known else len(neural)
                if not known:
                    neural.append(entry.neural)
            if entry.graph is not None:
                row["root"] = builder.node(entry.graph.root)
                row["transmissive"] = int(entry.graph.transmissive)
            elif entry.neural is None:
                raise ValueError("a material entry needs a graph or a neural material")
            material_rows.append(row)
        lobes = kernel.filled_records(
            "LobeData", [builder.lobe_row(lobe) for lobe in builder.lobes]
        )
        layers = kernel.filled_records(
            "LayerData", [builder.layer_row(layer) for layer in builder.layers]
        )
        nodes = kernel.filled_records("NodeData", builder.nodes)
        stacks = kernel.filled_records("StackData", builder.stacks)
        records = kernel.filled_records("MaterialData", material_rows)
        textures, texels = builder.texture_records()
        self.lobe_slots = builder.lobe_slots
        self.neural = NeuralTables(device, kernel, neural)
        self.has_bake = np.array([row["neural"] != INVALID_INDEX for row in material_rows])
        self.has_graph = np.array([row["root"] != INVALID_INDEX for row in material_rows])
        self.buffers = {
            "materials": device.upload(records),
            "nodes": device.upload(nodes),
            "stacks": device.upload(stacks),
            "lobes": device.upload(lobes),
            "layers": device.upload(layers),
            "textures": device.upload(textures),
            "texels": device.upload(texels),
        }

    def renders_neural(self, prefer_neural: bool) -> np.ndarray:
        """[materials] bool: which materials a render shades as neural materials (as
        eval_material in shaders/materials/material.slang decides)."""
        return self.has_bake & (prefer_neural | ~self.has_graph)

    def bind(
        self,
        walk_count: int = DEFAULT_WALKS,
        walk_depth: int = DEFAULT_WALK_DEPTH,
        prefer_neural: bool = False,
    ) -> dict[str, Any]:
        """The `MaterialTables` value, with the layered estimator's walks per evaluation
        and vertices per walk, and whether materials with a bake render it."""
        return {
            **self.buffers,
            "walk_count": walk_count,
            "walk_depth": walk_depth,
            "prefer_neural": int(prefer_neural),
            "neural": self.neural.bind(),
        }
