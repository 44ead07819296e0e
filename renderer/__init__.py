"""nrender: a real-time neural rendering engine (Slang path tracer, Python host).

Scripting mirrors the CLI:

    import renderer as nr
    scene = nr.load_scene("scenes/default")          # or a dict in the same format
    scene.camera.resolution = (320, 240)
    result = nr.Renderer(scene, device="cpu").render(spp=16, seed=0)
    result.radiance                                  # [H, W, 3] float32, linear
    result.write_outputs("out/default")              # out/default.exr + out/default.png

Layered materials and their batched evaluation live in `renderer.materials`.
"""

import importlib
import sys
import types
from typing import Any

from .errors import DeviceError, ImageError, MaterialError, NrenderError, SceneError
from .scene import Scene, load_scene, scene_from_dict
from .version import __version__

# The renderer needs slangpy (and with it torch): loaded on first use, so that the
# command line answers --help or a bad flag without waiting seconds for them.
_RENDER_NAMES = ("Renderer", "RenderJob", "RenderResult")


def __getattr__(name: str) -> Any:
    if name in _RENDER_NAMES:
        return getattr(importlib.import_module(".render", __name__), name)
    raise AttributeError(f"module 'renderer' has no attribute {name!r}")


class _Package(types.ModuleType):
    """`renderer.render` names both the subpackage and the one-call render function; as
    an attribute of the package it is always the function (the import system's own
    record of the subpackage, made when it first loads, is set aside: the subpackage
    stays importable by name, `from renderer.render import ...`)."""

    @property
    def render(self) -> Any:
        return importlib.import_module(".render.renderer", __name__).render

    @render.setter
    def render(self, value: Any) -> None:
        pass


sys.modules[__name__].__class__ = _Package

__all__ = [
    "DeviceError",
    "ImageError",
    "MaterialError",
    "NrenderError",
    "RenderJob",
    "RenderResult",
    "Renderer",
    "Scene",
    "SceneError",
    "__version__",
    "load_scene",
    "render",
    "scene_from_dict",
]
