"""Scene format v1: a JSON file and a Python dict are the same thing, read by one path.

Every key, its type and its default are documented in scenes/README.md. Unknown keys,
keys that do not apply to the chosen type, and named materials or meshes that nothing
uses are errors naming the file and the key.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageError, NeuralMaterialError, SceneError, StaleBakeWarning
from ..image_io import read_image
from ..input_files import check_path_text, is_dir, is_file, read_json, resolve_path
from . import environment as env_maps
from . import shapes
from .mesh_io import MAX_COORDINATE, MESH_SUFFIXES, load_mesh_file, world_reach
from .reader import Section
from .transform import compose
from .types import (
    MATERIAL_MODES,
    MAX_RADIANCE,
    STRATEGIES,
    Camera,
    Environment,
    Instance,
    Integrator,
    Material,
    Scene,
    Shape,
    Sphere,
    Texture,
    Volume,
)

SCENE_VERSION = 1
MAX_RESOLUTION = 16384
MAX_PIXELS = 1 << 26  # 64 Mpixel: the accumulators alone then take 8 GiB
MAX_SPP = 1 << 20
MAX_DEPTH = 1024
MAX_SEGMENTS = 4096
MAX_VOLUMES = 64  # NeRF volumes per scene: each ray finds its boxes' order in O(n^2)


def load_scene(
    source: str | os.PathLike[str] | dict[str, Any],
    *,
    base_dir: str | os.PathLike[str] | None = None,
) -> Scene:
    """Load a scene from a JSON file, a glTF/GLB file, or a dict in the same format. A
    material graph file loads as its preview scene.

    Relative paths inside a dict resolve against `base_dir` (default: the working folder).
    """
    if isinstance(source, dict):
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        return scene_from_dict(source, name="<scene dict>", base_dir=base)
    path = Path(source)
    if problem := check_path_text(str(path)):
        raise SceneError(f"{path}: {problem}")
    if is_dir(path):
        path = path / "scene.json"
    if not is_file(path):
        raise SceneError(f"{path}: scene file not found")
    if path.suffix.lower() in (".gltf", ".glb"):
        from .gltf import load_gltf_scene

        return load_gltf_scene(path)
    if path.suffix.lower() in MESH_SUFFIXES:
        raise SceneError(
            f"{path}: a mesh file is not a scene; name it in a scene's meshes "
            '({"type": "file", "path": ...}), or render a glTF file (.gltf/.glb) directly'
        )
    data = read_json(path, SceneError, "scene file")
    from ..materials.loader import is_material_document

    if is_material_document(data):
        # A material file renders as its preview: a sphere under the default sky.
        return preview_scene(path)
    scene = scene_from_dict(
        data, name=str(path), base_dir=Path(base_dir) if base_dir else path.parent
    )
    scene.source = path
    return scene


def preview_scene(material_path: Path) -> Scene:
    """The preview scene of a material file; errors in the file name that file alone."""
    from ..materials import load_material
    from ..materials.preview import preview_scene_dict

    graph = load_material(material_path)
    scene = scene_from_dict(
        preview_scene_dict(), name=f"preview of {material_path}", base_dir=Path.cwd()
    )
    scene.materials["subject"] = Material(kind="layered", graph=graph)
    scene.source = Path(material_path)
    return scene


def shape_reach(shape: Shape, transform: np.ndarray) -> float:
    """The largest world coordinate (absolute) of a shape's bounding box under `transform`."""
    if isinstance(shape, Sphere):
        with np.errstate(over="ignore", invalid="ignore"):
            radius = shape.radius * np.abs(np.linalg.det(transform[:3, :3])) ** (1 / 3)
            return float(np.abs(transform[:3, 3]).max() + radius)
    return world_reach(shape, transform)


def is_similarity(transform: np.ndarray) -> bool:
    """Whether an affine transform is a rotation (or mirror) times a uniform scale, which
    keeps a sphere a sphere."""
    m = transform[:3, :3]
    gram = m.T @ m
    scale2 = np.trace(gram) / 3.0
    return bool(np.abs(gram - scale2 * np.eye(3)).max() <= 1e-6 * scale2)


def scene_from_dict(data: Any, *, name: str, base_dir: Path) -> Scene:
    root = Section(data, "", name)
    version = root.raw("version")
    if version != SCENE_VERSION:
        root.fail(
            f"unsupported scene version {version!r}; this nrender reads version {SCENE_VERSION}",
            "version",
        )
    reader = _SceneReader(name, base_dir)
    camera = reader.camera(root.section("camera"))
    integrator = reader.integrator(root.section("integrator", {}))
    environment = reader.environment(
        root.section("environment", {"type": "constant", "radiance": 0})
    )
    materials = {
        key: reader.material(Section(value, f"materials.{key}", name))
        for key, value in root.mapping("materials", {}).items()
    }
    meshes = {
        key: reader.mesh(Section(value, f"meshes.{key}", name))
        for key, value in root.mapping("meshes", {}).items()
    }
    instances = [
        reader.instance(Section(value, f"instances[{i}]", name), materials, meshes)
        for i, value in enumerate(root.sequence("instances", []))
    ]
    volume_list = root.sequence("volumes", [])
    if len(volume_list) > MAX_VOLUMES:
        root.fail(
            f"{len(volume_list)} volumes, more than the {MAX_VOLUMES} a scene may have", "volumes"
        )
    volumes = [
        reader.volume(Section(value, f"volumes[{i}]", name)) for i, value in enumerate(volume_list)
    ]
    for i, instance in enumerate(instances):
        reach = shape_reach(meshes[instance.mesh], instance.transform)
        if not reach <= MAX_COORDINATE:
            raise SceneError(
                f"{name}: instances[{i}]: mesh {instance.mesh!r} placed by its transform "
                f"reaches {reach:.3g} from the origin, beyond {MAX_COORDINATE:g}"
            )
    for kind, names, used in (
        ("materials", materials, {i.material for i in instances}),
        ("meshes", meshes, {i.mesh for i in instances}),
    ):
        for key in names:
            if key not in used:
                raise SceneError(f"{name}: {kind}.{key}: defined but no instance uses it")
    root.finish()
    return Scene(
        camera=camera,
        integrator=integrator,
        environment=environment,
        materials=materials,
        meshes=meshes,
        instances=instances,
        volumes=volumes,
    )


class _SceneReader:
    """Readers for each part of a scene; paths resolve against `base_dir`."""

    def __init__(self, name: str, base_dir: Path) -> None:
        self.name = name
        self.base_dir = base_dir
        self.neural_cache: dict[Path, Any] = {}
        self.nerf_cache: dict[Path, Any] = {}

    def resolve(self, s: Section, key: str) -> Path:
        rel = s.string(key)
        if problem := check_path_text(rel):
            s.fail(problem, key)
        return resolve_path(rel, self.base_dir)

    # --- camera and settings ----------------------------------------------------------
    def camera(self, s: Section) -> Camera:
        s.string("type", "perspective", choices=("perspective",))
        position = s.vector("position", 3)
        look_at = s.vector("look_at", 3)
        up = s.vector("up", 3, [0.0, 1.0, 0.0])
        fov = s.number("fov", 40.0, low=0.0, high=180.0, low_open=True, high_open=True)
        res = s.raw("resolution", [640, 480])
        if not isinstance(res, list) or len(res) != 2:
            s.fail("expected [width, height]", "resolution")
        for v in res:
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_RESOLUTION:
                s.fail(
                    f"width and height must be integers in [1, {MAX_RESOLUTION}], got {res}",
                    "resolution",
                )
        if res[0] * res[1] > MAX_PIXELS:
            s.fail(f"{res[0]}x{res[1]} is more than {MAX_PIXELS >> 20} Mpixel", "resolution")
        for key, point in (("position", position), ("look_at", look_at)):
            if np.abs(point).max() > MAX_COORDINATE:
                s.fail(f"coordinates must be within +-{MAX_COORDINATE:g}", key)
        forward = look_at - position
        if np.linalg.norm(forward) == 0:
            s.fail("position and look_at are the same point", "look_at")
        if np.linalg.norm(np.cross(forward, up)) <= 1e-9 * np.linalg.norm(forward) * max(
            np.linalg.norm(up), 1e-30
        ):
            s.fail("up is zero or parallel to the viewing direction", "up")
        s.finish()
        return Camera(
            position=position,
            look_at=look_at,
            up=up,
            fov=fov,
            resolution=(int(res[0]), int(res[1])),
        )

    def integrator(self, s: Section) -> Integrator:
        d = Integrator()
        result = Integrator(
            spp=s.integer("spp", d.spp, low=1, high=MAX_SPP),
            max_depth=s.integer("max_depth", d.max_depth, low=0, high=MAX_DEPTH),
            seed=s.integer("seed", d.seed, low=0, high=2**32 - 1),
            rr_depth=s.integer("rr_depth", d.rr_depth, low=1, high=MAX_DEPTH),
            strategy=s.string("strategy", d.strategy, choices=STRATEGIES),
            layered_walks=s.integer("layered_walks", d.layered_walks, low=1, high=1024),
            layered_depth=s.integer("layered_depth", d.layered_depth, low=1, high=1024),
            materials=s.string("materials", d.materials, choices=MATERIAL_MODES),
            transparent_background=s.boolean("transparent_background", d.transparent_background),
        )
        s.finish()
        return result

    def environment(self, s: Section) -> Environment:
        kind = s.string("type", choices=("constant", "map", "sky"))
        scale = s.number("scale", 1.0, low=0.0, high=MAX_RADIANCE)
        env = Environment(kind=kind, scale=scale)
        if kind == "constant":
            env.radiance = env_maps.constant_map(s.color("radiance", 1.0, high=MAX_RADIANCE))
        elif kind == "map":
            path = self.resolve(s, "path")
            env.path = str(path)
            env.rotation = s.number("rotation", 0.0)
            try:
                env.radiance = read_image(path)
            except ImageError as exc:
                s.fail(str(exc), "path")
            if (env.radiance < 0).any() or (env.radiance > MAX_RADIANCE).any():
                s.fail(f"{path}: environment map radiance must be in [0, {MAX_RADIANCE:g}]", "path")
        else:
            env.rotation = s.number("rotation", 0.0)
            res = s.raw("resolution", [512, 256])
            if (
                not isinstance(res, list)
                or len(res) != 2
                or not all(isinstance(v, int) and 4 <= v <= 8192 for v in res)
            ):
                s.fail(
                    f"expected [width, height] with integers in [4, 8192], got {res!r}",
                    "resolution",
                )
            sun = s.vector("sun_direction", 3, [0.5, 0.6, 0.3])
            if np.linalg.norm(sun) == 0:
                s.fail("sun_direction must not be zero", "sun_direction")
            env.radiance = env_maps.sky_map(
                zenith=s.color("zenith", high=MAX_RADIANCE, default=[0.15, 0.3, 0.65]),
                horizon=s.color("horizon", high=MAX_RADIANCE, default=[0.75, 0.85, 1.0]),
                ground=s.color("ground", high=MAX_RADIANCE, default=[0.3, 0.28, 0.25]),
                sun_direction=sun,
                sun_radiance=s.color("sun_radiance", [2600.0, 2400.0, 2100.0], high=MAX_RADIANCE),
                sun_angle=s.number("sun_angle", 2.0, low=0.05, high=45.0),
                resolution=(res[0], res[1]),
            )
        if float(env.radiance.max(initial=0.0)) * scale > MAX_RADIANCE:
            s.fail(f"radiance times scale must stay <= {MAX_RADIANCE:g}", "scale")
        s.finish()
        return env

    # --- materials --------------------------------------------------------------------
    def texture(self, s: Section, key: str, default: Any) -> Texture:
        value = s.raw(key, default)
        if isinstance(value, (list, int, float)) and not isinstance(value, bool):
            rgb = s.check_color(value, key)
            return Texture.constant(rgb)
        t = Section(value, s.key_path(key), self.name)
        kind = t.string("type", choices=("constant", "image", "checker"))
        uv_scale = np.ones(2)
        if kind == "constant":
            tex = Texture.constant(t.color("value"))
        elif kind == "checker":
            even, odd = t.color_pair("colors")
            tex = Texture(kind="checker", value=even, value2=odd)
            uv_scale = t.uv_scale("scale", 8.0)
        else:
            path = self.resolve(t, "path")
            srgb = t.raw("srgb", None)
            if srgb is not None and not isinstance(srgb, bool):
                t.fail("expected true, false or null", "srgb")
            try:
                image = read_image(path, srgb=srgb)
            except ImageError as exc:
                t.fail(str(exc), "path")
            tex = Texture(kind="image", image=image, path=str(path))
            uv_scale = t.uv_scale("scale", 1.0)
        tex.uv_scale = uv_scale
        t.finish()
        return tex

    def material(self, s: Section) -> Material:
        kind = s.string("type", choices=("diffuse", "layered", "neural"))
        if kind == "neural":
            material = Material(kind="neural")
            material.neural, material.neural_path = self.neural_material(s, "path")
            material.emission = s.color("emission", [0.0, 0.0, 0.0], high=MAX_RADIANCE)
            s.finish()
            return material
        if kind == "layered":
            material = Material(kind="layered", graph=self.material_graph(s))
            if s.has("neural"):
                material.neural, material.neural_path = self.neural_material(s, "neural")
                self.warn_if_stale(s, material)
            material.emission = s.color("emission", [0.0, 0.0, 0.0], high=MAX_RADIANCE)
            s.finish()
            return material
        material = Material(
            kind=kind,
            albedo=self.texture(s, "albedo", [0.5, 0.5, 0.5]),
            emission=s.color("emission", [0.0, 0.0, 0.0], high=MAX_RADIANCE),
        )
        albedo = material.albedo
        # Image texels are clamped in the shader; explicit colours are checked here.
        colours = {"constant": [albedo.value], "checker": [albedo.value, albedo.value2]}
        for colour in colours.get(albedo.kind, []):
            if (colour > 1).any():
                s.fail(f"albedo components must be <= 1, got {colour.tolist()}", "albedo")
        s.finish()
        return material

    def material_graph(self, s: Section) -> Any:
        """A layered material: a graph file (`path`) or an inline graph (`graph`)."""
        from ..materials import load_material

        if s.has("path") == s.has("graph"):
            s.fail("a layered material needs exactly one of 'path' and 'graph'")
        try:
            if s.has("path"):
                return load_material(self.resolve(s, "path"))
            return load_material(s.mapping("graph"), base_dir=self.base_dir)
        except SceneError as exc:
            key = "path" if s.has("path") else "graph"
            s.fail(str(exc), key)

    def neural_material(self, s: Section, key: str) -> tuple[Any, str]:
        """A baked neural material (`.nmat`) named by `key`, checked whole (file,
        tensors, values, and that the renderer can run its architecture) before any
        rendering; loaded once per file per scene."""
        from ..neural.runtime import load_for_rendering

        path = self.resolve(s, key)
        cached = self.neural_cache.get(path.resolve())
        if cached is not None:
            return cached, str(path)
        try:
            material = load_for_rendering(path)
        except NeuralMaterialError as exc:
            s.fail(str(exc), key)
        self.neural_cache[path.resolve()] = material
        return material, str(path)

    def warn_if_stale(self, s: Section, material: Material) -> None:
        """Warn when a layered material has changed since its bake was made."""
        from ..neural.parameters import material_hash

        baked = material.neural.metadata.get("source_hash")
        if baked is not None and baked != material_hash(material.graph):
            source = s.data.get("path", "its inline graph")
            warnings.warn(
                f"{self.name}: {s.key_path('neural')}: {material.neural_path} was baked from "
                f"an earlier version of {source}; bake it again (nrender bake)",
                StaleBakeWarning,
                stacklevel=2,
            )

    # --- geometry ---------------------------------------------------------------------
    def mesh(self, s: Section) -> Shape:
        kind = s.string("type", choices=("file", "sphere", "plane", "box", "cylinder", "torus"))
        segments = {"low": 3, "high": MAX_SEGMENTS}
        if kind == "sphere" and self.analytic_sphere(s):
            sphere = Sphere(
                radius=s.number("radius", 1.0, low=0.0, low_open=True, high=MAX_COORDINATE),
                flip_normals=s.boolean("flip_normals", False),
            )
            s.finish()
            return sphere
        if kind == "file":
            path = self.resolve(s, "path")
            mesh = load_mesh_file(
                path, smooth=s.boolean("smooth", True), where=f"{self.name}: {s.key_path('path')}"
            )
        elif kind == "sphere":
            mesh = shapes.sphere(
                radius=s.number("radius", 1.0, low=0.0, low_open=True, high=MAX_COORDINATE),
                segments=s.integer("segments", 64, **segments),
                rings=s.integer("rings", 32, low=2, high=MAX_SEGMENTS),
                smooth=s.boolean("smooth", True),
            )
        elif kind == "plane":
            size = s.vector("size", 2, [1.0, 1.0])
            if (size <= 0).any() or (size > MAX_COORDINATE).any():
                s.fail(
                    f"plane size must be in (0, {MAX_COORDINATE:g}], got {size.tolist()}", "size"
                )
            mesh = shapes.plane((float(size[0]), float(size[1])))
        elif kind == "box":
            size = s.vector("size", 3, [1.0, 1.0, 1.0])
            if (size <= 0).any() or (size > MAX_COORDINATE).any():
                s.fail(f"box size must be in (0, {MAX_COORDINATE:g}], got {size.tolist()}", "size")
            mesh = shapes.box(tuple(float(v) for v in size))
        elif kind == "cylinder":
            mesh = shapes.cylinder(
                radius=s.number("radius", 1.0, low=0.0, low_open=True, high=MAX_COORDINATE),
                height=s.number("height", 2.0, low=0.0, low_open=True, high=MAX_COORDINATE),
                segments=s.integer("segments", 64, **segments),
                caps=s.boolean("caps", True),
                smooth=s.boolean("smooth", True),
            )
        else:
            major = s.number("major_radius", 1.0, low=0.0, low_open=True, high=MAX_COORDINATE)
            mesh = shapes.torus(
                major_radius=major,
                minor_radius=s.number("minor_radius", 0.25, low=0.0, high=major, low_open=True),
                segments=s.integer("segments", 64, **segments),
                rings=s.integer("rings", 32, low=3, high=MAX_SEGMENTS),
                smooth=s.boolean("smooth", True),
            )
        if s.boolean("flip_normals", False):
            # Turns a closed shape inside out: front faces (and emission) point inwards.
            mesh.faces = mesh.faces[:, ::-1].copy()
            if mesh.normals is not None:
                mesh.normals = -mesh.normals
        s.finish()
        return mesh

    @staticmethod
    def analytic_sphere(s: Section) -> bool:
        """A sphere is analytic unless it asks for tessellation (`"analytic": false`, or
        any of `segments`, `rings`, `smooth`, which only a mesh has)."""
        mesh_keys = [key for key in ("segments", "rings", "smooth") if s.has(key)]
        analytic = s.boolean("analytic", not mesh_keys)
        if analytic and mesh_keys:
            s.fail(
                f"an analytic sphere has no {mesh_keys[0]!r}: drop it, or set "
                '"analytic": false for a tessellated sphere',
                mesh_keys[0],
            )
        return analytic

    def transform(self, s: Section | None) -> np.ndarray:
        if s is None:
            return np.eye(4)
        if s.has("matrix"):
            rows = s.sequence("matrix")
            if len(rows) != 4:
                s.fail("expected 4 rows of 4 numbers", "matrix")
            m = np.stack([s.check_vector(row, "matrix", 4) for row in rows])
            if not np.allclose(m[3], [0, 0, 0, 1]):
                s.fail("the last row of an affine matrix must be [0, 0, 0, 1]", "matrix")
        else:
            scale = s.raw("scale", 1.0)
            if isinstance(scale, (int, float)) and not isinstance(scale, bool):
                scale = np.full(3, s.check_number(scale, "scale"))
            else:
                scale = s.check_vector(scale, "scale", 3)
            m = compose(
                s.vector("translate", 3, [0.0, 0.0, 0.0]),
                s.vector("rotate", 3, [0.0, 0.0, 0.0]),
                scale,
            )
        s.finish()
        det = np.linalg.det(m[:3, :3])
        if not np.isfinite(m).all():
            s.fail("transform has non-finite entries")
        if abs(det) < 1e-12:
            s.fail("transform is singular (a zero scale?)")
        return m

    def volume(self, s: Section) -> Volume:
        """A NeRF volume: its `.nfield` file (checked whole before any rendering, loaded once
        per file per scene) and where it sits."""
        from ..fields.nerf_buffers import PlacedField, world_box
        from ..fields.nfield import NerfFieldError, NerfFile

        path = self.resolve(s, "nerf")
        nerf = self.nerf_cache.get(path.resolve())
        if nerf is None:
            try:
                nerf = NerfFile.load(path)
            except NerfFieldError as exc:
                s.fail(str(exc), "nerf")
            self.nerf_cache[path.resolve()] = nerf
        transform = self.transform(s.section("transform", None))
        s.finish()
        volume = Volume(nerf=nerf, transform=transform, path=str(path))
        world = volume.world_from_field
        with np.errstate(all="ignore"):
            lo, hi = world_box(PlacedField(nerf, world))
            reach = float(np.abs(np.concatenate([lo, hi])).max())
            singular = abs(np.linalg.det(world[:3, :3])) < 1e-12 or not np.isfinite(world).all()
        if singular:
            s.fail(
                "the transform times the file's scene_from_field is singular or not finite",
                "transform",
            )
        if not reach <= MAX_COORDINATE:
            s.fail(
                f"the field's box placed by its transform reaches {reach:.3g} from the origin, "
                f"beyond {MAX_COORDINATE:g}",
                "transform",
            )
        return volume

    def instance(
        self, s: Section, materials: dict[str, Material], meshes: dict[str, Shape]
    ) -> Instance:
        mesh = s.string("mesh")
        if mesh not in meshes:
            s.fail(
                f"no mesh named {mesh!r} (defined: {', '.join(sorted(meshes)) or 'none'})", "mesh"
            )
        material = s.string("material")
        if material not in materials:
            defined = ", ".join(sorted(materials)) or "none"
            s.fail(f"no material named {material!r} (defined: {defined})", "material")
        transform = self.transform(s.section("transform", None))
        if isinstance(meshes[mesh], Sphere) and not is_similarity(transform):
            s.fail(
                f"mesh {mesh!r} is an analytic sphere, which this transform would stretch "
                'into an ellipsoid: scale it evenly, or give the sphere "analytic": false',
                "transform",
            )
        s.finish()
        return Instance(mesh=mesh, material=material, transform=transform)
