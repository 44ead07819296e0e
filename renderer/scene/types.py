"""The in-memory scene: what a scene file or dict becomes once validated.

Arrays carry their shapes in comments. Everything is host data (numpy); the render module
turns it into device buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..materials.texture import Texture

STRATEGIES = ("mis", "nee", "bsdf")
MATERIAL_MODES = ("reference", "neural")
# Radiance of emitters, and of environments times their scale (the sun's luminance is
# about 1.6e9 cd/m^2, so physical units fit): the film's float32 sums of squared samples
# still hold 2^20 samples of 1e12 (1e30, against a float32 maximum of 3e38).
MAX_RADIANCE = 1e12
SCHEDULES = ("megakernel", "wavefront")  # how the path tracer is dispatched (render/renderer.py)


@dataclass
class Camera:
    """Pinhole camera looking from `position` at `look_at`; `fov` is vertical, in degrees."""

    position: np.ndarray  # [3]
    look_at: np.ndarray  # [3]
    up: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0, 0.0]))  # [3]
    fov: float = 40.0
    resolution: tuple[int, int] = (640, 480)  # (width, height)

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Orthonormal (forward, right, up) of the camera."""
        forward = np.asarray(self.look_at, np.float64) - np.asarray(self.position, np.float64)
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, np.asarray(self.up, np.float64))
        right /= np.linalg.norm(right)
        return forward, right, np.cross(right, forward)


@dataclass
class Integrator:
    """Path tracer settings; see scenes/README.md for their meaning."""

    spp: int = 64
    max_depth: int = 8
    seed: int = 0
    rr_depth: int = 3
    strategy: str = "mis"
    layered_walks: int = 1  # random walks per evaluation of a layered material
    layered_depth: int = 256  # vertices per walk at most: Russian roulette ends walks
    materials: str = "reference"  # reference: layered graphs; neural: their bakes
    transparent_background: bool = False  # camera rays that escape add nothing (RGBA)


@dataclass
class Material:
    """A surface material: "diffuse" (an albedo texture), "layered" (a material graph,
    renderer.materials.MaterialGraph, optionally with its bake) or "neural" (a baked
    renderer.neural.NeuralMaterial alone), plus front-face emission: `emission` times
    `emission_texture` (linear RGB, >= 0) at the hit's uv where there is one."""

    kind: str = "diffuse"
    albedo: Texture = field(default_factory=lambda: Texture.constant([0.5, 0.5, 0.5]))
    emission: np.ndarray = field(default_factory=lambda: np.zeros(3))  # [3] radiance
    emission_texture: Texture | None = None
    graph: Any = None  # MaterialGraph when kind == "layered"
    neural: Any = None  # NeuralMaterial: kind "neural", or a layered material's bake
    neural_path: str | None = None  # the .nmat file, for messages

    @property
    def is_emissive(self) -> bool:
        texture = self.emission_texture
        if texture is None:
            peak: Any = 1.0
        elif texture.kind == "image":
            image = np.asarray(texture.image, np.float64)
            peak = image.reshape(-1, 3).max(axis=0) if image.ndim == 3 else image.max()
        else:
            peak = np.maximum(texture.value, texture.value2 if texture.kind == "checker" else 0)
        return bool(np.any(self.emission * peak > 0))

    def material_graph(self) -> Any:
        """The graph the device evaluates (None for a neural material, which has none); a
        diffuse material is a one-lobe graph."""
        if self.kind == "layered":
            return self.graph
        if self.kind == "neural":
            return None
        from ..materials.graph import MaterialGraph

        return MaterialGraph.diffuse(self.albedo)


@dataclass
class Mesh:
    """Indexed triangle mesh in object space."""

    positions: np.ndarray  # [V, 3] float
    faces: np.ndarray  # [F, 3] int
    normals: np.ndarray | None = None  # [V, 3] per-vertex normals, None = flat shading
    uvs: np.ndarray | None = None  # [V, 2]
    source: str = ""  # where it came from, for messages

    @property
    def triangle_count(self) -> int:
        return int(self.faces.shape[0])


@dataclass
class Sphere:
    """An analytic sphere of `radius` about the object's origin: exact silhouettes and
    normals, traced by a ray/sphere test (shaders/scene/geometry.slang). Its uv and tangent
    match the tessellated sphere's (scene/shapes.py). Instances may rotate, mirror, move
    and scale it uniformly, not stretch it."""

    radius: float = 1.0
    flip_normals: bool = False  # normals (and the front face) point inwards
    source: str = "sphere"

    @property
    def triangle_count(self) -> int:
        return 0


Shape = Mesh | Sphere  # what a scene's `meshes` entry is


@dataclass
class Instance:
    """A mesh placed in the world with a material."""

    mesh: str
    material: str
    transform: np.ndarray = field(default_factory=lambda: np.eye(4))  # [4, 4] object -> world


@dataclass
class Volume:
    """A NeRF volume (renderer.fields.NerfFile) placed in the scene: its field's own space
    goes to the world by `transform` times the file's `scene_from_field`."""

    nerf: Any  # NerfFile
    transform: np.ndarray = field(default_factory=lambda: np.eye(4))  # [4, 4]
    path: str = ""  # the .nfield file, for messages

    @property
    def world_from_field(self) -> np.ndarray:
        """[4, 4] field space -> world."""
        return np.asarray(self.transform, np.float64) @ np.asarray(
            self.nerf.scene_from_field, np.float64
        )


@dataclass
class Environment:
    """Light from infinitely far away, as an equirectangular map (see environment.slang)."""

    kind: str = "constant"  # constant | map | sky
    radiance: np.ndarray = field(
        default_factory=lambda: np.ones((1, 1, 3), np.float32)
    )  # [H, W, 3]
    scale: float = 1.0
    rotation: float = 0.0  # degrees about +Y
    path: str | None = None

    @property
    def is_black(self) -> bool:
        return self.scale == 0.0 or not np.any(self.radiance > 0)


@dataclass
class Scene:
    """A validated scene; build one with `load_scene` or field by field."""

    camera: Camera
    integrator: Integrator = field(default_factory=Integrator)
    environment: Environment = field(default_factory=Environment)
    materials: dict[str, Material] = field(default_factory=dict)
    meshes: dict[str, Shape] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)  # NeRF volumes, rendered inline
    source: Path | None = None  # file it was loaded from, if any

    @property
    def triangle_count(self) -> int:
        return sum(self.meshes[i.mesh].triangle_count for i in self.instances)
