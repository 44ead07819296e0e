"""One render over all cores of a machine: sample blocks rendered by worker processes.

    job = ParallelRenderJob(load_scene("scenes/default"), "cpu", workers=4, spp=64)
    try:
        while not job.done:
            job.step()      # a pass of this process's block, and what the workers sent
        result = job.result()
    finally:
        job.close()

Design (docs/workers.md has the measurements and the alternatives):
- Every worker renders the whole image (the path tracer's default tile; cluster.py splits
  the pixels), so the unit of work is a *sample block*: samples [a, b) of every pixel
  (cluster.py renders them per tile, cut the same way). A pixel's samples are seeded by
  (seed, full-image pixel index, sample index) and traced with the full image's camera,
  so a block's sums are a function of scene, settings and block alone.
- The blocks depend on the sample count, the pixel count and the device kind, never on
  the number of workers: on the CPU device blocks of max(ceil(spp / 256), one pass)
  samples, a pass being RenderJob's (~2^16 samples, 1 to 64 per pixel); on a GPU one
  block (one device fills itself; host round trips would cost more than they give).
- Each block is rendered into zeroed compensated sums on its worker's device, read back
  as `sum - carry` in float64 (RenderJob.sums). The image's sums are the float64 sum of
  the block sums in block order, starting from zero: ((0 + B0) + B1) + B2 ... A block
  that arrives early waits for those before it. The same additions in the same order,
  whichever process rendered a block and whenever it arrived: the image is bit-identical
  for any worker count, 1 included (then this process renders every block itself).
  It differs from `Renderer.render()` (one Kahan sum over all samples) by rounding.
- Worker 0 is this process; workers 1..N-1 are processes started with "spawn" (devices
  must not be forked) that load the scene file themselves, open their own device (the
  compiled-kernel cache on disk is shared) and take the next free block from a shared
  counter, so a worker that starts late or runs slow simply takes fewer blocks.
- `stop()` (Ctrl-C) lets every worker finish its pass in flight and keeps all samples
  rendered so far, partial blocks included: each pixel then holds the same samples.
  Workers ignore SIGINT (a terminal sends it to the whole process group); this process
  tells them through an event.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..device import RenderDevice, open_device
from ..errors import NrenderError, one_line
from ..scene.types import Camera, Integrator, Scene
from .film import RenderResult
from .renderer import (
    Renderer,
    RenderJob,
    Tile,
    integrator_settings,
    result_from_sums,
    spp_per_pass,
)

MAX_WORKERS = 256
# CPU blocks: 256 at most keep 16+ cores busy to the end; at least one pass of the CPU
# device long (renderer.py), so a block's host cost (clear, read back, add: 5-10 ms at
# 160x120, a 0.2 s pass) stays a few percent of it. On a GPU a render is one block.
_MAX_CPU_BLOCKS = 256
_POLL_SECONDS = 0.2
# A worker process that ended without saying so is declared dead after this long.
_EXIT_GRACE_SECONDS = 2.0

Sums = list[np.ndarray]  # RenderJob.sums(): four [H, W, 4] float64 arrays


# A worker process costs about 5.6 s of one core before its first sample (imports, scene
# and BVH, device, kernels; docs/workers.md): by default each extra worker must get at
# least this many samples (about 13 s of one core on the default scene) to pay for itself.
MIN_SAMPLES_PER_WORKER = 2_000_000


def default_workers(device_kind: str, samples: int | None = None) -> int:
    """All cores this process may use on the CPU device, but no more than a render of
    `samples` samples keeps busy enough to repay their start-up; one on a GPU. The image
    does not depend on the choice."""
    if device_kind != "cpu":
        return 1
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return useful_workers(cores, samples)


def useful_workers(slots: int, samples: int | None = None) -> int:
    """Of `slots` cores (this machine's, or a Ray cluster's), as many as a render of
    `samples` samples keeps busy enough to repay their start-up (all when not known)."""
    if samples is None:
        return max(1, slots)
    return max(1, min(slots, samples // MIN_SAMPLES_PER_WORKER))


def sample_blocks(spp: int, pixels: int, device_kind: str) -> list[tuple[int, int]]:
    """The sample ranges [begin, end) a render of `spp` samples of `pixels` pixels is made
    of: on the CPU at most 256, each at least one pass (~2^16 samples) long."""
    if device_kind != "cpu":
        return [(0, spp)]
    size = max(-(-spp // _MAX_CPU_BLOCKS), spp_per_pass(device_kind, pixels))
    return [(a, min(a + size, spp)) for a in range(0, spp, size)]


class BlockSums:
    """The image's sums: block sums added in block order, whatever order they come in."""

    def __init__(self, width: int, height: int) -> None:
        self.sums: Sums = [np.zeros((height, width, 4)) for _ in range(4)]
        self.merged = 0  # blocks [0, merged) are in `sums`
        self.waiting: dict[int, Sums] = {}

    def add(self, block: int, sums: Sums) -> None:
        self.waiting[block] = sums
        while self.merged in self.waiting:
            self._merge(self.waiting.pop(self.merged))
            self.merged += 1

    def add_waiting(self) -> None:
        """After a stop: add the blocks that came in, in block order, gaps and all."""
        for block in sorted(self.waiting):
            self._merge(self.waiting.pop(block))

    def _merge(self, sums: Sums) -> None:
        for total, block in zip(self.sums, sums, strict=True):
            total += block


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to rebuild this process's render."""

    scene_path: str
    camera: Camera
    settings: Integrator
    device: str
    neural_mlp: str
    schedule: str
    blocks: tuple[tuple[int, int], ...]
    spawned: float  # time.time() when the process was started (start-up measurement)


def render_pass(job: RenderJob, end: int) -> int:
    """One pass of a block ending at sample `end`; a pass that adds nothing would loop."""
    count = job.step(until=end)
    if count == 0:
        raise RuntimeError(f"a pass up to sample {end} added none (job spp {job.settings.spp})")
    return count


def start_block_job(
    scene: Scene,
    device: str,
    neural_mlp: str,
    schedule: str,
    timings: dict[str, float],
    tile: Tile | None = None,
) -> RenderJob:
    """A worker's device, renderer and job for `scene` (with the render's camera and
    settings; `tile`: of those pixels only), ready to render blocks; adds the start-up
    costs to `timings` (seconds)."""
    begin = time.perf_counter()
    render_device = open_device(device)
    timings["device"] = time.perf_counter() - begin
    begin = time.perf_counter()
    renderer = Renderer(scene, render_device, neural_mlp=neural_mlp)
    job = renderer.start(schedule=schedule, tile=tile)
    timings["renderer"] = time.perf_counter() - begin
    return job


def _take_block(counter: Any, count: int) -> int | None:
    """The next block nobody has taken yet, or None."""
    with counter.get_lock():
        block = counter.value
        if block >= count:
            return None
        counter.value = block + 1
        return block


def _worker_main(spec: WorkerSpec, worker: int, counter: Any, stop: Any, messages: Any) -> None:
    """A worker process: load the scene, then render blocks until none are left."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it sets `stop`
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        timings = {"start": time.time() - spec.spawned}
        begin = time.perf_counter()
        from ..scene import load_scene

        scene = load_scene(spec.scene_path)
        scene.camera = spec.camera
        scene.integrator = spec.settings
        timings["scene"] = time.perf_counter() - begin
        job = start_block_job(scene, spec.device, spec.neural_mlp, spec.schedule, timings)
        messages.put(("ready", worker, timings))
        while not stop.is_set():
            block = _take_block(counter, len(spec.blocks))
            if block is None:
                break
            first, end = spec.blocks[block]
            job.clear(first)
            while job.spp_done < end and not stop.is_set():
                messages.put(("progress", worker, render_pass(job, end)))
            if job.spp_done > first:
                messages.put(("block", worker, block, job.sums()))
    except BaseException as exc:  # everything goes to the parent, as one message
        if isinstance(exc, NrenderError):
            messages.put(("error", worker, "user", one_line(str(exc))))
        else:
            messages.put(("error", worker, "bug", traceback.format_exc()))
    finally:
        messages.put(("exit", worker))


class ParallelRenderJob:
    """A progressive render by `workers` processes (this one included), the same image for
    any count; the interface of RenderJob (`step`, `done`, `result`) plus `stop` and
    `close`. More workers need `scene` to come from a file (each worker loads it); the
    camera and settings are this process's, so changes to them reach the workers."""

    def __init__(
        self,
        scene: Scene,
        device: str | RenderDevice = "auto",
        *,
        workers: int = 1,
        schedule: str = "megakernel",
        neural_mlp: str = "auto",
        spp: int | None = None,
        seed: int | None = None,
        max_depth: int | None = None,
        strategy: str | None = None,
        materials: str | None = None,
    ) -> None:
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be in [1, {MAX_WORKERS}], got {workers}")
        overrides = {
            "spp": spp,
            "seed": seed,
            "max_depth": max_depth,
            "strategy": strategy,
            "materials": materials,
        }
        self.settings = integrator_settings(scene, **overrides)
        render_device = open_device(device) if isinstance(device, str) else device
        self.width, self.height = scene.camera.resolution
        pixels = self.width * self.height
        self.blocks = sample_blocks(self.settings.spp, pixels, render_device.kind)
        self.workers = min(workers, len(self.blocks))
        self.spp_done = 0  # samples per pixel rendered by all workers
        self.seconds = 0.0  # wall time since the first step
        self.samples_by_worker: dict[int, int] = {}
        self.worker_timings: dict[int, dict[str, float]] = {}  # start-up costs, seconds
        self._sums = BlockSums(self.width, self.height)
        self._own: int | None = None  # the block this process is rendering
        self._started: float | None = None
        self._stopped = False
        self._processes: list[Any] = []
        self._exited: set[int] = set()
        self._dead_since: dict[int, float] = {}
        context = multiprocessing.get_context("spawn")
        self._counter = context.Value("i", 0)
        self._stop = context.Event()
        self._messages: Any = None
        try:
            if self.workers > 1:
                self._spawn(context, scene, render_device.kind, neural_mlp, schedule)
            # built while the workers start, so their start-up overlaps this one
            self.renderer = Renderer(scene, render_device, neural_mlp=neural_mlp)
            self.job = self.renderer.start(schedule=schedule, **overrides)
        except BaseException:
            self.close()
            raise

    def _spawn(self, context: Any, scene: Scene, kind: str, neural_mlp: str, schedule: str) -> None:
        if scene.source is None:
            raise ValueError("a render with several workers needs a scene loaded from a file")
        self._messages = context.Queue()
        spec = WorkerSpec(
            scene_path=os.path.abspath(scene.source),
            camera=scene.camera,
            settings=self.settings,
            device=kind,
            neural_mlp=neural_mlp,
            schedule=schedule,
            blocks=tuple(self.blocks),
            spawned=time.time(),
        )
        # Started with SIGINT blocked, so that a Ctrl-C while a worker imports cannot kill
        # it; the worker ignores SIGINT before unblocking it.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for worker in range(1, self.workers):
                process = context.Process(
                    target=_worker_main,
                    args=(spec, worker, self._counter, self._stop, self._messages),
                    name=f"nrender-worker-{worker}",
                    daemon=True,
                )
                process.start()
                self._processes.append(process)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    @property
    def done(self) -> bool:
        return self._sums.merged == len(self.blocks)

    @property
    def has_light(self) -> bool:
        """False when the scene has no emitter and a black environment."""
        return bool(self.renderer.buffers.has_light)

    @property
    def device_description(self) -> str:
        return str(self.renderer.device.description)

    def wait_ready(self) -> None:
        """Wait until every worker process has loaded the scene and opened its device
        (measurements: the render's time then leaves their start-up out)."""
        while len(self.worker_timings) < self.workers - 1:
            self.spp_done += self._receive(_POLL_SECONDS)

    def step(self) -> int:
        """Render one pass of this process's block, or wait a moment for the workers;
        returns the samples per pixel all workers added since the last call."""
        if self._started is None:
            self._started = time.perf_counter()
        if self._own is None and not self._stopped:
            self._own = _take_block(self._counter, len(self.blocks))
            if self._own is not None:
                self.job.clear(self.blocks[self._own][0])
        added = 0
        if self._own is not None:
            end = self.blocks[self._own][1]
            count = render_pass(self.job, end)
            self.samples_by_worker[0] = self.samples_by_worker.get(0, 0) + count
            added += count
            if self.job.spp_done >= end:
                self._finish_own_block()
            added += self._receive(0)
        else:
            added += self._receive(_POLL_SECONDS)
        self.spp_done += added
        self.seconds = time.perf_counter() - self._started
        return added

    def stop(self) -> None:
        """Stop every worker after its pass in flight; keep all samples rendered so far."""
        self._stopped = True
        self._stop.set()
        if self._own is not None:
            self._finish_own_block()
        while len(self._exited) < len(self._processes):
            self.spp_done += self._receive(_POLL_SECONDS)
        self._sums.add_waiting()
        if self._started is not None:
            self.seconds = time.perf_counter() - self._started

    def result(self) -> RenderResult:
        """Mean and variance of the blocks added so far (after `stop`: of every sample)."""
        info = {**self.job.result_info(), "workers": self.workers}
        return result_from_sums(self._sums.sums, self.seconds, info)

    def close(self) -> None:
        """End the worker processes (at once if they are still rendering)."""
        self._stop.set()
        for worker, process in enumerate(self._processes, start=1):
            # one still starting up holds no samples: it need not be waited for
            process.join(timeout=1.0 if worker in self.worker_timings else 0.0)
            if process.is_alive():
                process.terminate()
                process.join()
        if self._messages is not None:
            self._messages.close()
        self._processes = []

    def _finish_own_block(self) -> None:
        assert self._own is not None
        if self.job.spp_done > self.blocks[self._own][0]:
            self._store(0, self._own, self.job.sums())
        self._own = None

    def _store(self, worker: int, block: int, sums: Sums) -> None:
        self._sums.add(block, sums)

    def _receive(self, timeout: float) -> int:
        """Handle the workers' messages (waiting up to `timeout` for the first); returns
        the samples per pixel they reported."""
        if not self._processes:
            return 0
        added = 0
        while True:
            try:
                message = (
                    self._messages.get(timeout=timeout)
                    if timeout
                    else (self._messages.get_nowait())
                )
            except queue.Empty:
                break
            timeout = 0
            kind, worker, *rest = message
            if kind == "progress":
                added += rest[0]
                self.samples_by_worker[worker] = self.samples_by_worker.get(worker, 0) + rest[0]
            elif kind == "block":
                self._store(worker, *rest)
            elif kind == "ready":
                self.worker_timings[worker] = rest[0]
            elif kind == "exit":
                self._exited.add(worker)
            elif kind == "error":
                origin, text = rest
                if origin == "user":
                    raise NrenderError(f"render worker {worker}: {text}")
                raise RuntimeError(f"render worker {worker} failed:\n{text}")
        self._check_alive()
        return added

    def _check_alive(self) -> None:
        now = time.monotonic()
        for worker, process in enumerate(self._processes, start=1):
            if worker in self._exited or process.exitcode is None:
                continue
            # its last messages may still be in the pipe: give them a moment
            since = self._dead_since.setdefault(worker, now)
            if now - since > _EXIT_GRACE_SECONDS:
                raise RuntimeError(
                    f"render worker {worker} ended (exit code {process.exitcode}) "
                    "before it finished"
                )
