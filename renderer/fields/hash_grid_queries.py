"""The Slang hash encoding (shaders/fields/hash_grid.slang) one batch at a time: what the
parity tests hold against the torch HashGrid.

    q = HashGridQueries(grid.config, grid.table.detach().numpy(), device="cpu")
    encoded = q.encode(points)                  # [B, levels * features]
"""

from __future__ import annotations

import numpy as np

from ..device import RenderDevice, open_device
from .hash_grid import HashGridConfig

KERNEL = ("fields/hash_grid_query.slang", "hash_grid_query")
MODE_ENCODE, MODE_INDEX = 0, 1


class HashGridQueries:
    def __init__(
        self, config: HashGridConfig, table: np.ndarray, device: RenderDevice | str = "auto"
    ) -> None:
        table = np.asarray(table, np.float32)
        shape = (config.levels, config.table_size, config.features)
        if table.shape != shape:
            raise ValueError(f"a hash table of shape {shape} was expected, got {table.shape}")
        self.config = config
        self.device = open_device(device) if isinstance(device, str) else device
        self.kernel = self.device.kernel(*KERNEL)
        self.grid = {
            "table": self.device.upload(table.reshape(-1)),
            "resolutions": self.device.upload(config.resolutions()),
            "levels": config.levels,
            "features": config.features,
            "log2_table": config.log2_table,
            "table_offset": 0,
            "level_offset": 0,
        }

    def _run(self, mode: int, rows: np.ndarray, width: int) -> np.ndarray:
        count = len(rows)
        out = self.device.zeros(count * width, 4)
        self.kernel.dispatch(
            (count, 1, 1),
            g_grid=self.grid,
            g_points=self.device.upload(np.ascontiguousarray(rows, np.float32)),
            g_out=out,
            count=count,
            mode=mode,
            stride=width,
        )
        return self.device.download(out, np.float32, (count * width,)).reshape(count, width)

    def encode(self, points: np.ndarray) -> np.ndarray:
        """[B, levels * features] encodings of `points` [B, 3]."""
        rows = np.zeros((len(points), 4), np.float32)
        rows[:, :3] = points
        width = self.config.levels * self.config.features
        return self._run(MODE_ENCODE, rows, width)

    def vertex_index(self, vertices: np.ndarray, level: int) -> np.ndarray:
        """[B] table slots of integer grid vertices [B, 3] on `level` (as the kernel
        computes them)."""
        rows = np.zeros((len(vertices), 4), np.float32)
        rows[:, :3] = vertices
        rows[:, 3] = level
        return self._run(MODE_INDEX, rows, 1)[:, 0].astype(np.int64)
