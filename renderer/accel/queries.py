"""Batched ray queries against triangles and spheres, for tests, tools and benchmarks.

    queries = TriangleQueries(device, triangles)          # triangles [T, 3, 3]
    hits = queries.closest_hit(origins, directions)       # t, primitive (input index), uv

With `spheres=SphereSet(...)` the spheres are traced too; a hit's `primitive` is then an
input index in "triangles, then spheres" order (T + i for sphere i).

Runs shaders/scene/trace_rays.slang: the same traversal the path tracer uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..device import RenderDevice
from .bvh import Bvh
from .primitives import SphereSet, build_primitive_bvh, sphere_slots
from .upload import upload_geometry

MODULE = ("scene/trace_rays.slang", "trace_rays")
MODE_CLOSEST, MODE_BRUTE_FORCE, MODE_ANY = 0, 1, 2
MISS = 0xFFFFFFFF


@dataclass
class RayHits:
    t: np.ndarray  # [R] float32, t_max where missed
    primitive: np.ndarray  # [R] int64 input index (triangles, then spheres), -1 where missed
    barycentrics: np.ndarray  # [R, 2] (b1, b2) on triangles

    @property
    def hit(self) -> np.ndarray:
        return self.primitive >= 0


class TriangleQueries:
    def __init__(
        self,
        device: RenderDevice,
        triangles: np.ndarray,
        bvh: Bvh | None = None,
        geometry: dict[str, Any] | None = None,
        spheres: SphereSet | None = None,
    ) -> None:
        """`geometry`: the `SceneGeometry` value of `triangles` and `spheres` under `bvh`
        already on `device` (a renderer's), used instead of uploading them again."""
        triangles = np.asarray(triangles, np.float32).reshape(-1, 3, 3)
        spheres = spheres or SphereSet.empty()
        self.device = device
        self.kernel = device.kernel(*MODULE)
        self.bvh = bvh or build_primitive_bvh(triangles, spheres)
        if geometry is not None and bvh is None:
            raise ValueError("an uploaded geometry needs the BVH it was uploaded with")
        count = len(triangles)
        self.geometry = geometry or upload_geometry(
            device,
            self.kernel,
            self.bvh,
            triangles[self.bvh.primitive_order[:count]],
            spheres.take(sphere_slots(self.bvh, count)),
        )

    def _run(
        self, origins: np.ndarray, directions: np.ndarray, t_max: float | np.ndarray, mode: int
    ) -> RayHits:
        origins = np.asarray(origins, np.float32).reshape(-1, 3)
        count = len(origins)
        rays = self.kernel.records("Ray", count)
        rays["origin"] = origins
        rays["direction"] = np.asarray(directions, np.float32).reshape(-1, 3)
        rays["t_min"] = 0.0
        rays["t_max"] = t_max
        hits = self.device.upload(self.kernel.records("Hit", count))
        self.kernel.dispatch(
            (count, 1, 1),
            g_geometry=self.geometry,
            g_rays=self.device.upload(rays),
            g_hits=hits,
            ray_count=count,
            mode=mode,
        )
        out = self.device.download(hits, self.kernel.dtype("Hit"), (count,))
        slot = out["primitive"].astype(np.int64)
        missed = out["primitive"] == MISS
        primitive = np.where(missed, -1, self.bvh.primitive_order[np.where(missed, 0, slot)])
        if mode == MODE_ANY:
            primitive = np.where(missed, -1, 0)
        return RayHits(out["t"].copy(), primitive, out["barycentrics"].copy())

    def closest_hit(
        self, origins: np.ndarray, directions: np.ndarray, t_max: float | np.ndarray = 3.0e38
    ) -> RayHits:
        return self._run(origins, directions, t_max, MODE_CLOSEST)

    def closest_hit_brute_force(
        self, origins: np.ndarray, directions: np.ndarray, t_max: float | np.ndarray = 3.0e38
    ) -> RayHits:
        return self._run(origins, directions, t_max, MODE_BRUTE_FORCE)

    def occluded(
        self, origins: np.ndarray, directions: np.ndarray, t_max: float | np.ndarray = 3.0e38
    ) -> np.ndarray:
        """[R] bool: anything hit within (0, t_max)."""
        return self._run(origins, directions, t_max, MODE_ANY).hit
