"""Batched evaluation and sampling of a material on a device: what baking calls.

    graph = load_material("materials/brass.json")
    f = evaluate(graph, uv, wi, wo, samples=16)        # [N, 3] f * cos(theta_i)
    wi, weight, pdf, delta = sample(graph, uv, wo)     # [N, 3], [N, 3], [N], [N] bool
    p = pdf(graph, uv, wi, wo)                         # [N]

Directions are unit vectors in the local shading frame (normal +Z) pointing away from the
surface: `wo` towards the viewer, `wi` towards the light. uv is [N, 2]. The work runs
shaders/materials/material_query.slang, the same code the path tracer uses, so the Slang
is the single source of truth. Results are reproducible for a given `seed`.

A baked neural material (`NeuralMaterial`) is queried the same way, through the Slang
runtime the path tracer runs; `level` then picks the latent pyramid's level of detail
(0 = finest; fractional levels choose between the two nearest at random, per query).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..device import RenderDevice, open_device
from ..errors import NrenderError
from ..neural.nmat import NeuralMaterial
from .graph import Lobe, MaterialGraph
from .tables import DEFAULT_WALK_DEPTH, MaterialEntry, MaterialTables

KERNEL = ("materials/material_query.slang", "material_query")
# the modes of shaders/materials/material_query.slang
MODE_EVAL, MODE_SAMPLE, MODE_PDF, MODE_EVAL_AS_SAMPLED, MODE_WALK, MODE_FLAKE, MODE_SHADE = range(7)
MAX_QUERIES_PER_DISPATCH = 1 << 22
MAX_SAMPLES = 1 << 16
FINEST_LOD = -100.0  # lod_uv far below any level: the finest


class MaterialQueries:
    """One material (a layered graph or a baked neural material) uploaded to a device,
    ready for batched queries."""

    def __init__(
        self,
        material: MaterialGraph | NeuralMaterial,
        device: RenderDevice | str = "auto",
        walk_depth: int = DEFAULT_WALK_DEPTH,
    ) -> None:
        self.neural = material if isinstance(material, NeuralMaterial) else None
        self.graph = material if isinstance(material, MaterialGraph) else None
        self.device = open_device(device) if isinstance(device, str) else device
        self.kernel = self.device.kernel(*KERNEL)
        self.walk_depth = walk_depth
        entry = MaterialEntry(self.graph, np.zeros(3), neural=self.neural)
        self.tables = MaterialTables(self.device, self.kernel, [entry])

    def _lod_uv(self, level: float | np.ndarray | None, count: int) -> np.ndarray:
        """Per-query lod_uv (materials/material.slang) for pyramid `level`s."""
        if level is None or self.neural is None:
            return np.full(count, FINEST_LOD, np.float32)
        offset = self.neural.arch.lod_offset
        levels = np.broadcast_to(np.asarray(level, np.float64), (count,))
        if not np.isfinite(levels).all():
            raise NrenderError("level: contains NaN or infinite values")
        return (levels - offset).astype(np.float32)

    def _rows(self, name: str, values: np.ndarray | None, width: int, count: int) -> np.ndarray:
        rows = np.zeros((count, 4), np.float32)
        if values is None:
            return rows
        array = np.asarray(values, np.float32)
        if array.shape != (count, width):
            raise NrenderError(
                f"{name}: expected shape [{count}, {width}], got {list(array.shape)}"
            )
        if not np.isfinite(array).all():
            raise NrenderError(f"{name}: contains NaN or infinite values")
        if width == 3:
            length = np.linalg.norm(array, axis=1)
            bad = np.nonzero(np.abs(length - 1.0) > 1e-3)[0]
            if len(bad):
                raise NrenderError(
                    f"{name}: directions must be unit vectors; row {bad[0]} has length "
                    f"{length[bad[0]]:.4g} ({len(bad)} rows are off)"
                )
        rows[:, :width] = array
        return rows

    def _run(
        self,
        mode: int,
        uv: np.ndarray,
        wo: np.ndarray,
        wi: np.ndarray | None,
        samples: int,
        seed: int,
        lobe: tuple[int, int] = (0, 0),
        level: float | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        uv = np.asarray(uv)
        if uv.ndim != 2 or uv.shape[1] != 2:
            raise NrenderError(f"uv: expected shape [N, 2], got {list(uv.shape)}")
        if not 1 <= samples <= MAX_SAMPLES:
            raise NrenderError(f"samples must be in [1, {MAX_SAMPLES}], got {samples}")
        count = uv.shape[0]
        out = np.zeros((count, 4), np.float32)
        out2 = np.zeros((count, 4), np.float32)
        if count == 0:
            return out, out2
        uv_rows = self._rows("uv", uv, 2, count)
        uv_rows[:, 2] = self._lod_uv(level, count)
        wo_rows = self._rows("wo", wo, 3, count)
        wi_rows = self._rows("wi", wi, 3, count)
        for start in range(0, count, MAX_QUERIES_PER_DISPATCH):
            stop = min(count, start + MAX_QUERIES_PER_DISPATCH)
            n = stop - start
            g_out = self.device.zeros(n, 16)
            g_out2 = self.device.zeros(n, 16)
            self.kernel.dispatch(
                (n, 1, 1),
                g_tables=self.tables.bind(1, self.walk_depth),
                g_uv=self.device.upload(uv_rows[start:stop]),
                g_wo=self.device.upload(wo_rows[start:stop]),
                g_wi=self.device.upload(wi_rows[start:stop]),
                g_out=g_out,
                g_out2=g_out2,
                count=n,
                first=start,  # query i draws from stream i whatever the chunking
                material=0,
                mode=mode,
                samples=samples,
                seed=seed & 0xFFFFFFFF,
                lobe=lobe[0],
                slot=lobe[1],
            )
            out[start:stop] = self.device.download(g_out, np.float32, (n, 4))
            out2[start:stop] = self.device.download(g_out2, np.float32, (n, 4))
        return out, out2

    def evaluate(
        self,
        uv: np.ndarray,
        wi: np.ndarray,
        wo: np.ndarray,
        samples: int = 1,
        seed: int = 0,
        level: float | np.ndarray | None = None,
    ) -> np.ndarray:
        """[N, 3] f(wo, wi) * |cos theta_i|, averaged over `samples` stochastic estimates."""
        out, _ = self._run(MODE_EVAL, uv, wo, wi, samples, seed, level=level)
        return out[:, :3].copy()

    def sample(
        self,
        uv: np.ndarray,
        wo: np.ndarray,
        seed: int = 0,
        level: float | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Sampled wi [N, 3], weight f*cos/pdf [N, 3], pdf [N] (0 = no sample) and whether
        the sample is a delta event [N]."""
        out, out2 = self._run(MODE_SAMPLE, uv, wo, None, 1, seed, level=level)
        return out2[:, :3].copy(), out[:, :3].copy(), out2[:, 3].copy(), out[:, 3] < 0

    def pdf(
        self,
        uv: np.ndarray,
        wi: np.ndarray,
        wo: np.ndarray,
        seed: int = 0,
        level: float | np.ndarray | None = None,
    ) -> np.ndarray:
        """[N] solid-angle density with which `sample` draws wi."""
        out, _ = self._run(MODE_PDF, uv, wo, wi, 1, seed, level=level)
        return out[:, 0].copy()

    def shade(
        self, uv: np.ndarray, wi: np.ndarray, wo: np.ndarray, events: int = 1, seed: int = 0
    ) -> np.ndarray:
        """[N, 4]: the sum of what `events` shading events of the path tracer compute at
        each query (set-up for wo, eval and pdf towards wi, one sample); for benchmarks."""
        out, _ = self._run(MODE_SHADE, uv, wo, wi, events, seed)
        return out

    def sample_walk(
        self, uv: np.ndarray, wo: np.ndarray, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exit wi [N, 3] and weight [N, 3] (zero when the walk died) of the analog random
        walk through each stack: an estimator independent of `evaluate`, for tests."""
        out, out2 = self._run(MODE_WALK, uv, wo, None, 1, seed)
        return out2[:, :3].copy(), out[:, :3].copy()

    def flakes(self, uv: np.ndarray, lobe: Lobe) -> np.ndarray:
        """[N, 4]: the normal (local frame) of the flake a flakes `lobe` of this material
        has at each uv, and 1 where that cell holds a flake, 0 where it is empty."""
        if self.graph is None or lobe.type != "flakes" or id(lobe) not in self.tables.lobe_slots:
            raise NrenderError("flakes(): expected a flakes lobe of this material")
        out, _ = self._run(MODE_FLAKE, uv, None, None, 1, 0, self.tables.lobe_slots[id(lobe)])
        return out

    def evaluate_as_sampled(
        self, uv: np.ndarray, wi: np.ndarray, wo: np.ndarray, seed: int = 0
    ) -> np.ndarray:
        """eval with the random numbers `sample(seed)` uses for its weight (for tests)."""
        out, _ = self._run(MODE_EVAL_AS_SAMPLED, uv, wo, wi, 1, seed)
        return out[:, :3].copy()


def _queries(material: MaterialGraph | MaterialQueries, device: Any) -> MaterialQueries:
    if isinstance(material, MaterialQueries):
        return material
    return MaterialQueries(material, device)


def evaluate(
    material: MaterialGraph | MaterialQueries,
    uv: np.ndarray,
    wi: np.ndarray,
    wo: np.ndarray,
    samples: int = 1,
    seed: int = 0,
    device: RenderDevice | str = "auto",
) -> np.ndarray:
    """[N, 3] f * cos(theta_i) of `material` (see module docstring)."""
    return _queries(material, device).evaluate(uv, wi, wo, samples, seed)


def sample(
    material: MaterialGraph | MaterialQueries,
    uv: np.ndarray,
    wo: np.ndarray,
    seed: int = 0,
    device: RenderDevice | str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(wi [N, 3], weight [N, 3], pdf [N], is_delta [N]) drawn from `material`'s sampler."""
    return _queries(material, device).sample(uv, wo, seed)


def pdf(
    material: MaterialGraph | MaterialQueries,
    uv: np.ndarray,
    wi: np.ndarray,
    wo: np.ndarray,
    seed: int = 0,
    device: RenderDevice | str = "auto",
) -> np.ndarray:
    """[N] density of `sample` at wi."""
    return _queries(material, device).pdf(uv, wi, wo, seed)
