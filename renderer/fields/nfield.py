"""`.nfield` files: a trained neural radiance field.

A safetensors file (no pickle) holding

    grid.table               fp32 [levels, 2^log2_table, features]  hash encoding
    density.layers.{i}.*     fp32   density network (nerf.py)
    color.layers.{i}.*       fp32   colour network
    aabb                     fp32 [2, 3]  the field's box in its own world (min, max)
    scene_from_field         fp32 [4, 4]  where the field's world sits in the scene it was
                                          captured from (identity for outside datasets)
    occupancy                uint8 [G^3 / 8]  occupancy bits (occupancy.py)

and header metadata (strings): format, format_version, nrender_version, architecture
(NerfConfig JSON), dataset (the folder trained on), dataset_hash, preset (JSON), training
(JSON: steps, seconds, final loss and PSNR). Loading checks every name, shape, dtype and
value and reports the first problem as one NerfFieldError naming the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import NrenderError
from ..neural.mlp import Mlp
from ..tensor_files import check_header, check_tensors, read_tensor_file, write_tensor_file
from ..version import __version__
from .nerf import NerfConfig, NerfField
from .occupancy import OccupancyGrid

FORMAT = "nrender.nfield"
FORMAT_VERSION = "1"
REQUIRED_METADATA = (
    "format",
    "format_version",
    "nrender_version",
    "architecture",
    "dataset",
    "dataset_hash",
    "preset",
    "training",
)
MAX_FILE_BYTES = 1 << 31


class NerfFieldError(NrenderError):
    """A field file (.nfield) or training checkpoint is unreadable or inconsistent."""


@dataclass
class NerfFile:
    """A trained field with its occupancy grid and placement."""

    field: NerfField
    occupancy: OccupancyGrid
    scene_from_field: np.ndarray = field(default_factory=lambda: np.eye(4))
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> NerfConfig:
        return self.field.config

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"grid.table": self.field.grid.table.detach().float().cpu().contiguous()}
        for prefix, module in (("density", self.field.density), ("color", self.field.color)):
            for name, value in module.state_dict().items():
                out[f"{prefix}.{name}"] = value.detach().float().cpu().contiguous()
        out["aabb"] = self.field.aabb.detach().float().cpu().contiguous()
        out["scene_from_field"] = torch.as_tensor(self.scene_from_field, dtype=torch.float32)
        out["occupancy"] = torch.from_numpy(self.occupancy.bits())
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        meta = {
            **self.metadata,
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "nrender_version": __version__,
            "architecture": self.config.to_json(),
        }
        write_tensor_file(
            path,
            self.tensors(),
            meta,
            REQUIRED_METADATA,
            lambda problem: NerfFieldError(f"{path}: {problem}"),
        )

    @staticmethod
    def load(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> NerfFile:
        return _load(Path(path), torch.device(device))


def expected_shapes(config: NerfConfig) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Name -> (shape, dtype) of every tensor of a field with this architecture, computed
    without allocating the hash table (a header may claim an absurd one)."""
    grid = config.grid
    shapes: dict[str, tuple[tuple[int, ...], torch.dtype]] = {
        "grid.table": ((grid.levels, grid.table_size, grid.features), torch.float32)
    }
    networks = (
        ("density", config.encoding_width, (config.density_width,), 1 + config.geometry_features),
        ("color", config.color_inputs, (config.color_width,) * config.color_layers, 3),
    )
    for prefix, inputs, hidden, outputs in networks:
        for name, value in Mlp(inputs, hidden, outputs).state_dict().items():
            shapes[f"{prefix}.{name}"] = (tuple(value.shape), torch.float32)
    shapes["aabb"] = ((2, 3), torch.float32)
    shapes["scene_from_field"] = ((4, 4), torch.float32)
    shapes["occupancy"] = ((config.occupancy_resolution**3 // 8,), torch.uint8)
    return shapes


def _load(path: Path, device: torch.device) -> NerfFile:
    def fail(problem: str) -> NerfFieldError:
        return NerfFieldError(f"{path}: {problem}")

    meta, tensors = read_tensor_file(path, fail, MAX_FILE_BYTES, "a field file")
    check_header(
        meta, FORMAT, FORMAT_VERSION, REQUIRED_METADATA, fail, "a neural field", "train it again"
    )
    try:
        config = NerfConfig.from_json(meta["architecture"])
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise fail(f"bad architecture in the header: {exc}") from None
    expected = expected_shapes(config)
    check_tensors(tensors, expected, fail)
    aabb = tensors["aabb"]
    if not (aabb[1] > aabb[0]).all():
        raise fail(f"aabb {aabb.tolist()} is not a box (min < max on every axis)")
    scene_from_field = tensors["scene_from_field"].double().numpy()
    if (
        np.any(scene_from_field[3] != [0.0, 0.0, 0.0, 1.0])
        or abs(np.linalg.det(scene_from_field[:3, :3])) < 1e-12
    ):
        raise fail("scene_from_field is not an invertible affine transform")
    model = NerfField(config, aabb)
    model.grid.table.data.copy_(tensors["grid.table"])
    for prefix, module in (("density", model.density), ("color", model.color)):
        module.load_state_dict(
            {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        )
    model.eval()
    occupancy = OccupancyGrid.from_bits(
        tensors["occupancy"].numpy(), config.occupancy_resolution, device
    )
    return NerfFile(model.to(device), occupancy, scene_from_field, meta)


def training_stats(file: NerfFile) -> dict:
    try:
        return json.loads(file.metadata.get("training", "{}"))
    except ValueError:
        return {}
