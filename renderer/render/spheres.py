"""Analytic sphere instances as the renderer uploads them: world-space centres and radii
for the BVH, and each sphere's object frame and material for shading (`SphereShading` in
shaders/scene/scene.slang)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..accel.primitives import SphereSet
from ..scene import shapes
from ..scene.types import Scene, Sphere


@dataclass
class SphereInstances:
    """The scene's analytic spheres in instance order."""

    spheres: SphereSet
    axes: np.ndarray  # [S, 3, 3] float32: row k is the object's axis k in world space, unit
    material: np.ndarray  # [S] uint32
    normal_sign: np.ndarray  # [S] float32: +1 outward normals, -1 flip_normals

    @property
    def count(self) -> int:
        return self.spheres.count

    def take(self, order: np.ndarray) -> SphereInstances:
        return SphereInstances(
            self.spheres.take(order),
            self.axes[order],
            self.material[order],
            self.normal_sign[order],
        )


def flatten_spheres(scene: Scene, material_index: dict[str, int]) -> SphereInstances:
    """The analytic spheres of `scene`'s instances. The loader has checked that their
    transforms are similarities (rotation or mirror times a uniform scale), so a sphere
    stays a sphere of radius scale x radius about the transformed origin."""
    centers, radii, axes, materials, signs = [], [], [], [], []
    for instance in scene.instances:
        shape = scene.meshes[instance.mesh]
        if not isinstance(shape, Sphere):
            continue
        linear = np.asarray(instance.transform, np.float64)[:3, :3]
        scale = abs(np.linalg.det(linear)) ** (1.0 / 3.0)
        centers.append(np.asarray(instance.transform, np.float64)[:3, 3])
        radii.append(shape.radius * scale)
        axes.append((linear / scale).T)  # columns (object axes) as rows
        materials.append(material_index[instance.material])
        signs.append(-1.0 if shape.flip_normals else 1.0)
    if not centers:
        return SphereInstances(
            SphereSet.empty(),
            np.zeros((0, 3, 3), np.float32),
            np.zeros(0, np.uint32),
            np.zeros(0, np.float32),
        )
    return SphereInstances(
        SphereSet(np.array(centers, np.float32), np.array(radii, np.float32)),
        np.array(axes, np.float32),
        np.array(materials, np.uint32),
        np.array(signs, np.float32),
    )


# A sphere's stand-in triangles where the host needs triangles: its emission texture's
# mean (emitter_power.py) and light selection's irradiance estimate (light_selection.py),
# neither of which needs the exact surface.
PROXY_SEGMENTS, PROXY_RINGS = 32, 16


def proxy_triangles(instances: SphereInstances, index: int) -> tuple[np.ndarray, np.ndarray]:
    """World-space flat triangles [F, 3, 3] (front faces as the sphere's) and their uvs
    [F, 3, 2] approximating sphere `index`, with the sphere's uv convention."""
    mesh = shapes.sphere(1.0, PROXY_SEGMENTS, PROXY_RINGS, smooth=False)
    faces = mesh.faces[:, ::-1] if instances.normal_sign[index] < 0 else mesh.faces
    sphere = instances.spheres
    world = sphere.centers[index].astype(np.float64) + sphere.radii[
        index
    ] * mesh.positions @ instances.axes[index].astype(np.float64)
    assert mesh.uvs is not None
    return world[faces], mesh.uvs[faces]
