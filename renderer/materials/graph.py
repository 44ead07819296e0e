"""The in-memory material graph: what a material file or dict becomes once validated.

A material is a tree whose leaves are stacks (base lobes under dielectric layers) and
whose inner nodes mix two subtrees by a mask. Every parameter is a `Texture` (constants
included), evaluated on the device by shaders/materials/material.slang.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .texture import Texture

LOBE_TYPES = ("diffuse", "conductor", "dielectric", "sheen", "flakes")


def constant(value: float | list[float] | np.ndarray) -> Texture:
    """A constant texture; a number means the same value in every channel."""
    return Texture.constant(np.broadcast_to(np.asarray(value, np.float64), (3,)).copy())


@dataclass
class Lobe:
    """One base lobe; which parameters matter depends on `type` (see materials/README.md)."""

    type: str
    weight: Texture = field(default_factory=lambda: constant(1.0))
    color: Texture = field(default_factory=lambda: constant(0.5))
    color2: Texture = field(default_factory=lambda: constant(1.0))
    roughness: Texture = field(default_factory=lambda: constant(0.3))
    anisotropy: Texture = field(default_factory=lambda: constant(0.0))
    conductor_mode: str = "artist"  # artist: color/color2 = reflectivity/edge tint; ior: eta/k
    ior: float = 1.5
    flake_scale: float = 200.0
    flake_spread: float = 0.3
    flake_density: float = 0.5


@dataclass
class Layer:
    """A dielectric interface over a slab that absorbs (and may scatter)."""

    ior: float = 1.5
    roughness: Texture = field(default_factory=lambda: constant(0.0))
    thickness: float = 0.1
    absorption: Texture = field(default_factory=lambda: constant(0.0))  # per unit thickness
    normal_map: Texture | None = None
    scattering: float = 0.0  # per unit thickness
    scatter_albedo: Texture = field(default_factory=lambda: constant(0.8))
    phase_g: float = 0.0


@dataclass
class Stack:
    lobes: list[Lobe]
    layers: list[Layer] = field(default_factory=list)
    normal_map: Texture | None = None  # of the base

    @property
    def transmissive(self) -> bool:
        return any(lobe.type == "dielectric" for lobe in self.lobes)


@dataclass
class Mix:
    """`a` where the mask is 0, `b` where it is 1, blended in between."""

    mask: Texture
    a: Stack | Mix
    b: Stack | Mix


Node = Stack | Mix


@dataclass
class MaterialGraph:
    root: Node
    name: str = ""
    source: str = "<material dict>"
    textures: dict[str, Texture] = field(default_factory=dict)  # named textures, for export

    def stacks(self) -> list[Stack]:
        """Every leaf stack, depth first (a before b)."""
        out: list[Stack] = []
        pending: list[Node] = [self.root]
        while pending:
            node = pending.pop()
            if isinstance(node, Stack):
                out.append(node)
            else:
                pending.extend([node.b, node.a])
        return out

    @property
    def transmissive(self) -> bool:
        return any(stack.transmissive for stack in self.stacks())

    @staticmethod
    def diffuse(albedo: Texture) -> MaterialGraph:
        return MaterialGraph(Stack([Lobe("diffuse", color=albedo)]), name="diffuse")
