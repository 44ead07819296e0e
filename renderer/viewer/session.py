"""What the viewer shows, without a window: a progressive render of an orbit camera that
restarts on every change, at reduced resolution while the camera moves; reference or
neural materials, or both side by side; debug views; screenshots. The window
(window.py) turns input into calls here and shows `display()`; tests drive it directly.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..device import RenderDevice
from ..image_io import check_writable, linear_to_srgb, output_stem, write_exr, write_ldr
from ..render.film import RenderResult
from ..render.renderer import Renderer, RenderJob
from ..scene.loader import MAX_SPP
from ..scene.types import Scene
from . import DISPLAY_VIEWS
from .camera_control import OrbitCamera
from .debug_views import DebugImage, DebugViews, material_at

TONEMAPPERS = ("clamp", "filmic")
# While the camera moves, frames render at this fraction of the resolution (each side:
# a quarter of the pixels), and full resolution resumes once nothing has changed for
# IDLE_SECONDS.
MOVING_SCALE = 0.5
IDLE_SECONDS = 0.25


def filmic(x: np.ndarray) -> np.ndarray:
    """Narkowicz's fit of the ACES filmic curve: highlights roll off instead of clipping."""
    return np.clip((x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14), 0.0, 1.0)


@dataclass
class FrameStats:
    spp: int
    resolution: tuple[int, int]
    frame_seconds: float  # the last step's wall time
    first_image_seconds: float | None  # from the session's start to its first image


class ViewerSession:
    """A scene on a device, seen through an orbit camera."""

    def __init__(
        self,
        scene: Scene,
        device: str | RenderDevice = "auto",
        *,
        size: tuple[int, int] | None = None,
        render_scale: float = 1.0,
    ) -> None:
        self.started = time.perf_counter()
        self.renderer = Renderer(scene, device)
        self.scene = scene
        self.orbit = OrbitCamera.from_camera(scene.camera)
        self.size = size or tuple(scene.camera.resolution)
        self.render_scale = render_scale
        self.has_neural = any(m.neural is not None for m in scene.materials.values())
        self.materials = scene.integrator.materials
        self.split = False
        self.split_at = 0.5
        self.view = "beauty"
        self.channel = 0
        self.exposure = 0.0
        self.tonemapper = "clamp"
        self.debug_views = DebugViews(self.renderer)
        self.jobs: dict[str, RenderJob] = {}
        self.debug: DebugImage | None = None
        self.picking: DebugImage | None = None  # material ids for the HUD, per camera
        self.last_change = -math.inf
        self.moving = False
        self.frame_seconds = 0.0
        self.first_image_seconds: float | None = None
        self.restart()

    # --- state changes ------------------------------------------------------------------
    def resolution(self) -> tuple[int, int]:
        """The render resolution now: the window's size times the render scale, and
        smaller while the camera moves."""
        scale = self.render_scale * (MOVING_SCALE if self.moving else 1.0)
        return max(1, round(self.size[0] * scale)), max(1, round(self.size[1] * scale))

    def restart(self) -> None:
        """Start the accumulation again (after any change of camera, size or mode)."""
        camera = self.orbit.to_camera(self.resolution())
        settings = replace(self.scene.integrator, spp=MAX_SPP)
        modes = ("reference", "neural") if self.split else (self.materials,)
        self.jobs = {}
        for mode in modes:
            job = self.renderer.start(
                spp=settings.spp, materials=mode, camera=camera, seed=settings.seed
            )
            job.spp_per_pass = 1  # one sample per frame keeps the window responsive
            self.jobs[mode] = job
        self.debug = None
        self.picking = None

    def camera_changed(self) -> None:
        """The camera moved: render small until it rests (see step)."""
        self.last_change = time.perf_counter()
        self.moving = True
        self.restart()

    def resize(self, width: int, height: int) -> None:
        self.size = (max(1, width), max(1, height))
        self.orbit.resolution = self.size
        self.restart()

    def toggle_materials(self) -> None:
        """Every material between its layered reference and its neural bake."""
        self.materials = "neural" if self.materials == "reference" else "reference"
        self.restart()

    def toggle_split(self) -> None:
        self.split = not self.split
        self.restart()

    def set_view(self, view: str) -> None:
        if view not in DISPLAY_VIEWS:
            raise ValueError(f"view must be one of {', '.join(DISPLAY_VIEWS)}, got {view!r}")
        self.view = view
        self.debug = None

    def next_channel(self) -> None:
        self.channel += 1
        self.debug = None

    def frame_scene(self) -> None:
        lo, hi = self.renderer.buffers.bounds
        self.orbit.frame(lo, hi)
        self.camera_changed()

    # --- frames -----------------------------------------------------------------------
    def step(self) -> None:
        """Advance the picture by one frame: a sample per pixel, or a debug view."""
        start = time.perf_counter()
        if self.moving and start - self.last_change > IDLE_SECONDS:
            self.moving = False
            self.restart()
        if self.view == "beauty":
            for job in self.jobs.values():
                if not job.done:
                    job.step()
        elif self.debug is None:
            camera = self.orbit.to_camera(self.resolution())
            self.debug = self.debug_views.render(
                camera, self.view, self.channel, materials=self.materials
            )
        self.frame_seconds = time.perf_counter() - start
        if self.first_image_seconds is None:
            self.first_image_seconds = time.perf_counter() - self.started

    def results(self) -> dict[str, RenderResult]:
        return {mode: job.result() for mode, job in self.jobs.items()}

    def composite(self, images: dict[str, np.ndarray]) -> np.ndarray:
        """One image, or reference left of the divider and neural right of it."""
        if not self.split:
            return next(iter(images.values()))
        left, right = images["reference"], images["neural"]
        column = round(self.split_at * left.shape[1])
        return np.concatenate([left[:, :column], right[:, column:]], axis=1)

    def tonemapped(self, radiance: np.ndarray) -> np.ndarray:
        scaled = np.asarray(radiance, np.float32) * np.float32(2.0**self.exposure)
        if self.tonemapper == "filmic":
            scaled = filmic(scaled)
        return linear_to_srgb(scaled).astype(np.float32)

    def display(self) -> np.ndarray:
        """What the window shows now: [H, W, 3] float32 display values in [0, 1]."""
        if self.view != "beauty":
            if self.debug is None:
                self.step()
            assert self.debug is not None
            return self.debug.display
        images = {m: self.tonemapped(r.radiance) for m, r in self.results().items()}
        return self.composite(images)

    def stats(self) -> FrameStats:
        spp = min(job.spp_done for job in self.jobs.values())
        return FrameStats(
            spp=spp if self.view == "beauty" else 1,
            resolution=self.resolution(),
            frame_seconds=self.frame_seconds,
            first_image_seconds=self.first_image_seconds,
        )

    def material_under(self, x: float, y: float) -> str | None:
        """The name of the material under window pixel (x, y) (None: sky or outside)."""
        width, height = self.resolution()
        if self.picking is None or self.picking.material.shape != (height, width):
            # The normal view traces primary rays only: the cheapest way to the ids.
            camera = self.orbit.to_camera((width, height))
            self.picking = self.debug_views.render(camera, "normal")
        index = material_at(
            self.picking, int(x * width / self.size[0]), int(y * height / self.size[1])
        )
        return None if index is None else list(self.scene.materials)[index]

    # --- output -------------------------------------------------------------------------
    def screenshot(self, path: str | Path) -> list[Path]:
        """Write the current picture: `stem.png` as shown and `stem.exr` (linear; in
        split mode the two halves' radiance side by side)."""
        stem = output_stem(path)
        png, exr = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".exr")
        for target in (png, exr):
            check_writable(target)
        shown = self.display()
        write_ldr(png, np.round(np.clip(shown, 0.0, 1.0) * 255.0).astype(np.uint8))
        if self.view == "beauty":
            linear = self.composite({m: r.radiance for m, r in self.results().items()})
        else:
            assert self.debug is not None
            linear = self.debug.values[..., :3]
        write_exr(exr, {"RGB": linear})
        return [png, exr]
