"""A glTF 2.0 file (.gltf/.glb) loaded as a whole scene.

Meshes keep their node transforms; the first perspective camera becomes the camera (or
one is placed to frame the scene); emissiveFactor becomes emission. glTF's
metallic-roughness model maps onto the BSDF library as a material graph: the dielectric
part is the base colour as a diffuse lobe under a clear coat of index 1.5 with the
material's roughness, the metal part a conductor whose reflectivity and edge tint are the
base colour, and the metallic value (factor x texture blue channel) mixes the two.
Roughness is factor x texture green channel, as the specification says. OBJ/MTL
materials stay diffuse. glTF has no environment, so a constant white one (radiance 1)
lights the scene.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NrenderError, SceneError
from ..image_io import check_image_size, srgb_to_linear
from .environment import constant_map
from .mesh_io import MAX_COORDINATE, mesh_from_trimesh, world_reach
from .types import MAX_RADIANCE, Camera, Environment, Instance, Material, Scene, Texture

DEFAULT_HEIGHT = 480


def _pixels(image: Any, where: str) -> np.ndarray:
    """A texture trimesh decoded (a PIL image) as float RGB in [0, 1], size-checked."""
    width, height = getattr(image, "size", (0, 0))
    check_image_size(Path(where), int(width), int(height))
    return np.asarray(image.convert("RGB"), np.float32) / 255.0


def _material(visual: Any, where: str) -> Material:
    material = getattr(visual, "material", None)
    if material is None:
        return Material(albedo=Texture.constant([0.8, 0.8, 0.8]))
    from trimesh.visual.material import PBRMaterial

    if not isinstance(material, PBRMaterial):
        # Materials from OBJ/MTL carry a plain diffuse colour (sRGB, 0..255).
        diffuse = getattr(material, "diffuse", None)
        rgb = (
            srgb_to_linear(np.asarray(diffuse[:3]) / 255.0)
            if diffuse is not None
            else np.array([0.8, 0.8, 0.8])
        )
        return Material(albedo=Texture.constant(np.clip(rgb, 0.0, 1.0)))
    factor = getattr(material, "baseColorFactor", None)
    # An absent factor is the specification's default, white (the texture as it is).
    factor = np.ones(4) if factor is None else np.asarray(factor, np.float64)
    rgb = factor[:3] / 255.0 if factor.dtype.kind in "ui" or factor.max() > 1.0 else factor[:3]
    base = Texture.constant(np.clip(rgb, 0.0, 1.0))
    image = getattr(material, "baseColorTexture", None)
    if image is not None:
        pixels = _pixels(image, where)
        base = Texture(kind="image", image=srgb_to_linear(pixels) * base.value.astype(np.float32))
    emissive = getattr(material, "emissiveFactor", None)
    emission = np.zeros(3) if emissive is None else np.asarray(emissive, np.float64)[:3]
    if emission.shape != (3,) or not np.isfinite(emission).all():
        raise SceneError(f"{where}: emissiveFactor must be three finite numbers")
    if (emission > MAX_RADIANCE).any():
        raise SceneError(f"{where}: emissiveFactor must be at most {MAX_RADIANCE:g}")
    return Material(
        kind="layered",
        graph=metallic_roughness_graph(material, base, where),
        emission=np.clip(emission, 0.0, None),
    )


def _factor(value: Any, default: float) -> float:
    if value is None:
        return default
    number = float(np.asarray(value, np.float64).reshape(-1)[0])
    return float(np.clip(number, 0.0, 1.0)) if np.isfinite(number) else default


def metallic_roughness_graph(material: Any, base: Texture, where: str = "glTF") -> Any:
    """The material graph of a glTF metallic-roughness material (see module docstring)."""
    from ..materials.graph import Layer, Lobe, MaterialGraph, Mix, Stack, constant

    metallic = constant(_factor(getattr(material, "metallicFactor", None), 1.0))
    roughness = constant(_factor(getattr(material, "roughnessFactor", None), 1.0))
    packed = getattr(material, "metallicRoughnessTexture", None)
    if packed is not None:
        pixels = _pixels(packed, where)  # linear data
        rough = pixels[..., 1:2] * float(roughness.value[0])
        metal = pixels[..., 2:3] * float(metallic.value[0])
        roughness = Texture(kind="image", image=np.repeat(rough, 3, axis=-1))
        metallic = Texture(kind="image", image=np.repeat(metal, 3, axis=-1))
    dielectric = Stack(
        lobes=[Lobe("diffuse", color=base)],
        layers=[Layer(ior=1.5, roughness=roughness, thickness=0.01)],
    )
    metal = Stack(
        lobes=[Lobe("conductor", color=base, color2=base, roughness=roughness)],
    )
    if metallic.kind == "constant" and metallic.value[0] <= 0.0:
        root: Any = dielectric
    elif metallic.kind == "constant" and metallic.value[0] >= 1.0:
        root = metal
    else:
        root = Mix(mask=metallic, a=dielectric, b=metal)
    name = str(getattr(material, "name", "") or "gltf")
    return MaterialGraph(root=root, name=name, source="glTF")


def _camera(tm_scene: Any, path: Path) -> Camera:
    fov = np.asarray(tm_scene.camera.fov, np.float64) if tm_scene.has_camera else None
    if fov is not None and fov.shape == (2,) and ((fov > 0.1) & (fov < 179.9)).all():
        fov_x, fov_y = (float(v) for v in fov)
        aspect = np.tan(np.radians(fov_x) / 2) / np.tan(np.radians(fov_y) / 2)
        m = np.asarray(tm_scene.camera_transform, np.float64)
        position = m[:3, 3]
        if not np.isfinite(m).all() or np.linalg.norm(np.cross(m[:3, 2], m[:3, 1])) < 1e-9:
            raise SceneError(f"{path}: the camera's transform is non-finite or degenerate")
        return Camera(
            position=position,
            look_at=position - m[:3, 2],
            up=m[:3, 1],
            fov=fov_y,
            resolution=(max(1, round(DEFAULT_HEIGHT * aspect)), DEFAULT_HEIGHT),
        )
    lo, hi = np.asarray(tm_scene.bounds, np.float64)
    centre = 0.5 * (lo + hi)
    radius = max(0.5 * float(np.linalg.norm(hi - lo)), 1e-3)
    fov = 40.0
    distance = radius / np.sin(np.radians(fov) / 2)
    return Camera(
        position=centre + np.array([0.0, 0.25, 1.0]) / np.hypot(0.25, 1.0) * distance,
        look_at=centre,
        fov=fov,
        resolution=(640, DEFAULT_HEIGHT),
    )


def load_gltf_scene(path: Path) -> Scene:
    import trimesh

    try:
        tm_scene = trimesh.load(str(path), force="scene")
    except Exception as exc:
        raise SceneError(f"{path}: cannot read glTF file ({type(exc).__name__}: {exc})") from exc
    try:
        return _scene(tm_scene, path)
    except NrenderError:
        raise
    except Exception as exc:  # trimesh evaluates much of the file lazily, on first use
        raise SceneError(f"{path}: malformed glTF file ({type(exc).__name__}: {exc})") from exc


def _scene(tm_scene: Any, path: Path) -> Scene:
    scene = Scene(
        camera=Camera(position=np.zeros(3), look_at=np.array([0.0, 0.0, -1.0])),
        environment=Environment(kind="constant", radiance=constant_map([1.0, 1.0, 1.0])),
        source=path,
    )
    for node in tm_scene.graph.nodes_geometry:
        transform, geometry_name = tm_scene.graph[node]
        geometry = tm_scene.geometry[geometry_name]
        if not hasattr(geometry, "faces") or len(geometry.faces) == 0:
            continue  # points and lines do not render
        if geometry_name not in scene.meshes:
            scene.meshes[geometry_name] = mesh_from_trimesh(
                geometry, smooth=True, source=f"{path}:{geometry_name}"
            )
            scene.materials[geometry_name] = _material(geometry.visual, f"{path}:{geometry_name}")
        m = np.asarray(transform, np.float64)
        if not np.isfinite(m).all() or abs(np.linalg.det(m[:3, :3])) < 1e-12:
            raise SceneError(f"{path}: node {node!r} has a non-finite or singular transform")
        if world_reach(scene.meshes[geometry_name], m) > MAX_COORDINATE:
            raise SceneError(f"{path}: node {node!r} reaches beyond {MAX_COORDINATE:g}")
        scene.instances.append(Instance(mesh=geometry_name, material=geometry_name, transform=m))
    if not scene.instances:
        raise SceneError(f"{path}: glTF file has no triangle meshes")
    scene.camera = _camera(tm_scene, path)
    return scene
