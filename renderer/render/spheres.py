"""Analytic sphere instances as the renderer uploads them: world-space centres and radii
for the BVH, and each sphere's object frame and material for shading (`SphereShading` in
shaders/scene/scene.slang)."""

from __future__ import annotations

import functools
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


# A sphere's stand-in triangles where the host needs triangles, neither use needing the
# exact surface: its emission texture's mean (emitter_power.py), over a fine mesh, and
# light selection's irradiance estimate (light_selection.py), over a coarse one (a scene
# may hold thousands of sphere lights).
TEXTURE_PROXY = (32, 16)  # segments, rings
LIGHT_PROXY = (12, 6)


@dataclass
class Proxy:
    """World-space flat triangles [F, 3, 3] standing in for a sphere, front faces as the
    sphere's; their uvs [F, 3, 2] (the sphere's convention) and areas [F]."""

    vertices: np.ndarray
    uvs: np.ndarray
    areas: np.ndarray


@functools.cache
def _unit_proxy(segments: int, rings: int, outside: bool) -> tuple[np.ndarray, np.ndarray]:
    """Unit-sphere triangles [F, 3, 3] and uvs [F, 3, 2]. `outside`: scaled so that every
    face lies outside the sphere, so that points on it are never inside (a shadow ray
    to one would meet the sphere itself first); otherwise inscribed (for flip_normals,
    lit from inside) and wound inwards."""
    mesh = shapes.sphere(1.0, segments, rings, smooth=False)
    assert mesh.uvs is not None
    faces = mesh.faces if outside else mesh.faces[:, ::-1]
    tri = mesh.positions[faces]
    if outside:
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        tri = tri / np.einsum("fj,fj->f", normal, tri[:, 0]).min()  # nearest face plane at 1
    return tri, mesh.uvs[faces]


def proxy(instances: SphereInstances, index: int, resolution: tuple[int, int]) -> Proxy:
    """Stand-in triangles for sphere `index` at `resolution` (segments, rings)."""
    tri, uvs = _unit_proxy(*resolution, bool(instances.normal_sign[index] > 0))
    sphere = instances.spheres
    world = sphere.centers[index].astype(np.float64) + sphere.radii[index] * (
        tri @ instances.axes[index].astype(np.float64)
    )
    cross = np.cross(world[:, 1] - world[:, 0], world[:, 2] - world[:, 0])
    return Proxy(world, uvs, 0.5 * np.linalg.norm(cross, axis=1))
