"""A glTF 2.0 file (.gltf/.glb) loaded as a whole scene.

Meshes keep their node transforms; the first perspective camera becomes the camera (or
one is placed to frame the scene); emissiveFactor (times KHR_materials_emissive_strength)
becomes emission, times emissiveTexture (sRGB) where there is one. glTF's
metallic-roughness model maps onto the BSDF library as a material graph: the dielectric
part is the base colour as a diffuse lobe under a clear coat of index 1.5 with the
material's roughness, the metal part a conductor whose reflectivity and edge tint are the
base colour, and the metallic value (factor x texture blue channel) mixes the two.
Roughness is factor x texture green channel, as the specification says. normalTexture
(with its scale) tilts every stack's base and coat, as a material file's `normal_map`
does; both put +Y (green) along +v, so no channel is flipped. OBJ/MTL materials stay
diffuse. glTF has no environment, so a constant white one (radiance 1) lights the scene.

trimesh decodes the file but drops what nrender needs to be strict or complete (a texture
index out of range or an image it cannot find is silently ignored; normalTexture.scale
and extensions are lost), so the loader also reads the file's JSON itself: it checks every
texture a material uses and tags materials by index to find their JSON again.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np

from ..errors import NrenderError, SceneError
from ..image_io import check_image_size, srgb_to_linear
from ..input_files import check_path_text, is_file, parse_json
from .environment import constant_map
from .mesh_io import MAX_COORDINATE, mesh_from_trimesh, world_reach
from .types import MAX_RADIANCE, Camera, Environment, Instance, Material, Scene, Texture

DEFAULT_HEIGHT = 480
# A material's name while trimesh loads the file: the prefix and its index in the JSON.
MATERIAL_TAG = "nrender-gltf-material:"
# Texture slots nrender reads: (the object holding the textureInfo, its key).
TEXTURE_SLOTS = (
    ("pbrMetallicRoughness", "baseColorTexture"),
    ("pbrMetallicRoughness", "metallicRoughnessTexture"),
    (None, "normalTexture"),
    (None, "emissiveTexture"),
)
GLB_MAGIC = b"glTF"
GLB_JSON_CHUNK = 0x4E4F534A


def _pixels(image: Any, where: str) -> np.ndarray:
    """A texture trimesh decoded (a PIL image) as float RGB in [0, 1], size-checked."""
    width, height = getattr(image, "size", (0, 0))
    check_image_size(Path(where), int(width), int(height))
    return np.asarray(image.convert("RGB"), np.float32) / 255.0


def _material(visual: Any, where: str, specs: list[Any]) -> Material:
    """The Material of a primitive's visual; `specs`: the file's JSON materials."""
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
    spec, name = _material_json(material, specs)
    for parent, key in TEXTURE_SLOTS:
        holder = spec.get(parent) if parent else spec
        if isinstance(holder, dict) and key in holder and getattr(material, key, None) is None:
            # _check_textures found the image; trimesh skips one it cannot decode.
            raise SceneError(f"{where}: material {name!r} {key}: cannot decode its image")
    factor = getattr(material, "baseColorFactor", None)
    # An absent factor is the specification's default, white (the texture as it is).
    factor = np.ones(4) if factor is None else np.asarray(factor, np.float64)
    rgb = factor[:3] / 255.0 if factor.dtype.kind in "ui" or factor.max() > 1.0 else factor[:3]
    base = Texture.constant(np.clip(rgb, 0.0, 1.0))
    image = getattr(material, "baseColorTexture", None)
    if image is not None:
        pixels = _pixels(image, where)
        base = Texture(kind="image", image=srgb_to_linear(pixels) * base.value.astype(np.float32))
    emission, emission_texture = _emission(material, spec, where)
    return Material(
        kind="layered",
        graph=metallic_roughness_graph(
            material, base, where, normal_map=_normal_map(material, spec, where), name=name
        ),
        emission=emission,
        emission_texture=emission_texture,
    )


def _material_json(material: Any, specs: list[Any]) -> tuple[dict[str, Any], str]:
    """The JSON object of a trimesh material (tagged by _read_gltf) and its own name."""
    tag = str(getattr(material, "name", "") or "")
    index = tag[len(MATERIAL_TAG) :] if tag.startswith(MATERIAL_TAG) else ""
    if index.isdigit() and int(index) < len(specs) and isinstance(specs[int(index)], dict):
        spec = specs[int(index)]
        return spec, str(spec.get("name") or f"#{index}")
    return {}, tag or "gltf"


def _emission(material: Any, spec: dict[str, Any], where: str) -> tuple[np.ndarray, Any]:
    """Front-face radiance: emissiveFactor x KHR_materials_emissive_strength, and the
    emissiveTexture (linear, from sRGB) that multiplies it, or None."""
    emissive = getattr(material, "emissiveFactor", None)
    emission = np.zeros(3) if emissive is None else np.asarray(emissive, np.float64)[:3]
    if emission.shape != (3,) or not np.isfinite(emission).all():
        raise SceneError(f"{where}: emissiveFactor must be three finite numbers")
    extensions = spec.get("extensions")
    strength_spec = (
        extensions.get("KHR_materials_emissive_strength") if isinstance(extensions, dict) else None
    )
    strength = (
        strength_spec.get("emissiveStrength", 1.0) if isinstance(strength_spec, dict) else 1.0
    )
    if isinstance(strength, bool) or not isinstance(strength, (int, float)):
        strength = float("nan")
    if not (np.isfinite(strength) and strength >= 0.0):
        raise SceneError(
            f"{where}: KHR_materials_emissive_strength.emissiveStrength must be a finite "
            "number >= 0"
        )
    emission = np.clip(emission, 0.0, None) * float(strength)
    image = getattr(material, "emissiveTexture", None)
    texture = None
    peak = np.ones(3)
    if image is not None and emission.any():
        rgb = srgb_to_linear(_pixels(image, where))
        texture = Texture(kind="image", image=rgb)
        peak = np.maximum(rgb.reshape(-1, 3).max(axis=0), 1.0)
    # 8-bit textures are at most 1, so this is the factor's limit unless one is HDR.
    if (emission * peak > MAX_RADIANCE).any():
        raise SceneError(
            f"{where}: emissiveFactor (x emissiveStrength x emissiveTexture) must be at most "
            f"{MAX_RADIANCE:g}"
        )
    return emission, texture


def _normal_map(material: Any, spec: dict[str, Any], where: str) -> Texture | None:
    """The normalTexture as unit tangent-space normals: (2 texel - 1) with x and y times
    `scale`, normalised, as the specification says. Texels that do not encode a normal
    pointing out of the surface read as the unperturbed one."""
    image = getattr(material, "normalTexture", None)
    if image is None:
        return None
    info = spec.get("normalTexture")
    scale = info.get("scale", 1.0) if isinstance(info, dict) else 1.0
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale):
        raise SceneError(f"{where}: normalTexture.scale must be a finite number")
    n = _pixels(image, where).astype(np.float64) * 2.0 - 1.0  # linear data, not sRGB
    n[..., :2] *= float(scale)
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    valid = (length > 1e-6) & (n[..., 2:3] > 0.0)
    normals = np.where(valid, n / np.where(valid, length, 1.0), [0.0, 0.0, 1.0])
    return Texture(kind="image", image=normals.astype(np.float32))


def _factor(value: Any, default: float) -> float:
    if value is None:
        return default
    number = float(np.asarray(value, np.float64).reshape(-1)[0])
    return float(np.clip(number, 0.0, 1.0)) if np.isfinite(number) else default


def metallic_roughness_graph(
    material: Any,
    base: Texture,
    where: str = "glTF",
    normal_map: Texture | None = None,
    name: str | None = None,
) -> Any:
    """The material graph of a glTF metallic-roughness material (see module docstring);
    `normal_map` (unit tangent-space normals) tilts the base and the coat of every stack."""
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
        layers=[Layer(ior=1.5, roughness=roughness, thickness=0.01, normal_map=normal_map)],
        normal_map=normal_map,
    )
    metal = Stack(
        lobes=[Lobe("conductor", color=base, color2=base, roughness=roughness)],
        normal_map=normal_map,
    )
    if metallic.kind == "constant" and metallic.value[0] <= 0.0:
        root: Any = dielectric
    elif metallic.kind == "constant" and metallic.value[0] >= 1.0:
        root = metal
    else:
        root = Mix(mask=metallic, a=dielectric, b=metal)
    if name is None:
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

    header, tagged = _read_gltf(path)
    _check_textures(header, path)
    try:
        tm_scene = trimesh.load(
            io.BytesIO(tagged),
            file_type="glb" if tagged[:4] == GLB_MAGIC else "gltf",
            resolver=trimesh.resolvers.FilePathResolver(str(path)),
            force="scene",
        )
    except Exception as exc:
        raise SceneError(f"{path}: cannot read glTF file ({type(exc).__name__}: {exc})") from exc
    specs = header.get("materials")
    try:
        return _scene(tm_scene, path, specs if isinstance(specs, list) else [])
    except NrenderError:
        raise
    except Exception as exc:  # trimesh evaluates much of the file lazily, on first use
        raise SceneError(f"{path}: malformed glTF file ({type(exc).__name__}: {exc})") from exc


def _read_gltf(path: Path) -> tuple[dict[str, Any], bytes]:
    """The file's JSON, and the file again with every material named MATERIAL_TAG + its
    index (trimesh keeps names, nothing else that identifies a material)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SceneError(f"{path}: cannot read glTF file ({exc.strerror or exc})") from None
    glb = data[:4] == GLB_MAGIC
    if glb:
        if len(data) < 20:
            raise SceneError(f"{path}: malformed GLB file (truncated header)")
        length, kind = struct.unpack_from("<II", data, 12)
        if kind != GLB_JSON_CHUNK or 20 + length > len(data):
            raise SceneError(f"{path}: malformed GLB file (no JSON chunk first)")
        text, rest = data[20 : 20 + length], data[20 + length :]
    else:
        text, rest = data, b""
    header = parse_json(text, str(path), SceneError)
    if not isinstance(header, dict):
        raise SceneError(f"{path}: malformed glTF file (its JSON is not an object)")
    tagged = dict(header)
    if isinstance(header.get("materials"), list):
        tagged["materials"] = [
            {**m, "name": f"{MATERIAL_TAG}{i}"} if isinstance(m, dict) else m
            for i, m in enumerate(header["materials"])
        ]
    blob = json.dumps(tagged).encode("utf-8")
    if not glb:
        return header, blob
    blob += b" " * (-len(blob) % 4)  # chunks are 4-byte aligned, JSON padded with spaces
    chunk = struct.pack("<II", len(blob), GLB_JSON_CHUNK) + blob
    total = 12 + len(chunk) + len(rest)
    return header, data[:8] + struct.pack("<I", total) + chunk + rest


def _is_index(value: Any, count: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < count


def _check_textures(header: dict[str, Any], path: Path) -> None:
    """Every texture a material uses names an existing texture whose image is inside the
    file or a file next to it (trimesh would silently leave the texture out)."""
    materials = header.get("materials")
    textures = header.get("textures")
    images = header.get("images")
    textures = textures if isinstance(textures, list) else []
    images = images if isinstance(images, list) else []
    for i, material in enumerate(materials if isinstance(materials, list) else []):
        if not isinstance(material, dict):
            continue
        name = str(material.get("name") or f"#{i}")
        for parent, key in TEXTURE_SLOTS:
            holder = material.get(parent) if parent else material
            if not isinstance(holder, dict) or key not in holder:
                continue
            where = f"{path}: material {name!r} {key}"
            info = holder[key]
            index = info.get("index") if isinstance(info, dict) else None
            if not _is_index(index, len(textures)):
                raise SceneError(
                    f"{where}: texture index {index!r} is out of range (the file has "
                    f"{len(textures)} textures)"
                )
            texture = textures[index]
            source = texture.get("source") if isinstance(texture, dict) else None
            if not _is_index(source, len(images)):
                raise SceneError(
                    f"{where}: texture {index} has no image nrender can read (source "
                    f"{source!r}; the file has {len(images)} images)"
                )
            image = images[source]
            uri = image.get("uri") if isinstance(image, dict) else None
            if isinstance(uri, str) and not uri.startswith("data:"):
                file = path.parent / unquote(uri)
                if check_path_text(uri) or not is_file(file):
                    raise SceneError(f"{where}: image file {file} not found")


def _scene(tm_scene: Any, path: Path, specs: list[Any]) -> Scene:
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
            scene.materials[geometry_name] = _material(
                geometry.visual, f"{path}:{geometry_name}", specs
            )
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
