"""One render over a Ray cluster: the sample blocks of workers.py, rendered by Ray actors.

    job = ClusterRenderJob(load_scene("scenes/default"), "auto", spp=64)  # after ray.init
    try:
        while not job.done:
            job.step()      # what the actors sent; hands them their next passes
        result = job.result()
    finally:
        job.close()

Design (docs/cluster.md has the measurements and the alternatives):
- The blocks, their sums and the merge are workers.py's (`sample_blocks`, `BlockSums`,
  `RenderJob.clear/step/sums`): block sums added in block order, so the image is
  bit-identical to `ParallelRenderJob` with any worker count.
- What travels: the scene as this process loaded and checked it (camera, --res and the
  render's settings included), pickled once into Ray's object store; Ray copies it to
  each node that runs an actor. Meshes, textures, environment map, material graphs and
  `.nmat` bakes are in it as arrays, so no file has to exist on the workers and none
  can be forgotten (glTF buffers, a graph's textures), and no actor parses or
  validates the scene again. The kernels are compiled on each node (its cache).
- One actor per CPU (one per GPU with a GPU device), each with its own device; it opens
  the scene once (a few seconds) and then renders the passes it is handed. This process
  hands each ready actor the lowest block nobody holds, two passes ahead so that the
  actor never waits for a round trip, and renders nothing itself.
- Ray does the scheduling (where the actors run, SPREAD over nodes), the data movement
  (scene out, sums back through the object store) and the restarts of an actor whose
  process or node died (max_restarts). A block of a lost actor goes back to the queue and
  is rendered again from its first sample: its sums are a pure function of the block, so
  the retry is exact. Ray must not retry a pass itself (max_task_retries=0): a pass
  continues the block's sums in the actor, which a restarted actor no longer has.
- `stop()` (Ctrl-C) hands out no more passes, waits for those in flight (at most two per
  actor) and asks each actor for the sums of its partial block: as in workers.py every
  sample rendered so far is kept, and every pixel holds the same samples.
"""

from __future__ import annotations

import heapq
import pickle
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import NrenderError, one_line
from ..scene.types import Scene
from ..version import __version__
from .film import RenderResult
from .renderer import RenderJob, integrator_settings, result_from_sums
from .workers import (
    MAX_WORKERS,
    BlockSums,
    Sums,
    render_pass,
    sample_blocks,
    start_block_job,
    useful_workers,
)

# The scene as pickled for the actors (arrays in memory: decoded textures, the environment
# map, meshes, bakes). Each node holds one copy and every actor one more; a scene this
# large is a mistake, not a render.
MAX_SCENE_BYTES = 2 << 30
# Passes handed to an actor before it answered the first: it starts the next while its
# answer travels. Two keep it busy; more would only delay a stop.
_PASSES_AHEAD = 2
# Ray restarts an actor whose process or node died this often; then its slot is given up.
_MAX_RESTARTS = 3
_POLL_SECONDS = 0.2


class BlockActor:
    """A Ray actor (made one by `ray.remote` at run time: Ray is optional): a device and
    the scene, rendering the passes of the blocks it is handed."""

    def __init__(self, device: str, neural_mlp: str, schedule: str) -> None:
        self.options = (device, neural_mlp, schedule)
        self.job: RenderJob | None = None
        self.block: int | None = None  # the block whose sums the device holds
        self.first = 0

    def start(self, scene_ref: list[Any], version: str) -> dict[str, Any]:
        """Load the scene (`scene_ref`: its ObjectRef in a list, so that Ray does not
        unpickle it before the versions are compared) and build the renderer."""
        if version != __version__:
            raise NrenderError(
                f"this Ray worker has nrender {__version__}, the driver {version}: install "
                "the same version on every node"
            )
        import ray

        begin = time.perf_counter()
        scene = pickle.loads(ray.get(scene_ref[0]))
        timings = {"scene": time.perf_counter() - begin}
        self.job = start_block_job(scene, *self.options, timings)
        return {
            "timings": timings,
            "spp_per_pass": self.job.spp_per_pass,
            "has_light": bool(self.job.renderer.buffers.has_light),
            "info": self.job.result_info(),
            "node": ray.util.get_node_ip_address(),
        }

    def render(self, block: int, first: int, until: int, end: int) -> tuple[int, Sums | None]:
        """Samples [.., until) of block [first, end): the samples per pixel added, and the
        block's sums when `until` is its end."""
        assert self.job is not None, "start() first"
        if self.block != block:
            self.job.clear(first)
            self.block, self.first = block, first
        count = render_pass(self.job, until)
        if self.job.spp_done < end:
            return count, None
        self.block = None
        return count, self.job.sums()

    def partial(self, block: int) -> Sums | None:
        """The sums of `block` so far, if this actor holds any (after a stop)."""
        if self.job is None or self.block != block or self.job.spp_done <= self.first:
            return None
        self.block = None
        return self.job.sums()


@dataclass
class _Slot:
    """This process's view of one actor."""

    index: int
    handle: Any
    starting: Any = None  # the ObjectRef of start(), while it runs
    ready: bool = False
    restarts: int = 0
    # blocks handed to it whose sums have not come back -> samples per pixel it reported
    held: dict[int, int] = field(default_factory=dict)
    planned: list[tuple[int, int]] = field(default_factory=list)  # (block, until) not yet sent


class ClusterRenderJob:
    """A progressive render by Ray actors; the interface of ParallelRenderJob (`step`,
    `done`, `result`, `stop`, `close`, `spp_done`, `seconds`). This process must be
    connected to Ray (renderer.ray_cluster.connect). `workers`: actors at most (default:
    the cluster's CPUs, fewer for a render too short to repay their start-up; on a GPU
    device one per GPU). `device` is the device kind every actor opens: "auto" is "cuda"
    when the cluster has GPUs, else "cpu"."""

    def __init__(
        self,
        scene: Scene,
        device: str = "auto",
        *,
        workers: int | None = None,
        schedule: str = "megakernel",
        neural_mlp: str = "auto",
        spp: int | None = None,
        seed: int | None = None,
        max_depth: int | None = None,
        strategy: str | None = None,
        materials: str | None = None,
    ) -> None:
        from ..ray_cluster import cluster_slots, import_ray

        self._ray = ray = import_ray()
        if not ray.is_initialized():
            raise RuntimeError("connect to Ray first (renderer.ray_cluster.connect)")
        self.settings = integrator_settings(
            scene, spp=spp, seed=seed, max_depth=max_depth, strategy=strategy, materials=materials
        )
        cpus, gpus = cluster_slots(ray)
        kind = ("cuda" if gpus else "cpu") if device == "auto" else device
        self.device_kind = kind
        self.width, self.height = scene.camera.resolution
        self.blocks = sample_blocks(self.settings.spp, self.width * self.height, kind)
        slots = cpus if kind == "cpu" else gpus
        if slots < 1:
            raise NrenderError(f"the Ray cluster has no {'CPU' if kind == 'cpu' else 'GPU'}")
        samples = self.width * self.height * self.settings.spp
        wanted = workers if workers is not None else useful_workers(slots, samples)
        if not 1 <= wanted <= MAX_WORKERS:
            raise ValueError(f"workers must be in [1, {MAX_WORKERS}], got {wanted}")
        self.workers = min(wanted, slots, len(self.blocks))
        self.spp_done = 0
        self.seconds = 0.0
        self.samples_by_worker: dict[int, int] = {}
        self.worker_timings: dict[int, dict[str, float]] = {}
        self.worker_nodes: dict[int, str] = {}
        self.scene_bytes = 0
        self._sums = BlockSums(self.width, self.height)
        self._free = list(range(len(self.blocks)))  # a heap: the lowest block goes first
        self._in_flight: dict[Any, tuple[_Slot, str, int]] = {}  # ref -> (slot, kind, block)
        self._slots: list[_Slot] = []
        self._info: dict[str, Any] | None = None
        self._spp_per_pass = 1
        self._started: float | None = None
        self._stopped = False
        try:
            self._launch(scene, kind, neural_mlp, schedule)
            self.wait_ready(1)  # errors, the device and `has_light` before the first pass
        except BaseException:
            self.close()
            raise

    def _launch(self, scene: Scene, kind: str, neural_mlp: str, schedule: str) -> None:
        ray = self._ray
        # the render's settings travel inside the scene, as a worker process's do
        data = pickle.dumps(replace(scene, integrator=self.settings), protocol=5)
        self.scene_bytes = len(data)
        if len(data) > MAX_SCENE_BYTES:
            raise NrenderError(
                f"{scene.source or 'the scene'}: {len(data) >> 20} MiB in memory (meshes, "
                f"textures, environment, bakes) is more than the {MAX_SCENE_BYTES >> 20} MiB "
                "a cluster render sends to every node"
            )
        self._scene_ref = ray.put(data)
        del data
        resources = {"num_cpus": 1} if kind == "cpu" else {"num_cpus": 1, "num_gpus": 1}
        actor_class = ray.remote(BlockActor).options(
            **resources,
            max_restarts=_MAX_RESTARTS,
            max_task_retries=0,  # see the module docstring: a pass is not idempotent
            scheduling_strategy="SPREAD",
        )
        for index in range(self.workers):
            slot = _Slot(index, actor_class.remote(kind, neural_mlp, schedule))
            self._slots.append(slot)
            self._start(slot)

    def _start(self, slot: _Slot) -> None:
        slot.ready = False
        slot.starting = slot.handle.start.remote([self._scene_ref], __version__)
        self._in_flight[slot.starting] = (slot, "start", 0)

    @property
    def done(self) -> bool:
        return self._sums.merged == len(self.blocks)

    @property
    def has_light(self) -> bool:
        return bool(self._info is None or self._info["has_light"])

    @property
    def device_description(self) -> str:
        description = self._info["info"]["device"] if self._info else self.device_kind
        nodes = len(set(self.worker_nodes.values())) or 1
        return f"{description} in a Ray cluster of {nodes} node{'s' if nodes > 1 else ''}"

    def wait_ready(self, count: int | None = None) -> None:
        """Wait until `count` actors (default: all) have the scene and their device."""
        wanted = self.workers if count is None else count
        while sum(s.ready for s in self._slots) < wanted:
            if not any(kind == "start" for _, kind, _ in self._in_flight.values()):
                break  # the others died: step() reports it
            self.spp_done += self._receive(_POLL_SECONDS)

    def step(self) -> int:
        """Take what the actors sent (waiting a moment for it) and hand out passes; returns
        the samples per pixel added since the last call (less after an actor was lost)."""
        if self._started is None:
            self._started = time.perf_counter()
        self._hand_out()
        added = self._receive(_POLL_SECONDS)
        self._hand_out()
        self.spp_done += added
        self.seconds = time.perf_counter() - self._started
        return added

    def stop(self) -> None:
        """Hand out no more passes; keep every sample rendered so far, partial blocks too."""
        self._stopped = True
        while any(kind == "render" for _, kind, _ in self._in_flight.values()):
            self.spp_done += self._receive(_POLL_SECONDS)
        for slot in self._slots:
            # all its passes answered: only its last block can be partial
            for block, received in slot.held.items():
                if not slot.ready or received == 0:
                    continue
                try:
                    sums = self._ray.get(slot.handle.partial.remote(block))
                except self._ray.exceptions.RayError:
                    self.spp_done -= received  # lost with its actor
                    sums = None
                if sums is not None:
                    self._sums.add(block, sums)
            slot.held, slot.planned = {}, []
        self._sums.add_waiting()
        if self._started is not None:
            self.seconds = time.perf_counter() - self._started

    def result(self) -> RenderResult:
        """Mean and variance of the blocks added so far (after `stop`: of every sample)."""
        info = dict(self._info["info"]) if self._info else {"device": self.device_kind}
        info.update(workers=self.workers, cluster=True)
        return result_from_sums(self._sums.sums, self.seconds, info)

    def close(self) -> None:
        """End the actors (Ray frees their slots; the cluster itself keeps running)."""
        for slot in self._slots:
            self._ray.kill(slot.handle, no_restart=True)
        self._slots = []
        self._in_flight = {}

    def _hand_out(self) -> None:
        """Keep every ready actor _PASSES_AHEAD passes ahead (the next block's first pass
        is sent before the last one's sums came back), taking the lowest free blocks."""
        if self._stopped:
            return
        sent = {id(s): 0 for s in self._slots}
        for slot, kind, _ in self._in_flight.values():
            sent[id(slot)] += kind == "render"
        for slot in self._slots:
            while slot.ready and sent[id(slot)] < _PASSES_AHEAD:
                if not slot.planned:
                    if not self._free:
                        break
                    self._take(slot, self._next_block())
                block, until = slot.planned.pop(0)
                first, end = self.blocks[block]
                ref = slot.handle.render.remote(block, first, until, end)
                self._in_flight[ref] = (slot, "render", block)
                sent[id(slot)] += 1

    def _next_block(self) -> int:
        return heapq.heappop(self._free)

    def _take(self, slot: _Slot, block: int) -> None:
        first, end = self.blocks[block]
        step = self._spp_per_pass
        slot.held[block] = 0
        slot.planned = [(block, min(a + step, end)) for a in range(first, end, step)]

    def _receive(self, timeout: float) -> int:
        """Handle the answers that arrived (waiting up to `timeout` for the first); returns
        the samples per pixel they added."""
        ray = self._ray
        if not self._in_flight:
            return 0
        refs = list(self._in_flight)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        added = 0
        for ref in ready:
            if ref not in self._in_flight:
                continue  # a lost actor's, dropped with it
            slot, kind, block = self._in_flight.pop(ref)
            try:
                answer = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as exc:
                added -= self._lost(slot, exc)
                continue
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause
                if isinstance(cause, NrenderError):
                    raise NrenderError(f"Ray worker {slot.index}: {cause}") from None
                raise RuntimeError(f"Ray worker {slot.index} failed:\n{exc}") from None
            if kind == "start":
                self._ready(slot, answer)
                continue
            count, sums = answer
            added += count
            slot.held[block] += count
            self.samples_by_worker[slot.index] = self.samples_by_worker.get(slot.index, 0) + count
            if sums is not None:
                self._sums.add(block, sums)
                del slot.held[block]
        return added

    def _ready(self, slot: _Slot, answer: dict[str, Any]) -> None:
        slot.ready, slot.starting = True, None
        self.worker_timings[slot.index] = answer["timings"]
        self.worker_nodes[slot.index] = answer["node"]
        if self._info is None:
            self._info = answer
            self._spp_per_pass = int(answer["spp_per_pass"])

    def _lost(self, slot: _Slot, exc: Exception) -> int:
        """An actor died (its process or its node): its blocks go back to the queue, and
        Ray restarts it (a few times). Returns the samples per pixel lost with it."""
        lost = sum(slot.held.values())
        for block in slot.held:
            heapq.heappush(self._free, block)
        slot.held, slot.planned = {}, []
        self.samples_by_worker[slot.index] = self.samples_by_worker.get(slot.index, 0) - lost
        for ref, (other, _, _) in list(self._in_flight.items()):
            if other is slot:
                del self._in_flight[ref]  # its other answers fail the same way
        slot.restarts += 1
        if slot.restarts <= _MAX_RESTARTS:
            self._start(slot)
        elif not any(s.ready or s.starting is not None for s in self._slots if s is not slot):
            raise RuntimeError(f"every Ray worker died; the last: {one_line(str(exc))}")
        else:
            slot.ready, slot.starting = False, None
        return lost
