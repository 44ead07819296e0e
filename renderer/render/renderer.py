"""The reference path tracer, driven from the host: passes, accumulation, results.

    renderer = Renderer(load_scene("scenes/default"), device="cpu")
    result = renderer.render(spp=16, seed=1)        # RenderResult, numpy arrays
    renderer.scene.camera.fov = 30                  # camera and integrator settings are
    result = renderer.render()                      # read at every render

Geometry, materials and the environment are uploaded when the Renderer is made; after
changing them call `reload()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import slangpy as spy

from ..device import RenderDevice, open_device
from ..scene.types import MATERIAL_MODES, STRATEGIES, Integrator, Scene
from .film import RenderResult
from .scene_buffers import SceneBuffers

KERNEL = ("integrators/path_tracer.slang", "render_pass")
# Pixel samples per dispatch: passes short enough for a live progress bar and Ctrl-C.
_SAMPLES_PER_PASS = {"cpu": 1 << 16, "cuda": 1 << 23, "vulkan": 1 << 23}
_MAX_SPP_PER_PASS = 64
INVALID_INDEX = 0xFFFFFFFF
NEURAL_MLP_CHOICES = ("auto", "per-lane")


def _float3(v: Any) -> spy.float3:
    x, y, z = (float(c) for c in np.asarray(v, np.float64))
    return spy.float3(x, y, z)


class RenderJob:
    """One progressive render: call `step()` until `done`, then `result()` (any time)."""

    def __init__(self, renderer: Renderer, settings: Integrator, trace_depths: int = 0) -> None:
        self.renderer = renderer
        self.settings = settings
        camera = renderer.scene.camera
        self.width, self.height = camera.resolution
        pixels = self.width * self.height
        device = renderer.device
        self.accumulators = [device.zeros(pixels, 16) for _ in range(4)]
        self.trace_depths = trace_depths
        self.trace = device.upload(np.full(max(pixels * trace_depths, 1), INVALID_INDEX, np.uint32))
        per_pass = _SAMPLES_PER_PASS.get(device.kind, 1 << 16) // max(pixels, 1)
        self.spp_per_pass = int(np.clip(per_pass, 1, _MAX_SPP_PER_PASS))
        self.spp_done = 0
        self.seconds = 0.0
        forward, right, up = camera.basis()
        self.camera = {
            "position": _float3(camera.position),
            "forward": _float3(forward),
            "right": _float3(right),
            "up": _float3(up),
            "tan_half_fov": float(np.tan(np.radians(camera.fov) / 2)),
            "aspect": self.width / self.height,
            "resolution": spy.uint2(self.width, self.height),
        }
        # the ray cone's opening angle: one pixel of the image plane at distance 1
        self.pixel_spread = float(np.arctan(2.0 * np.tan(np.radians(camera.fov) / 2) / self.height))

    @property
    def done(self) -> bool:
        return self.spp_done >= self.settings.spp

    def step(self) -> int:
        """Render one pass; returns the samples per pixel it added."""
        count = min(self.spp_per_pass, self.settings.spp - self.spp_done)
        if count <= 0:
            return 0
        start = time.perf_counter()
        s = self.settings
        radiance, radiance_sq, albedo, normal_depth = self.accumulators
        self.renderer.kernel.dispatch(
            (self.width, self.height, 1),
            g_scene=self.renderer.buffers.bind(
                s.layered_walks, s.layered_depth, s.materials == "neural"
            ),
            g_radiance=radiance,
            g_radiance_sq=radiance_sq,
            g_albedo=albedo,
            g_normal_depth=normal_depth,
            g_trace=self.trace,
            params={
                "camera": self.camera,
                "pixel_spread": self.pixel_spread,
                "sample_begin": self.spp_done,
                "sample_count": count,
                "seed": s.seed,
                "max_depth": s.max_depth,
                "rr_depth": s.rr_depth,
                "strategy": STRATEGIES.index(s.strategy),
                "trace_depths": self.trace_depths,
            },
        )
        # GPU dispatches are asynchronous: wait, so timings and progress are real.
        self.renderer.device.device.wait_for_idle()
        self.spp_done += count
        self.seconds += time.perf_counter() - start
        return count

    def shading_trace(self) -> np.ndarray:
        """[H, W, trace_depths] uint32: the material each pixel's first sample shaded at each
        depth (bit 31: neural), INVALID_INDEX where its path had ended (see path_tracer.slang)."""
        shape = (self.height, self.width, self.trace_depths)
        return RenderDevice.download(self.trace, np.uint32, shape)

    def result(self) -> RenderResult:
        """Mean and variance of the samples so far (zeros before the first pass)."""
        shape = (self.height, self.width, 4)
        sums = [
            RenderDevice.download(b, np.float32, shape).astype(np.float64)
            for b in self.accumulators
        ]
        counts = sums[2][..., 3]
        n = np.maximum(counts, 1.0)[..., None]
        mean = sums[0][..., :3] / n
        # Unbiased sample variance of one sample, divided by n: the variance of the mean.
        sample_var = np.maximum(sums[1][..., :3] / n - mean**2, 0.0) * (n / np.maximum(n - 1, 1))
        return RenderResult(
            radiance=mean.astype(np.float32),
            variance=(sample_var / n).astype(np.float32),
            albedo=(sums[2][..., :3] / n).astype(np.float32),
            normal=(sums[3][..., :3] / n).astype(np.float32),
            depth=(sums[3][..., 3] / n[..., 0]).astype(np.float32),
            spp=int(counts.min()),
            seconds=self.seconds,
            dropped_samples=int(sums[0][..., 3].sum()),
            info={
                "device": self.renderer.device.description,
                "seed": self.settings.seed,
                "strategy": self.settings.strategy,
                "max_depth": self.settings.max_depth,
                "materials": self.settings.materials,
            },
        )


class Renderer:
    """Path tracer for one scene on one device ("auto", "cpu", "cuda", "vulkan")."""

    def __init__(
        self, scene: Scene, device: str | RenderDevice = "auto", *, neural_mlp: str = "auto"
    ) -> None:
        """`neural_mlp`: "auto" lets coherent CUDA warps evaluate neural materials on
        tensor cores; "per-lane" keeps every lane on the portable path (for comparisons)."""
        if neural_mlp not in NEURAL_MLP_CHOICES:
            raise ValueError(f"neural_mlp must be one of {NEURAL_MLP_CHOICES}, got {neural_mlp!r}")
        self.device = open_device(device) if isinstance(device, str) else device
        self.scene = scene
        defines = {"NRENDER_NEURAL_PER_LANE_ONLY": "1"} if neural_mlp == "per-lane" else None
        self.kernel = self.device.kernel(*KERNEL, defines)
        self.buffers = SceneBuffers(self.device, self.kernel, scene)

    def reload(self) -> None:
        """Upload the scene again after geometry, material or environment changes."""
        self.buffers = SceneBuffers(self.device, self.kernel, self.scene)

    def start(
        self,
        *,
        spp: int | None = None,
        seed: int | None = None,
        max_depth: int | None = None,
        strategy: str | None = None,
        materials: str | None = None,
        trace_depths: int = 0,
    ) -> RenderJob:
        """A progressive render with the scene's integrator settings, some overridden.
        `materials`: "reference" renders layered materials as their graphs, "neural" as
        their bakes (materials with only one of the two always use it). `trace_depths` > 0
        records what each pixel's first sample shaded (RenderJob.shading_trace)."""
        settings = self.scene.integrator
        overrides = {
            k: v
            for k, v in {
                "spp": spp,
                "seed": seed,
                "max_depth": max_depth,
                "strategy": strategy,
                "materials": materials,
            }.items()
            if v is not None
        }
        settings = replace(settings, **overrides)
        if settings.spp < 1:
            raise ValueError(f"spp must be >= 1, got {settings.spp}")
        if settings.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {settings.strategy!r}")
        if settings.materials not in MATERIAL_MODES:
            raise ValueError(
                f"materials must be one of {MATERIAL_MODES}, got {settings.materials!r}"
            )
        return RenderJob(self, settings, trace_depths)

    def render(
        self,
        *,
        spp: int | None = None,
        seed: int | None = None,
        max_depth: int | None = None,
        strategy: str | None = None,
        materials: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> RenderResult:
        """Render to completion; `progress(done, total)` is called after every pass."""
        job = self.start(
            spp=spp, seed=seed, max_depth=max_depth, strategy=strategy, materials=materials
        )
        while not job.done:
            job.step()
            if progress is not None:
                progress(job.spp_done, job.settings.spp)
        return job.result()


def render(
    scene: Scene,
    *,
    device: str | RenderDevice = "auto",
    spp: int | None = None,
    seed: int | None = None,
    materials: str | None = None,
) -> RenderResult:
    """One-call render of a scene (see Renderer for repeated renders)."""
    return Renderer(scene, device).render(spp=spp, seed=seed, materials=materials)
