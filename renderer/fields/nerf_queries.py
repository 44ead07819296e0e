"""The Slang NeRF volume (shaders/fields/nerf.slang) one batch at a time: what the parity
tests hold against the torch model (nerf.py, marching.py).

    q = NerfQueries([PlacedField(nerf_file, np.eye(4))], device="cpu")
    sigma, rgb = q.field(points, dirs)              # [B], [B, 3] (field space)
    rgb, transmittance = q.march(origins, dirs, jitter, t_far)
"""

from __future__ import annotations

import numpy as np

from ..device import RenderDevice, open_device
from ..device_choices import NEURAL_MLP_CHOICES, neural_mlp_defines
from .nerf_buffers import NerfVolumeBuffers, PlacedField

KERNEL = ("fields/nerf_query.slang", "nerf_query")
MODE_FIELD, MODE_MARCH, MODE_TRANSMITTANCE, MODE_WORLD = 0, 1, 2, 3


class NerfQueries:
    def __init__(
        self,
        volumes: list[PlacedField],
        device: RenderDevice | str = "auto",
        *,
        neural_mlp: str = "auto",
    ) -> None:
        """`neural_mlp`: "auto" lets whole CUDA warps (64-thread groups, 32 consecutive
        queries each) evaluate the field's networks on tensor cores; "per-lane" keeps
        every query on the fp32 per-lane networks, as the Renderer option of that name."""
        if neural_mlp not in NEURAL_MLP_CHOICES:
            raise ValueError(f"neural_mlp must be one of {NEURAL_MLP_CHOICES}, got {neural_mlp!r}")
        self.device = open_device(device) if isinstance(device, str) else device
        self.kernel = self.device.kernel(*KERNEL, neural_mlp_defines(neural_mlp))
        self.buffers = NerfVolumeBuffers(self.device, self.kernel, volumes)

    def _run(self, mode: int, first: np.ndarray, second: np.ndarray, volume: int) -> np.ndarray:
        count = len(first)
        rows = np.zeros((count, 2, 4), np.float32)
        rows[:, 0] = first
        rows[:, 1] = second
        out = self.device.zeros(count, 16)
        self.kernel.dispatch(
            (count, 1, 1),
            g_volumes=self.buffers.bind(),
            g_rows=self.device.upload(rows.reshape(-1, 4)),
            g_out=out,
            count=count,
            mode=mode,
            volume=volume,
        )
        return self.device.download(out, np.float32, (count, 4))

    @staticmethod
    def _rows(xyz: np.ndarray, w: np.ndarray | float) -> np.ndarray:
        rows = np.zeros((len(xyz), 4), np.float32)
        rows[:, :3] = xyz
        rows[:, 3] = w
        return rows

    def field(
        self, points: np.ndarray, dirs: np.ndarray, volume: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Density [B] and sRGB-encoded colour [B, 3] at field points [B, 3] along unit
        directions [B, 3]."""
        out = self._run(MODE_FIELD, self._rows(points, 0.0), self._rows(dirs, 0.0), volume)
        return out[:, 0], out[:, 1:]

    def march(
        self,
        origins: np.ndarray,
        dirs: np.ndarray,
        jitter: np.ndarray,
        t_far: np.ndarray | float = np.inf,
        volume: int = 0,
        with_color: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Colour [R, 3] (sRGB-encoded, composited, without background) and transmittance
        [R] of field-space rays with unit directions, lattice offsets [R] and t_far [R]."""
        mode = MODE_MARCH if with_color else MODE_TRANSMITTANCE
        out = self._run(mode, self._rows(origins, jitter), self._rows(dirs, t_far), volume)
        return out[:, :3], out[:, 3]

    def composite(
        self, origins: np.ndarray, dirs: np.ndarray, seeds: np.ndarray, t_end: np.ndarray | float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every volume along world rays as the path tracer composites them: linear
        radiance [R, 3] and transmittance [R]; `seeds` [R] uint32 pick the lattice offsets."""
        first = self._rows(origins, 0.0)
        first[:, 3] = np.asarray(seeds, np.uint32).view(np.float32)
        out = self._run(MODE_WORLD, first, self._rows(dirs, t_end), 0)
        return out[:, :3], out[:, 3]
