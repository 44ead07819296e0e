"""A BVH and its triangles as the `SceneGeometry` parameter of shaders/scene/geometry.slang."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..device import Kernel, RenderDevice
from .bvh import Bvh
from .primitives import SphereSet


def upload_geometry(
    device: RenderDevice,
    kernel: Kernel,
    bvh: Bvh,
    ordered: np.ndarray,
    spheres: SphereSet | None = None,
) -> dict[str, Any]:
    """Device value of `SceneGeometry`; `ordered` [T, 3, 3] are the triangles in BVH order,
    `spheres` the spheres in slot order (primitives.sphere_slots)."""
    spheres = spheres or SphereSet.empty()
    nodes = kernel.records("BvhNode", bvh.node_count)
    nodes["bounds_min"] = bvh.bounds_min
    nodes["bounds_max"] = bvh.bounds_max
    nodes["first_index"] = bvh.first_index
    nodes["primitive_count"] = bvh.primitive_count
    tris = kernel.records("TriangleVertices", len(ordered))
    tris["p0"], tris["p1"], tris["p2"] = ordered[:, 0], ordered[:, 1], ordered[:, 2]
    balls = kernel.records("SphereData", spheres.count)
    balls["center"] = spheres.centers
    balls["radius"] = spheres.radii
    return {
        "nodes": device.upload(nodes),
        "triangles": device.upload(tris),
        "spheres": device.upload(balls),
        "node_count": bvh.node_count,
        "triangle_count": len(ordered),
        "sphere_count": spheres.count,
    }
