"""The viewer's debug views: albedo, normals and what a neural material reads at each
pixel (learned frames, latent channels, pyramid level, sampler pdf), computed by
shaders/viewer/debug_views.slang at pixel centres and coloured here for display.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..device import Kernel, RenderDevice
from ..layout import INVALID_INDEX
from ..render.renderer import Renderer, camera_value, pixel_spread
from ..scene.types import Camera

KERNEL = ("viewer/debug_views.slang", "debug_view")
# View name -> (kernel view index, channels the view can page through).
VIEWS: dict[str, tuple[int, int]] = {
    "albedo": (0, 1),
    "normal": (1, 1),
    "frames": (2, 2),  # the two learned frames' normals
    "latent": (3, 3),  # channels 0-2, 3-5, 6-7
    "level": (4, 1),
    "pdf": (5, 1),
}
NEURAL_VIEWS = ("frames", "latent", "level", "pdf")
INAPPLICABLE = 0.08  # grey where a view has nothing to show (sky; non-neural surfaces)
# A perceptually ordered ramp (dark blue - teal - green - yellow) for scalar views.
_RAMP = np.array(
    [[0.05, 0.03, 0.25], [0.12, 0.35, 0.55], [0.15, 0.6, 0.5], [0.55, 0.8, 0.25], [0.99, 0.9, 0.15]]
)


def ramp(t: np.ndarray) -> np.ndarray:
    """Colours [..., 3] for values t in [0, 1]."""
    x = np.clip(np.nan_to_num(t), 0.0, 1.0) * (len(_RAMP) - 1)
    i = np.minimum(x.astype(np.int64), len(_RAMP) - 2)
    f = (x - i)[..., None]
    return (_RAMP[i] * (1 - f) + _RAMP[i + 1] * f).astype(np.float32)


@dataclass
class DebugImage:
    """One debug view: display colours in [0, 1] (sRGB-encoded), raw values and where the
    view applies, and the material index under each pixel (INVALID_INDEX: sky)."""

    display: np.ndarray  # [H, W, 3]
    values: np.ndarray  # [H, W, 4] as the kernel wrote them
    applies: np.ndarray  # [H, W] bool
    material: np.ndarray  # [H, W] uint32


class DebugViews:
    """Debug views of one renderer's scene; the kernel compiles on first use."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self._kernel: Kernel | None = None

    @property
    def kernel(self) -> Kernel:
        if self._kernel is None:
            self._kernel = self.renderer.device.kernel(*KERNEL, self.renderer.defines)
        return self._kernel

    def render(
        self, camera: Camera, view: str, channel: int = 0, *, materials: str = "reference"
    ) -> DebugImage:
        if view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
        index, channels = VIEWS[view]
        width, height = camera.resolution
        device = self.renderer.device
        values = device.zeros(width * height, 16)
        ids = device.zeros(width * height, 4)
        s = self.renderer.scene.integrator
        self.kernel.dispatch(
            (width, height, 1),
            g_scene=self.renderer.buffers.bind(
                s.layered_walks, s.layered_depth, materials == "neural"
            ),
            g_view=values,
            g_material=ids,
            params={
                "camera": camera_value(camera),
                "pixel_spread": pixel_spread(camera),
                "view": index,
                "channel": int(channel) % channels,
            },
        )
        raw = RenderDevice.download(values, np.float32, (height, width, 4))
        material = RenderDevice.download(ids, np.uint32, (height, width))
        applies = raw[..., 3] > 0.5
        return DebugImage(colour(view, raw), raw, applies, material)


def colour(view: str, raw: np.ndarray) -> np.ndarray:
    """Display colours of a view's raw values (see shaders/viewer/debug_views.slang)."""
    from ..image_io import linear_to_srgb

    values = raw[..., :3]
    if view == "albedo":
        shown = linear_to_srgb(values)
    elif view in ("normal", "frames"):
        shown = np.clip(values, 0.0, 1.0)  # already 0.5 + n / 2
    elif view == "latent":
        shown = np.clip(0.5 + 0.25 * values, 0.0, 1.0)  # latents are roughly unit scale
    elif view == "level":
        shown = ramp(values[..., 0] / np.maximum(values[..., 1] - 1.0, 1.0))
    else:  # pdf: log scale, 0.1 (dark) to 100 (bright) per steradian
        shown = ramp((np.log10(np.maximum(values[..., 0], 1e-6)) + 1.0) / 3.0)
    out = np.where(raw[..., 3:4] > 0.5, shown, INAPPLICABLE)
    return out.astype(np.float32)


def material_at(image: DebugImage, x: int, y: int) -> int | None:
    """The material index under pixel (x, y), None for the sky or outside the image."""
    height, width = image.material.shape
    if not (0 <= x < width and 0 <= y < height):
        return None
    index = int(image.material[y, x])
    return None if index == INVALID_INDEX else index
