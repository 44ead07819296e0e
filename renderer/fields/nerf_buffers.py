"""NeRF volumes -> the device buffers of shaders/fields/nerf.slang (`NerfVolumes`).

    buffers = NerfVolumeBuffers(device, kernel, [PlacedField(nerf_file, world_from_field)])
    kernel.dispatch(..., g_volumes=buffers.bind())

Every field's hash table, level resolutions and occupancy words go into buffers shared by
all volumes, each at an offset its `NerfVolume` record names; the density and colour
networks are packed as neural materials' are (renderer/neural/runtime.py: fp32 W^T rows
per layer, plus the fp16 tiles on CUDA, where `MlpNetwork` has them). A field placed
several times is packed once. Record layouts come from the kernel's reflection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..device import Kernel, RenderDevice
from ..neural.runtime import PackedMlps, pack_mlp_layers
from .nerf import diag_steps, parameter_count
from .nfield import NerfFile
from .occupancy import COARSE_FACTOR, coarse_occupancy


@dataclass
class PlacedField:
    """A field file placed in the world: `world_from_field` [4, 4] is any invertible affine
    map from the field's own space (its dataset's world) to the scene's."""

    nerf: NerfFile
    world_from_field: np.ndarray


def world_box(placed: PlacedField) -> tuple[np.ndarray, np.ndarray]:
    """World-space bounds (min, max) [3] of the field's box under its placement."""
    aabb = placed.nerf.field.aabb.detach().cpu().double().numpy()
    corners = np.array([[aabb[(c >> a) & 1, a] for a in range(3)] for c in range(8)])
    world = corners @ placed.world_from_field[:3, :3].T + placed.world_from_field[:3, 3]
    return world.min(axis=0), world.max(axis=0)


def volume_summary(placed: Any) -> dict[str, Any]:
    """What `nrender info` shows of one volume (a PlacedField or a scene's Volume)."""
    nerf = placed.nerf
    lo, hi = world_box(PlacedField(nerf, placed.world_from_field))
    config = nerf.config
    return {
        "nerf": str(getattr(placed, "path", "") or "(in memory)"),
        "world_box": [np.round(lo, 4).tolist(), np.round(hi, 4).tolist()],
        "parameters": parameter_count(nerf.field),
        "hash_grid": f"{config.grid.levels}x{config.grid.features} 2^{config.grid.log2_table}",
        "occupied": round(nerf.occupancy.occupied_share(), 4),
        "march_steps": config.march_steps,
    }


def _field_from_world(world_from_field: np.ndarray) -> np.ndarray:
    m = np.asarray(world_from_field, np.float64)
    return np.linalg.inv(m)[:3]


class NerfVolumeBuffers:
    """Device buffers of placed fields; `bind()` is the `NerfVolumes` value. An empty list
    binds a volume count of 0 (and one-element placeholder buffers)."""

    def __init__(self, device: RenderDevice, kernel: Kernel, volumes: list[PlacedField]) -> None:
        packed = PackedMlps([], [], [])
        tables: list[np.ndarray] = []
        resolutions: list[np.ndarray] = []
        words: list[np.ndarray] = []
        table_size = level_count = word_count = 0
        fields: dict[int, dict[str, Any]] = {}  # id(NerfFile) -> its part of a record
        rows: list[dict[str, Any]] = []
        for placed in volumes:
            nerf = placed.nerf
            if id(nerf) not in fields:
                config = nerf.config
                table = nerf.field.grid.table.detach().cpu().float().numpy().reshape(-1)
                bits = np.ascontiguousarray(nerf.occupancy.bits())
                coarse = coarse_occupancy(
                    nerf.occupancy.occupied, config.occupancy_resolution, COARSE_FACTOR
                )
                level_res = config.grid.resolutions()
                density_first, density_count = pack_mlp_layers(packed, nerf.field.density)
                color_first, color_count = pack_mlp_layers(packed, nerf.field.color)
                aabb = nerf.field.aabb.detach().cpu().float().numpy()
                fields[id(nerf)] = {
                    "aabb_min": aabb[0],
                    "aabb_max": aabb[1],
                    "step": np.float32(nerf.field.step),
                    "max_samples": diag_steps(nerf.field.aabb.cpu(), nerf.field.step),
                    "table_offset": table_size,
                    "level_offset": level_count,
                    "levels": config.grid.levels,
                    "features": config.grid.features,
                    "log2_table": config.grid.log2_table,
                    "occupancy_offset": word_count,
                    "occupancy_resolution": config.occupancy_resolution,
                    "coarse_offset": word_count + bits.size // 4,
                    "coarse_resolution": -(-config.occupancy_resolution // COARSE_FACTOR),
                    "coarse_factor": COARSE_FACTOR,
                    "density_first": density_first,
                    "density_count": density_count,
                    "color_first": color_first,
                    "color_count": color_count,
                    "sh_degree": config.sh_degree,
                    "geometry_features": config.geometry_features,
                }
                tables.append(table)
                resolutions.append(level_res)
                # G^3 bits with G a multiple of 4: a whole number of little-endian words;
                # the coarse blocks' bits follow, padded to a whole word
                coarse_bits = np.packbits(coarse, bitorder="little")
                coarse_bits = np.pad(coarse_bits, (0, -coarse_bits.size % 4))
                words.append(np.concatenate([bits, coarse_bits]).view("<u4").astype(np.uint32))
                table_size += table.size
                level_count += level_res.size
                word_count += words[-1].size
            m = _field_from_world(placed.world_from_field)
            rows.append(
                {
                    **fields[id(nerf)],
                    "field_from_world_x": m[0],
                    "field_from_world_y": m[1],
                    "field_from_world_z": m[2],
                }
            )
        if table_size >= 1 << 32 or word_count >= 1 << 32:
            raise ValueError("the scene's NeRF volumes hold more than 2^32 table values")

        def joined(parts: list[np.ndarray], dtype: Any, empty: np.ndarray) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else empty

        self.count = len(volumes)
        self.buffers = {
            "volumes": device.upload(kernel.filled_records("NerfVolume", rows)),
            "tables": device.upload(joined(tables, np.float32, np.zeros(1, np.float32))),
            "resolutions": device.upload(joined(resolutions, np.uint32, np.zeros(1, np.uint32))),
            "occupancy": device.upload(joined(words, np.uint32, np.zeros(1, np.uint32))),
        }
        self.net = packed.network(device, kernel)

    def bind(self) -> dict[str, Any]:
        b = self.buffers
        return {
            "volumes": b["volumes"],
            "tables": b["tables"],
            "resolutions": b["resolutions"],
            "occupancy": b["occupancy"],
            "net": self.net,
            "count": self.count,
        }
