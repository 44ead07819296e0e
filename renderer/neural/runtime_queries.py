"""The pieces of the Slang neural-material runtime, one batch at a time: what the parity
tests hold against the torch modules that trained them (shaders/neural/neural_query.slang).

    q = RuntimeQueries([NeuralMaterial.load("leather.nmat")], device="cpu")
    latent = q.lookup(uv, level, u_level)          # [N, 8]
    f_lane, f_full, f_coop = q.decode(latent, wi, wo)  # [N, 3] each

Directions are local-frame unit vectors [N, 3]; `level` is in pyramid levels (0 = finest,
fractional levels pick one of the two nearest with `u_level`).
"""

from __future__ import annotations

import numpy as np

from ..device import RenderDevice, open_device
from .nmat import NeuralMaterial
from .runtime import NeuralTables

KERNEL = ("neural/neural_query.slang", "neural_query")
MODE_LOOKUP, MODE_DIRECTIONS, MODE_DECODE, MODE_LOBES, MODE_SAMPLE, MODE_PDF = range(6)


def _rows(values: np.ndarray | None, count: int) -> np.ndarray:
    out = np.zeros((count, 4), np.float32)
    if values is not None:
        array = np.asarray(values, np.float32).reshape(count, -1)
        out[:, : array.shape[1]] = array
    return out


class RuntimeQueries:
    """Neural materials on a device (packed into one table, as a scene's are), queried
    piece by piece; `material` picks one by its index in the list."""

    def __init__(
        self,
        materials: NeuralMaterial | list[NeuralMaterial],
        device: RenderDevice | str = "auto",
        material: int = 0,
    ) -> None:
        self.materials = materials if isinstance(materials, list) else [materials]
        self.device = open_device(device) if isinstance(device, str) else device
        self.kernel = self.device.kernel(*KERNEL)
        self.tables = NeuralTables(self.device, self.kernel, self.materials)
        self.select(material)

    def select(self, material: int) -> None:
        """Query the `material`-th material from now on."""
        self.index = material
        self.lod_offset = self.materials[material].arch.lod_offset

    def _run(self, mode: int, inputs: list[np.ndarray | None], count: int) -> list[np.ndarray]:
        outs = [self.device.zeros(count, 16) for _ in range(3)]
        buffers = [self.device.upload(_rows(x, count)) for x in inputs]
        buffers += [self.device.upload(_rows(None, count))] * (4 - len(buffers))
        # whole warps of 32, so the tensor-core path sees full warps on CUDA
        threads = max(32, -(-count // 32) * 32)
        self.kernel.dispatch(
            (threads, 1, 1),
            g_neural=self.tables.bind(),
            g_in0=buffers[0],
            g_in1=buffers[1],
            g_in2=buffers[2],
            g_in3=buffers[3],
            g_out0=outs[0],
            g_out1=outs[1],
            g_out2=outs[2],
            count=count,
            material=self.index,
            mode=mode,
        )
        return [self.device.download(b, np.float32, (count, 4)) for b in outs]

    def _latent(self, latent: np.ndarray) -> list[np.ndarray]:
        latent = np.asarray(latent, np.float32)
        return [latent[:, :4], latent[:, 4:8]]

    def lookup(self, uv: np.ndarray, level: np.ndarray, u_level: np.ndarray) -> np.ndarray:
        """[N, 8] latents at uv [N, 2], pyramid level [N] (fractional: stochastic)."""
        count = len(uv)
        q = np.zeros((count, 4), np.float32)
        q[:, :2] = uv
        q[:, 2] = np.asarray(level, np.float64) - self.lod_offset
        q[:, 3] = u_level
        out = self._run(MODE_LOOKUP, [q], count)
        return np.concatenate([out[0], out[1]], axis=1)

    def directions(self, latent: np.ndarray, wi: np.ndarray, wo: np.ndarray) -> np.ndarray:
        """[N, 12] decoder direction inputs of the learned frames."""
        out = self._run(MODE_DIRECTIONS, [*self._latent(latent), wi, wo], len(wi))
        return np.concatenate(out, axis=1)

    def decode(
        self, latent: np.ndarray, wi: np.ndarray, wo: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """[N, 3] f*cos three ways: per-lane path (as the path tracer runs it), the full
        per-lane MLP, and the tensor-core path (CUDA, coherent warps; else the second)."""
        out = self._run(MODE_DECODE, [*self._latent(latent), wi, wo], len(wi))
        return out[0][:, :3], out[1][:, :3], out[2][:, :3]

    def lobes(self, latent: np.ndarray, wo: np.ndarray) -> dict[str, np.ndarray]:
        """The sampler's mixture: axis [N, 3], alpha [N, 2], rho [N], mean [N, 2],
        weights [N, 2]."""
        a, b, c = self._run(MODE_LOBES, [*self._latent(latent), None, wo], len(wo))
        return {
            "axis": a[:, :3],
            "rho": a[:, 3],
            "alpha": b[:, :2],
            "mean": b[:, 2:],
            "weights": c[:, :2],
        }

    def sample(
        self, latent: np.ndarray, wo: np.ndarray, u: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Learned-sampler directions wi [N, 3] for uniform u [N, 3], and whether each is
        valid [N]."""
        out = self._run(MODE_SAMPLE, [*self._latent(latent), u, wo], len(wo))[0]
        return out[:, :3], out[:, 3] > 0.5

    def pdf(self, latent: np.ndarray, wi: np.ndarray, wo: np.ndarray) -> np.ndarray:
        """[N] the learned lobes' solid-angle density of wi."""
        return self._run(MODE_PDF, [*self._latent(latent), wi, wo], len(wo))[0][:, 0]
