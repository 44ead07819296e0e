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

from .errors import DeviceError, ImageError, MaterialError, NrenderError, SceneError
from .render import Renderer, RenderJob, RenderResult, render
from .scene import Scene, load_scene, scene_from_dict
from .version import __version__

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
