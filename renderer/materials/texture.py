"""Textures: the colour sources every material parameter reads (constants included)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Texture:
    """A colour source: constant, image (linear RGB [H, W, 3]) or checker."""

    kind: str = "constant"  # constant | image | checker
    value: np.ndarray = field(default_factory=lambda: np.full(3, 0.5))  # [3]
    value2: np.ndarray = field(default_factory=lambda: np.zeros(3))  # [3], checker odd cells
    image: np.ndarray | None = None  # [H, W, 3] float32, linear
    uv_scale: np.ndarray = field(default_factory=lambda: np.ones(2))  # [2]
    path: str | None = None

    @staticmethod
    def constant(rgb: np.ndarray | list[float]) -> Texture:
        return Texture(kind="constant", value=np.asarray(rgb, np.float64))
