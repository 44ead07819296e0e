"""Scenes: the v1 file format, its loader, and the in-memory scene it produces."""

from .loader import SCENE_VERSION, load_scene, scene_from_dict
from .types import (
    Camera,
    Environment,
    Instance,
    Integrator,
    Material,
    Mesh,
    Scene,
    Sphere,
    Texture,
    Volume,
)

__all__ = [
    "SCENE_VERSION",
    "Camera",
    "Environment",
    "Instance",
    "Integrator",
    "Material",
    "Mesh",
    "Scene",
    "Sphere",
    "Texture",
    "Volume",
    "load_scene",
    "scene_from_dict",
]
