"""A Scene turned into device buffers laid out as shaders/scene/scene.slang declares them.

Mesh instances are flattened into world-space triangles and analytic spheres into
world-space spheres; one BVH is built over both (accel/primitives.py) and every
per-triangle and per-sphere array is put into BVH order. Struct layouts come from the kernel's
reflection (renderer/layout.py), never from hand-written offsets.

Emissive triangles and spheres are chosen for light sampling by power: area x pi x the
luminance of the emission, with an emission texture's mean over the triangle
(emitter_power.py) or the sphere (over stand-in triangles, spheres.py). How
often the environment is sampled instead is measured where the camera looks
(light_selection.py).

NeRF volumes travel in their own buffers (renderer/fields/nerf_buffers.py), outside the
BVH: kernels march them along rays (shaders/fields/nerf.slang).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..accel import Bvh, build_primitive_bvh
from ..accel.primitives import sphere_slots
from ..accel.queries import TriangleQueries
from ..accel.upload import upload_geometry
from ..device import Kernel, RenderDevice
from ..fields.nerf_buffers import NerfVolumeBuffers, PlacedField
from ..image_io import LUMINANCE
from ..layout import INVALID_INDEX
from ..materials.tables import DEFAULT_WALK_DEPTH, DEFAULT_WALKS, MaterialEntry, MaterialTables
from ..scene.transform import transform_normals, transform_points
from ..scene.types import Environment, Mesh, Scene
from .distributions import cdf_2d, cdf_rows
from .emitter_power import emission_texture_means
from .light_selection import EmitterLights, environment_probability
from .spheres import (
    LIGHT_PROXY,
    TEXTURE_PROXY,
    Proxy,
    SphereInstances,
    flatten_spheres,
    proxy,
)

NO_UV_LOD = -64.0  # lod constant of a triangle without usable uvs: always the finest level


@dataclass
class Triangles:
    """World-space triangles of all instances, in instance order."""

    vertices: np.ndarray  # [T, 3, 3] float32
    normals: np.ndarray  # [T, 3, 3] float32
    uvs: np.ndarray  # [T, 3, 2] float32
    material: np.ndarray  # [T] uint32

    def tangents(self) -> np.ndarray:
        """[T, 3] float32 dp/du per triangle, normalised; zero where the uvs are degenerate."""
        p = self.vertices.astype(np.float64)
        t = self.uvs.astype(np.float64)
        e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
        d1, d2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
        det = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
        safe = np.abs(det) > 1e-12
        inv = np.where(safe, 1.0 / np.where(safe, det, 1.0), 0.0)
        dpdu = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * inv[:, None]
        length = np.linalg.norm(dpdu, axis=1, keepdims=True)
        return np.where(length > 0, dpdu / np.where(length > 0, length, 1.0), 0.0).astype(
            np.float32
        )

    def lod_constants(self) -> np.ndarray:
        """[T] float32 0.5 log2(uv area / world area): how many uv units one world unit of
        the surface spans, for ray-cone level of detail; NO_UV_LOD where either area is 0."""
        p = self.vertices.astype(np.float64)
        t = self.uvs.astype(np.float64)
        world = np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
        d1, d2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
        uv = np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])
        ok = (world > 0) & (uv > 0)
        ratio = np.where(ok, uv, 1.0) / np.where(ok, world, 1.0)
        return np.where(ok, 0.5 * np.log2(ratio), NO_UV_LOD).astype(np.float32)

    def curvatures(self) -> np.ndarray:
        """[T] float32 mean normal curvature from the vertex normals: the average over the
        three edges of (n_j - n_i) . (p_j - p_i) / |p_j - p_i|^2, 1/r on a sphere of
        radius r with outward normals, 0 on flat-shaded triangles."""
        p = self.vertices.astype(np.float64)
        n = self.normals.astype(np.float64)
        total = np.zeros(len(p))
        for i, j in ((0, 1), (1, 2), (2, 0)):
            dp = p[:, j] - p[:, i]
            length2 = (dp * dp).sum(1)
            dn = n[:, j] - n[:, i]
            total += np.where(length2 > 0, (dn * dp).sum(1) / np.where(length2 > 0, length2, 1), 0)
        return (total / 3.0).astype(np.float32)

    @property
    def count(self) -> int:
        return int(self.vertices.shape[0])


def flatten_instances(scene: Scene, material_index: dict[str, int]) -> Triangles:
    vertices, normals, uvs, materials = [], [], [], []
    for instance in scene.instances:
        mesh = scene.meshes[instance.mesh]
        if not isinstance(mesh, Mesh):
            continue  # analytic spheres: spheres.py
        m = instance.transform
        # A mirroring transform turns the winding inside out: swap two corners first, so
        # geometric normals, flat normals and uvs all follow the corrected order.
        faces = mesh.faces[:, [0, 2, 1]] if np.linalg.det(m[:3, :3]) < 0 else mesh.faces
        tri_p = transform_points(m, mesh.positions)[faces]  # [F, 3, 3]
        if mesh.normals is not None:
            tri_n = transform_normals(m, mesh.normals)[faces]
        else:
            face_n = np.cross(tri_p[:, 1] - tri_p[:, 0], tri_p[:, 2] - tri_p[:, 0])
            length = np.linalg.norm(face_n, axis=1, keepdims=True)
            face_n = face_n / np.where(length > 0, length, 1.0)
            tri_n = np.repeat(face_n[:, None, :], 3, axis=1)
        tri_uv = np.zeros((len(faces), 3, 2)) if mesh.uvs is None else mesh.uvs[faces]
        vertices.append(tri_p)
        normals.append(tri_n)
        uvs.append(tri_uv)
        materials.append(np.full(len(faces), material_index[instance.material], np.uint32))
    if not vertices:
        return Triangles(
            np.zeros((0, 3, 3), np.float32),
            np.zeros((0, 3, 3), np.float32),
            np.zeros((0, 3, 2), np.float32),
            np.zeros(0, np.uint32),
        )
    return Triangles(
        np.concatenate(vertices).astype(np.float32),
        np.concatenate(normals).astype(np.float32),
        np.concatenate(uvs).astype(np.float32),
        np.concatenate(materials),
    )


@dataclass
class SceneStats:
    triangles: int = 0
    spheres: int = 0
    bvh_nodes: int = 0
    bvh_depth: int = 0
    bvh_seconds: float = 0.0
    emitters: int = 0
    volumes: int = 0
    environment_probability: float = 0.0
    upload_seconds: float = 0.0


def environment_weights(radiance: np.ndarray) -> np.ndarray:
    """Sampling weights [H, W]: luminance, max-filtered so every texel that bilinear lookup
    can make non-zero has a non-zero density, times sin(theta) for the equirect warp."""
    lum = np.maximum(radiance @ LUMINANCE, 0.0)
    padded = np.pad(lum, ((1, 1), (0, 0)), mode="edge")
    padded = np.concatenate([padded[:, -1:], padded, padded[:, :1]], axis=1)
    h, w = lum.shape
    neighbours = np.max(
        [
            padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
        ],
        axis=0,
    )
    sin_theta = np.sin(np.pi * (np.arange(h) + 0.5) / h)
    return neighbours * sin_theta[:, None]


MIN_EMITTER_AREA = 1e-18


class SceneBuffers:
    """Device-side scene for one kernel; `bind()` gives the value of its `Scene` parameter."""

    def __init__(self, device: RenderDevice, kernel: Kernel, scene: Scene) -> None:
        self.device = device
        self.kernel = kernel
        self.stats = SceneStats()
        names = list(scene.materials)
        self.material_index = {name: i for i, name in enumerate(names)}
        triangles = flatten_instances(scene, self.material_index)
        all_spheres = flatten_spheres(scene, self.material_index)
        self.stats.triangles = triangles.count
        self.stats.spheres = all_spheres.count

        bvh = self._build_bvh(triangles, all_spheres)
        order = bvh.primitive_order[: triangles.count]
        vertices = triangles.vertices[order]
        normals = triangles.normals[order]
        uvs = triangles.uvs[order]
        material_ids = triangles.material[order]
        spheres = all_spheres.take(sphere_slots(bvh, triangles.count))
        corners = np.concatenate([vertices.reshape(-1, 3), *spheres.spheres.bounds()])
        self.bounds = (
            (corners.min(axis=0), corners.max(axis=0))
            if len(corners)
            else (np.zeros(3), np.zeros(3))
        )

        start = time.perf_counter()
        emitter_of_triangle, emitter_of_sphere, emitters, emitter_cdf, area_power = self._emitters(
            scene, names, vertices, uvs, material_ids, spheres
        )
        self.geometry = upload_geometry(device, kernel, bvh, vertices, spheres.spheres)
        shading = kernel.records("TriangleShading", triangles.count)
        for k in range(3):
            shading[f"n{k}"] = normals[:, k]
            shading[f"uv{k}"] = uvs[:, k]
        shading["tangent"] = triangles.tangents()[order]
        shading["lod_constant"] = triangles.lod_constants()[order]
        shading["curvature"] = triangles.curvatures()[order]
        shading["material"] = material_ids
        shading["emitter"] = emitter_of_triangle
        sphere_shading = kernel.records("SphereShading", spheres.count)
        for k, axis in enumerate("xyz"):
            sphere_shading[f"axis_{axis}"] = spheres.axes[:, k]
        sphere_shading["material"] = spheres.material
        sphere_shading["emitter"] = emitter_of_sphere
        sphere_shading["normal_sign"] = spheres.normal_sign
        self.material_tables = MaterialTables(
            device,
            kernel,
            [
                MaterialEntry(
                    scene.materials[n].material_graph(),
                    scene.materials[n].emission,
                    scene.materials[n].neural,
                    scene.materials[n].emission_texture,
                )
                for n in names
            ],
        )
        environment = self._environment(scene.environment)
        extent = float(np.abs(np.concatenate(self.bounds)).max()) if len(corners) else 1.0
        self.ray_epsilon = 2e-5 * max(1.0, extent)
        p_env = environment_probability(
            scene.camera,
            scene.environment,
            self.emitter_lights,
            lambda: TriangleQueries(
                device, triangles.vertices, bvh, self.geometry, spheres=all_spheres.spheres
            ),
            triangles.vertices,
            self.ray_epsilon,
            spheres=all_spheres.spheres,
        )
        self.stats.environment_probability = p_env
        self.lights = {
            "emitters": device.upload(emitters),
            "emitter_cdf": device.upload(emitter_cdf.astype(np.float32)),
            "emitter_count": len(emitters),
            "environment_probability": float(p_env),
        }
        self.shading = device.upload(shading)
        self.sphere_shading = device.upload(sphere_shading)
        self.environment = environment
        self.volumes = NerfVolumeBuffers(
            device, kernel, [PlacedField(v.nerf, v.world_from_field) for v in scene.volumes]
        )
        self.stats.volumes = len(scene.volumes)
        self.stats.upload_seconds = time.perf_counter() - start
        # a NeRF volume shows its own (baked-in) light
        self.has_light = area_power > 0 or not scene.environment.is_black or bool(scene.volumes)

    def _build_bvh(self, triangles: Triangles, spheres: SphereInstances) -> Bvh:
        bvh = build_primitive_bvh(triangles.vertices, spheres.spheres)
        self.stats.bvh_nodes = bvh.node_count
        self.stats.bvh_depth = bvh.depth
        self.stats.bvh_seconds = bvh.build_seconds
        return bvh

    def _emitters(
        self,
        scene: Scene,
        names: list[str],
        vertices: np.ndarray,
        uvs: np.ndarray,
        material_ids: np.ndarray,
        spheres: SphereInstances,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """Emissive triangles, then emissive spheres (both in slot order), chosen by power:
        per emitter index of each triangle and sphere slot, the `Emitter` records, their
        cdf and the total power."""
        emission = np.array([scene.materials[n].emission for n in names]).reshape(-1, 3)
        lit = (emission @ LUMINANCE > 0) if len(names) else np.zeros(0, bool)
        emissive = np.nonzero(lit[material_ids])[0] if len(names) else np.zeros(0, np.int64)
        v = vertices[emissive].astype(np.float64)
        area = 0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)
        # Luminance of the emission, times the texture's mean where it has one (see the
        # module docstring); with a texture, a triangle where it is black has no power.
        radiance = emission[material_ids[emissive]] @ LUMINANCE
        for m, name in enumerate(names):
            texture = scene.materials[name].emission_texture
            on = material_ids[emissive] == m if texture is not None else None
            if on is not None and on.any():
                radiance[on] = emission_texture_means(
                    texture, emission[m] * LUMINANCE, uvs[emissive[on]]
                )
        # The kernel normalises the float32 edge cross product (length 2 * area) when it
        # samples a point: below ~1e-19 its squared length underflows and the normal is
        # NaN. Such an emitter's power is nil; BSDF-sampled rays still see its emission.
        keep = (area > MIN_EMITTER_AREA) & (radiance > 0)
        emissive, area, radiance = emissive[keep], area[keep], radiance[keep]

        # Spheres: area 4 pi r^2; a texture's mean over the sphere from stand-in triangles.
        balls = np.nonzero(lit[spheres.material])[0] if len(names) else np.zeros(0, np.int64)
        ball_area = 4 * np.pi * spheres.spheres.radii[balls].astype(np.float64) ** 2
        ball_radiance = emission[spheres.material[balls]] @ LUMINANCE
        for k, b in enumerate(balls):
            texture = scene.materials[names[spheres.material[b]]].emission_texture
            if texture is not None:
                fine = proxy(spheres, int(b), TEXTURE_PROXY)
                means = emission_texture_means(
                    texture, emission[spheres.material[b]] * LUMINANCE, fine.uvs
                )
                ball_radiance[k] = (fine.areas * means).sum() / fine.areas.sum()
        ball_keep = (ball_area > MIN_EMITTER_AREA) & (ball_radiance > 0)
        balls, ball_area = balls[ball_keep], ball_area[ball_keep]
        ball_radiance = ball_radiance[ball_keep]
        proxies = [proxy(spheres, int(b), LIGHT_PROXY) for b in balls]

        power = np.concatenate([area * radiance, ball_area * ball_radiance]) * np.pi
        total = power.sum()
        pmf = power / total if total > 0 else power
        self.emitter_lights = self._emitter_lights(
            vertices[emissive], radiance, pmf, proxies, ball_radiance
        )
        count = len(emissive) + len(balls)
        records = self.kernel.records("Emitter", count)
        records["primitive"] = np.concatenate([emissive, len(vertices) + balls])
        records["area"] = np.concatenate([area, ball_area])
        records["pmf"] = pmf
        emitter_of_triangle = np.full(len(vertices), INVALID_INDEX, np.uint32)
        emitter_of_triangle[emissive] = np.arange(len(emissive), dtype=np.uint32)
        emitter_of_sphere = np.full(spheres.count, INVALID_INDEX, np.uint32)
        emitter_of_sphere[balls] = len(emissive) + np.arange(len(balls), dtype=np.uint32)
        self.stats.emitters = count
        return (
            emitter_of_triangle,
            emitter_of_sphere,
            records,
            cdf_rows(power) if len(power) else np.zeros(1),
            float(total),
        )

    @staticmethod
    def _emitter_lights(
        triangles: np.ndarray,
        radiance: np.ndarray,
        pmf: np.ndarray,
        proxies: list[Proxy],
        ball_radiance: np.ndarray,
    ) -> EmitterLights:
        """The host's copy for light selection: triangles as they are, each sphere as its
        stand-in triangles sharing its probability by area."""
        vertices, radiances, pmfs = [triangles], [radiance], [pmf[: len(triangles)]]
        for k, stand_in in enumerate(proxies):
            vertices.append(stand_in.vertices.astype(np.float32))
            radiances.append(np.full(len(stand_in.areas), ball_radiance[k]))
            pmfs.append(pmf[len(triangles) + k] * stand_in.areas / stand_in.areas.sum())
        return EmitterLights(
            np.concatenate(vertices), np.concatenate(radiances), np.concatenate(pmfs)
        )

    def _environment(self, env: Environment) -> dict[str, Any]:
        radiance = np.asarray(env.radiance, np.float32)
        h, w = radiance.shape[:2]
        marginal, conditional = cdf_2d(environment_weights(radiance))
        angle = np.radians(env.rotation)
        enabled = not env.is_black
        rgba = np.concatenate([radiance.reshape(-1, 3), np.zeros((h * w, 1), np.float32)], axis=1)
        return {
            "radiance": self.device.upload(rgba),
            "marginal_cdf": self.device.upload(marginal.astype(np.float32)),
            "conditional_cdf": self.device.upload(conditional.reshape(-1).astype(np.float32)),
            "width": w,
            "height": h,
            "scale": [float(env.scale)] * 3,
            "rotation": [float(np.cos(angle)), float(np.sin(angle))],
            "enabled": int(enabled),
        }

    def bind(
        self,
        layered_walks: int = DEFAULT_WALKS,
        layered_depth: int = DEFAULT_WALK_DEPTH,
        prefer_neural: bool = False,
    ) -> dict[str, Any]:
        """Value for the kernel's `ParameterBlock<Scene>`."""
        return {
            "geometry": self.geometry,
            "shading": self.shading,
            "sphere_shading": self.sphere_shading,
            "materials": self.material_tables.bind(layered_walks, layered_depth, prefer_neural),
            "environment": self.environment,
            "lights": self.lights,
            "volumes": self.volumes.bind(),
            "ray_epsilon": float(self.ray_epsilon),
        }
