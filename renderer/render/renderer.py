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
from ..device_choices import NEURAL_MLP_CHOICES, neural_mlp_defines
from ..layout import INVALID_INDEX
from ..scene.types import MATERIAL_MODES, SCHEDULES, STRATEGIES, Camera, Integrator, Scene
from .film import RenderResult
from .scene_buffers import SceneBuffers

KERNEL = ("integrators/path_tracer.slang", "render_pass")
WAVEFRONT_MODULE = "integrators/wavefront.slang"
_MAX_WAVE_PATHS = 1 << 20
# Pixel samples per dispatch: passes short enough for a live progress bar and Ctrl-C.
_SAMPLES_PER_PASS = {"cpu": 1 << 16, "cuda": 1 << 23, "vulkan": 1 << 23}
_MAX_SPP_PER_PASS = 64


def _float3(v: Any) -> spy.float3:
    x, y, z = (float(c) for c in np.asarray(v, np.float64))
    return spy.float3(x, y, z)


def camera_value(camera: Camera) -> dict[str, Any]:
    """The `Camera` value of the kernels (scene/camera.slang) for a scene camera."""
    width, height = camera.resolution
    forward, right, up = camera.basis()
    return {
        "position": _float3(camera.position),
        "forward": _float3(forward),
        "right": _float3(right),
        "up": _float3(up),
        "tan_half_fov": float(np.tan(np.radians(camera.fov) / 2)),
        "aspect": width / height,
        "resolution": spy.uint2(width, height),
    }


def pixel_spread(camera: Camera) -> float:
    """The ray cone's opening angle: one pixel of the image plane at distance 1."""
    return float(np.arctan(2.0 * np.tan(np.radians(camera.fov) / 2) / camera.resolution[1]))


def spp_per_pass(device_kind: str, pixels: int) -> int:
    """Samples per pixel of one pass (dispatch) of a RenderJob."""
    per_pass = _SAMPLES_PER_PASS.get(device_kind, 1 << 16) // max(pixels, 1)
    return int(np.clip(per_pass, 1, _MAX_SPP_PER_PASS))


Tile = tuple[int, int, int, int]  # pixels (x0, y0, width, height) of an image


def check_tile(tile: Tile | None, width: int, height: int) -> Tile:
    """`tile` (default: the whole image), checked to lie in a `width` x `height` image."""
    if tile is None:
        return (0, 0, width, height)
    x0, y0, w, h = (int(v) for v in tile)
    if w < 1 or h < 1 or x0 < 0 or y0 < 0 or x0 + w > width or y0 + h > height:
        raise ValueError(
            f"tile {tile} (x0, y0, width, height) is not in the {width}x{height} image"
        )
    return (x0, y0, w, h)


class RenderJob:
    """One progressive render: call `step()` until `done`, then `result()` (any time).
    `tile` (x0, y0, width, height) renders those pixels of the image only, with the
    samples they have in the whole image's render (seeds, film positions, camera and
    ray cones are the full image's); `sums()` and `result()` are then tile-sized."""

    def __init__(
        self,
        renderer: Renderer,
        settings: Integrator,
        trace_depths: int = 0,
        camera: Camera | None = None,
        tile: Tile | None = None,
    ) -> None:
        self.renderer = renderer
        self.settings = settings
        camera = camera if camera is not None else renderer.scene.camera
        self.width, self.height = camera.resolution  # the image's
        self.tile = check_tile(tile, self.width, self.height)
        if trace_depths > 0 and self.tile != (0, 0, self.width, self.height):
            # the trace buffer is indexed by the full image's pixel: whole images only
            raise ValueError(f"trace_depths > 0 needs the whole image, not tile {self.tile}")
        pixels = self.tile[2] * self.tile[3]
        device = renderer.device
        # Compensated sums (integrators/pixel_sums.slang): radiance, its square, albedo and
        # sample count, normal and distance.
        self.sum_dtype = renderer.kernel.dtype("PixelSum")
        self.accumulators = [device.zeros(pixels, self.sum_dtype.itemsize) for _ in range(4)]
        self.trace_depths = trace_depths
        self.trace = device.upload(np.full(max(pixels * trace_depths, 1), INVALID_INDEX, np.uint32))
        self.spp_per_pass = spp_per_pass(device.kind, pixels)
        self.spp_done = 0
        self.seconds = 0.0
        self.camera = camera_value(camera)
        self.pixel_spread = pixel_spread(camera)

    @property
    def done(self) -> bool:
        return self.spp_done >= self.settings.spp

    def step(self, until: int | None = None) -> int:
        """Render one pass, stopping at sample `until` (default: the job's spp); returns
        the samples per pixel it added."""
        end = self.settings.spp if until is None else min(until, self.settings.spp)
        count = min(self.spp_per_pass, end - self.spp_done)
        if count <= 0:
            return 0
        start = time.perf_counter()
        self._pass(count)
        # GPU dispatches are asynchronous: wait, so timings and progress are real.
        self.renderer.device.device.wait_for_idle()
        self.spp_done += count
        self.seconds += time.perf_counter() - start
        return count

    def scene_value(self) -> dict[str, Any]:
        s = self.settings
        return self.renderer.buffers.bind(s.layered_walks, s.layered_depth, s.materials == "neural")

    def _pass(self, count: int) -> None:
        """Add samples [spp_done, spp_done + count) of every pixel to the sums."""
        radiance, radiance_sq, albedo, normal_depth = self.accumulators
        x0, y0, w, h = self.tile
        self.renderer.kernel.dispatch(
            (w, h, 1),
            g_scene=self.scene_value(),
            g_radiance=radiance,
            g_radiance_sq=radiance_sq,
            g_albedo=albedo,
            g_normal_depth=normal_depth,
            g_trace=self.trace,
            params={
                "camera": self.camera,
                "pixel_spread": self.pixel_spread,
                "tile_origin": spy.uint2(x0, y0),
                "tile_size": spy.uint2(w, h),
                "sample_begin": self.spp_done,
                "sample_count": count,
                "seed": self.settings.seed,
                "settings": self.path_settings(),
            },
        )

    def path_settings(self) -> dict[str, int]:
        """The `PathSettings` value (integrators/path.slang)."""
        s = self.settings
        return {
            "max_depth": s.max_depth,
            "rr_depth": s.rr_depth,
            "strategy": STRATEGIES.index(s.strategy),
            "trace_depths": self.trace_depths,
            "transparent_background": int(s.transparent_background),
        }

    def shading_trace(self) -> np.ndarray:
        """[H, W, trace_depths] uint32: the material each pixel's first sample shaded at each
        depth (bit 31: neural), INVALID_INDEX where its path had ended (see path_tracer.slang)."""
        shape = (self.height, self.width, self.trace_depths)
        return RenderDevice.download(self.trace, np.uint32, shape)

    def clear(self, sample_begin: int) -> None:
        """Zero the sums; the next pass renders samples from `sample_begin` on (a sample
        block of a multi-worker render, renderer/render/workers.py)."""
        zeros = np.zeros(self.tile[2] * self.tile[3] * self.sum_dtype.itemsize, np.uint8)
        for b in self.accumulators:
            b.copy_from_numpy(zeros)
        self.spp_done = sample_begin

    def sums(self) -> list[np.ndarray]:
        """The four running sums (radiance, its square, albedo and count, normal and
        distance) as `sum - carry` in float64, each [H, W, 4] (the tile's H and W)."""
        sums = []
        for b in self.accumulators:
            raw = RenderDevice.download(b, self.sum_dtype, (self.tile[3], self.tile[2]))
            # the float32 -> float64 casts are exact; one ufunc makes no temporaries
            sums.append(np.subtract(raw["sum"], raw["carry"], dtype=np.float64))
        return sums

    def result_info(self) -> dict[str, Any]:
        return {
            "device": self.renderer.device.description,
            "seed": self.settings.seed,
            "strategy": self.settings.strategy,
            "max_depth": self.settings.max_depth,
            "materials": self.settings.materials,
            "transparent_background": self.settings.transparent_background,
        }

    def result(self) -> RenderResult:
        """Mean and variance of the samples so far (zeros before the first pass)."""
        return result_from_sums(self.sums(), self.seconds, self.result_info())


def result_from_sums(sums: list[np.ndarray], seconds: float, info: dict[str, Any]) -> RenderResult:
    """The image of the four pixel sums of `RenderJob.sums()` (each [H, W, 4], float64)."""
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
        coverage=(sums[1][..., 3] / n[..., 0]).astype(np.float32),
        spp=int(counts.min()),
        seconds=seconds,
        dropped_samples=int(sums[0][..., 3].sum()),
        info=info,
    )


class WavefrontJob(RenderJob):
    """The same render as RenderJob, scheduled as a wavefront (integrators/wavefront.slang):
    all paths of a pass advance one bounce per dispatch, and the host sorts the paths that
    hit something by material before they are shaded, so that a GPU warp shades one
    material (the tensor-core path of neural materials needs that). Bit-identical to the
    megakernel where the decoder runs per lane (the CPU and Vulkan devices, or
    neural_mlp="per-lane"); on CUDA the coherent warps it makes use the fp16 tensor-core
    decoder, so the image differs by its rounding. On the CPU device it only adds the
    sorting and the path state traffic. `sorted_keys` keeps, for the first pass, each
    bounce's materials in the order they were shaded (for the coherence benchmark)."""

    def __init__(
        self,
        renderer: Renderer,
        settings: Integrator,
        trace_depths: int = 0,
        camera: Camera | None = None,
        tile: Tile | None = None,
    ) -> None:
        super().__init__(renderer, settings, trace_depths, camera, tile)
        if self.tile != (0, 0, self.width, self.height):
            raise ValueError(f"the wavefront schedule renders whole images only, not tile {tile}")
        device = renderer.device
        self.kernels = {
            name: device.kernel(WAVEFRONT_MODULE, name, renderer.defines)
            for name in ("wave_start", "wave_intersect", "wave_shade", "wave_finish")
        }
        pixels = self.width * self.height
        # the path state of a pass lives on the device: bound it (~200 bytes a path)
        per_pass = max(_MAX_WAVE_PATHS, pixels) // pixels
        self.spp_per_pass = int(np.clip(per_pass, 1, min(self.spp_per_pass, _MAX_SPP_PER_PASS)))
        capacity = pixels * self.spp_per_pass
        start = self.kernels["wave_start"]
        self.paths = device.zeros(capacity, start.dtype("PathState").itemsize)
        self.hits = device.zeros(capacity, start.dtype("Hit").itemsize)
        self.keys = device.zeros(capacity, 4)
        self.order = device.zeros(capacity, 4)
        self.sorted_keys: list[np.ndarray] = []

    def _dispatch(self, name: str, threads: int, **params: Any) -> None:
        kernel = self.kernels[name]
        known = kernel.global_names | kernel.uniform_names
        kernel.dispatch((max(threads, 1), 1, 1), **{k: v for k, v in params.items() if k in known})

    def _pass(self, count: int) -> None:
        radiance, radiance_sq, albedo, normal_depth = self.accumulators
        paths = self.width * self.height * count
        values: dict[str, Any] = {
            "g_scene": self.scene_value(),
            "g_paths": self.paths,
            "g_hits": self.hits,
            "g_keys": self.keys,
            "g_order": self.order,
            "g_radiance": radiance,
            "g_radiance_sq": radiance_sq,
            "g_albedo": albedo,
            "g_normal_depth": normal_depth,
            "g_trace": self.trace,
        }
        params = {
            "camera": self.camera,
            "pixel_spread": self.pixel_spread,
            "sample_begin": self.spp_done,
            "sample_count": count,
            "seed": self.settings.seed,
            "path_count": paths,
            "shade_count": 0,
            "settings": self.path_settings(),
        }
        self._dispatch("wave_start", paths, params=params, **values)
        first_pass = self.spp_done == 0
        # a path is shaded at most max_depth + 1 times; the extra round sees them all end
        for _ in range(self.settings.max_depth + 2):
            self._dispatch("wave_intersect", paths, params=params, **values)
            keys = RenderDevice.download(self.keys, np.uint32, (paths,))
            live = np.flatnonzero(keys != INVALID_INDEX)
            if live.size == 0:
                break
            order = live[np.argsort(keys[live], kind="stable")].astype(np.uint32)
            if first_pass:
                self.sorted_keys.append(keys[order])
            params["shade_count"] = int(order.size)
            padded = np.zeros(paths, np.uint32)  # the buffer's size; entries past the count unused
            padded[: order.size] = order
            self.order.copy_from_numpy(padded)
            self._dispatch("wave_shade", order.size, params=params, **values)
        self._dispatch("wave_finish", self.width * self.height, params=params, **values)


def integrator_settings(
    scene: Scene,
    *,
    spp: int | None = None,
    seed: int | None = None,
    max_depth: int | None = None,
    strategy: str | None = None,
    materials: str | None = None,
) -> Integrator:
    """The scene's integrator settings with those given replaced, checked."""
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
    settings = replace(scene.integrator, **overrides)
    if settings.spp < 1:
        raise ValueError(f"spp must be >= 1, got {settings.spp}")
    if settings.strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {settings.strategy!r}")
    if settings.materials not in MATERIAL_MODES:
        raise ValueError(f"materials must be one of {MATERIAL_MODES}, got {settings.materials!r}")
    return settings


class Renderer:
    """Path tracer for one scene on one device ("auto", "cpu", "cuda", "vulkan")."""

    def __init__(
        self, scene: Scene, device: str | RenderDevice = "auto", *, neural_mlp: str = "auto"
    ) -> None:
        """`neural_mlp`: "auto" lets coherent CUDA warps evaluate neural materials and
        NeRF volumes on tensor cores; "per-lane" keeps every lane on the portable path
        (for comparisons)."""
        if neural_mlp not in NEURAL_MLP_CHOICES:
            raise ValueError(f"neural_mlp must be one of {NEURAL_MLP_CHOICES}, got {neural_mlp!r}")
        self.device = open_device(device) if isinstance(device, str) else device
        self.scene = scene
        self.neural_mlp = neural_mlp
        self.defines = neural_mlp_defines(neural_mlp)
        self.kernel = self.device.kernel(*KERNEL, self.defines)
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
        schedule: str = "megakernel",
        camera: Camera | None = None,
        tile: Tile | None = None,
    ) -> RenderJob:
        """A progressive render with the scene's integrator settings, some overridden.
        `materials`: "reference" renders layered materials as their graphs, "neural" as
        their bakes (materials with only one of the two always use it). `trace_depths` > 0
        records what each pixel's first sample shaded (RenderJob.shading_trace).
        `schedule`: "megakernel" follows each path to its end in one thread; "wavefront"
        advances all paths a bounce at a time and shades them sorted by material, so GPU
        warps stay coherent (WavefrontJob). The two give the same image (on CUDA, up to
        the tensor-core decoder's fp16 rounding). `camera` replaces the scene's camera
        (and its resolution) for this job only, as the viewer does. `tile` (x0, y0, width,
        height): render only those pixels, each as in the whole image (megakernel only)."""
        settings = integrator_settings(
            self.scene,
            spp=spp,
            seed=seed,
            max_depth=max_depth,
            strategy=strategy,
            materials=materials,
        )
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if schedule == "wavefront":
            return WavefrontJob(self, settings, trace_depths, camera, tile)
        return RenderJob(self, settings, trace_depths, camera, tile)

    def render(
        self,
        *,
        spp: int | None = None,
        seed: int | None = None,
        max_depth: int | None = None,
        strategy: str | None = None,
        materials: str | None = None,
        schedule: str = "megakernel",
        progress: Callable[[int, int], None] | None = None,
    ) -> RenderResult:
        """Render to completion; `progress(done, total)` is called after every pass."""
        job = self.start(
            spp=spp,
            seed=seed,
            max_depth=max_depth,
            strategy=strategy,
            materials=materials,
            schedule=schedule,
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
