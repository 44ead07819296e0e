"""One render over a Ray cluster: bands of rows (pixel tiles), rendered by Ray actors.

    job = ClusterRenderJob(load_scene("scenes/default"), "auto", spp=64)  # after ray.init
    try:
        while not job.done:
            job.step()      # what the actors sent; hands them their next passes
        result = job.result()
    finally:
        job.close()

Design (docs/cluster.md has the measurements and the alternatives):
- The unit of work is a tile: a band of rows of the image (`tile_bands`, a few per
  actor). An actor renders every sample block of its tile (workers.py's `sample_blocks`,
  cut by the FULL image's pixel count) in block order, each into zeroed sums
  (`RenderJob` with a tile: its pixels' samples are those of the whole image's render),
  and adds the block sums in float64 in block order into its own tile sums, starting
  from zero: per pixel the additions of `BlockSums`, so the image is bit-identical to
  `ParallelRenderJob` with any worker count, whatever the tiling. The tile's sums travel
  back once (128 bytes a pixel for the whole render, not per block).
- What travels: the scene as this process loaded and checked it (camera, --res and the
  render's settings included), pickled once into Ray's object store; Ray copies it to
  each node that runs an actor. Meshes, textures, environment map, NeRF volumes, material graphs and
  `.nmat` bakes are in it as arrays, so no file has to exist on the workers and none
  can be forgotten (glTF buffers, a graph's textures), and no actor parses or
  validates the scene again. The kernels are compiled on each node (its cache).
- One actor per CPU (one per GPU with a GPU device), each with its own device; it opens
  the scene once (a few seconds) and then renders the passes it is handed. This process
  hands each ready actor the lowest tile nobody holds, pass by pass (the bar and Ctrl-C
  stay live), two passes ahead so that the actor never waits for a round trip, and
  renders nothing itself. The schedule is the megakernel's (tiles are megakernel-only).
- Ray does the scheduling (where the actors run, SPREAD over nodes), the data movement
  (scene out, sums back through the object store) and the restarts of an actor whose
  process or node died (max_restarts). A tile of a lost actor goes back to the queue and
  is rendered again from its first block: its sums are a pure function of the tile, so
  the retry is exact. Ray must not retry a pass itself (max_task_retries=0): a pass
  continues the tile's sums in the actor, which a restarted actor no longer has.
- `stop()` (Ctrl-C) hands out no more passes, waits for those in flight (at most two per
  actor) and asks each actor for the sums of its partial tile: every sample rendered so
  far is kept, but unlike workers.py the tiles then hold different sample counts (tiles
  not started hold none and stay black); the images divide each pixel by its own count.
"""

from __future__ import annotations

import heapq
import pickle
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import NrenderError, one_line
from ..scene.types import Scene
from ..version import __version__
from .film import RenderResult
from .renderer import (
    Renderer,
    RenderJob,
    Tile,
    integrator_settings,
    result_from_sums,
    spp_per_pass,
)
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
# Bands per actor: the last ones to finish leave the other actors idle for less.
_TILES_PER_ACTOR = 4
# A band's samples at least (about a second of one core): each tile costs a job, a clear
# and a read-back per block, and a sums transfer.
_MIN_TILE_SAMPLES = 1 << 18


def tile_bands(width: int, height: int, actors: int, spp: int) -> list[Tile]:
    """Bands of rows (x0, y0, width, height) covering the image: a few per actor, none of
    fewer than about _MIN_TILE_SAMPLES samples. The image does not depend on them."""
    by_work = width * height * spp // _MIN_TILE_SAMPLES
    count = max(1, min(height, _TILES_PER_ACTOR * actors, by_work))
    return bands_of_rows(width, height, count)


def bands_of_rows(width: int, height: int, count: int) -> list[Tile]:
    """`count` bands of rows (at most one a row), the first ones one row taller."""
    count = max(1, min(count, height))
    rows, extra = divmod(height, count)
    bands, y = [], 0
    for band in range(count):
        h = rows + (band < extra)
        bands.append((0, y, width, h))
        y += h
    return bands


def check_schedule(schedule: str) -> None:
    """Cluster renders are tiles, which only the megakernel renders: refuse the others
    (before connecting to Ray, which can take seconds)."""
    if schedule != "megakernel":
        raise NrenderError(
            f"--schedule {schedule}: a cluster render is rendered in tiles, which only "
            "the megakernel schedule renders; use --schedule megakernel or --workers"
        )


class TileActor:
    """A Ray actor (made one by `ray.remote` at run time: Ray is optional): a device and
    the scene, rendering the passes of the tiles it is handed. It holds one tile's sums:
    the float64 sum, in block order from zero, of the sums of the tile's blocks done."""

    def __init__(self, device: str, neural_mlp: str) -> None:
        self.options = (device, neural_mlp)
        self.renderer: Renderer | None = None
        self.blocks: tuple[tuple[int, int], ...] = ()
        self.tile: int | None = None  # the tile whose sums this actor holds
        self.job: RenderJob | None = None  # the tile's job: its device sums are `block`'s
        self.block: int | None = None  # the block in the job, None between blocks
        self.next_block = 0
        self.tile_sums: BlockSums | None = None  # the tile's blocks, added in block order

    def start(
        self, scene_ref: list[Any], version: str, blocks: tuple[tuple[int, int], ...]
    ) -> dict[str, Any]:
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
        # a one-pixel job: the renderer and kernels, without whole-image buffers
        job = start_block_job(scene, *self.options, "megakernel", timings, tile=(0, 0, 1, 1))
        self.renderer, self.blocks = job.renderer, blocks
        # Started again after a lost call, the actor may be the same process: forget any
        # tile it held, so that a tile handed to it again is rendered from its first block.
        self.tile, self.job, self.block, self.next_block, self.tile_sums = None, None, None, 0, None
        return {
            "timings": timings,
            "has_light": bool(job.renderer.buffers.has_light),
            "info": job.result_info(),
            "node": ray.util.get_node_ip_address(),
        }

    def render(self, index: int, tile: Tile, until: int) -> tuple[int, Sums | None]:
        """The samples of tile `index` up to sample `until`, block after block: the samples
        per pixel added, and the tile's sums when its last block is done."""
        assert self.renderer is not None, "start() first"
        if self.tile != index:
            self.tile, self.block, self.next_block = index, None, 0
            self.job = self.renderer.start(tile=tile)
            self.tile_sums = BlockSums(tile[2], tile[3])
        job = self.job
        assert job is not None
        count = 0
        while job.spp_done < until:
            if self.block is None:  # the next block, from zeroed sums
                self.block, self.next_block = self.next_block, self.next_block + 1
                job.clear(self.blocks[self.block][0])
            end = self.blocks[self.block][1]
            count += render_pass(job, min(until, end))
            if job.spp_done >= end:
                self._add_block()  # in block order: blocks are rendered in order
        if self.next_block < len(self.blocks) or self.block is not None:
            return count, None
        self.tile = None
        assert self.tile_sums is not None
        return count, self.tile_sums.sums

    def partial(self, index: int) -> Sums | None:
        """The sums of tile `index` so far, if this actor holds any (after a stop)."""
        if self.tile != index:
            return None
        self._add_block()
        self.tile = None
        assert self.tile_sums is not None
        return self.tile_sums.sums

    def _add_block(self) -> None:
        """Add the job's block (whole or partial) to the tile's sums."""
        assert self.job is not None and self.tile_sums is not None
        if self.block is not None and self.job.spp_done > self.blocks[self.block][0]:
            self.tile_sums.add(self.block, self.job.sums())
        self.block = None


@dataclass
class _Slot:
    """This process's view of one actor."""

    index: int
    handle: Any
    starting: Any = None  # the ObjectRef of start(), while it runs
    ready: bool = False
    restarts: int = 0
    # tiles handed to it whose sums have not come back -> samples per pixel it reported
    held: dict[int, int] = field(default_factory=dict)
    planned: list[tuple[int, int]] = field(default_factory=list)  # (tile, until) not yet sent


class ClusterRenderJob:
    """A progressive render by Ray actors; the interface of ParallelRenderJob (`step`,
    `done`, `result`, `stop`, `close`, `spp_done`, `seconds`). This process must be
    connected to Ray (renderer.ray_cluster.connect). `workers`: actors at most (default:
    the cluster's CPUs, fewer for a render too short to repay their start-up; on a GPU
    device one per GPU). `device` is the device kind every actor opens: "auto" is "cuda"
    when the cluster has GPUs, else "cpu". `bands`: the number of tiles (bands of rows;
    default `tile_bands`'s choice); the image does not depend on it. `spp_done` is the
    image's mean samples per pixel; `samples_by_worker` counts each actor's samples."""

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
        bands: int | None = None,
    ) -> None:
        from ..ray_cluster import cluster_slots, import_ray

        self._ray = ray = import_ray()
        if not ray.is_initialized():
            raise RuntimeError("connect to Ray first (renderer.ray_cluster.connect)")
        check_schedule(schedule)
        self.settings = integrator_settings(
            scene, spp=spp, seed=seed, max_depth=max_depth, strategy=strategy, materials=materials
        )
        cpus, gpus = cluster_slots(ray)
        kind = ("cuda" if gpus else "cpu") if device == "auto" else device
        self.device_kind = kind
        self.width, self.height = scene.camera.resolution
        self.pixels = self.width * self.height
        # the full image's blocks in every tile: per pixel the sums of --workers
        self.blocks = sample_blocks(self.settings.spp, self.pixels, kind)
        slots = cpus if kind == "cpu" else gpus
        if slots < 1:
            raise NrenderError(f"the Ray cluster has no {'CPU' if kind == 'cpu' else 'GPU'}")
        samples = self.pixels * self.settings.spp
        wanted = workers if workers is not None else useful_workers(slots, samples)
        if not 1 <= wanted <= MAX_WORKERS:
            raise ValueError(f"workers must be in [1, {MAX_WORKERS}], got {wanted}")
        actors = min(wanted, slots)
        if bands is None:
            self.tiles = tile_bands(self.width, self.height, actors, self.settings.spp)
        else:
            self.tiles = bands_of_rows(self.width, self.height, bands)
        self.workers = min(actors, len(self.tiles))
        self.spp_done = 0
        self.seconds = 0.0
        self.samples_by_worker: dict[int, int] = {}
        self.worker_timings: dict[int, dict[str, float]] = {}
        self.worker_nodes: dict[int, str] = {}
        self.tiles_done = 0
        self._sums: Sums = [np.zeros((self.height, self.width, 4)) for _ in range(4)]
        self._samples = 0  # pixel samples received, of all tiles (spp_done is its mean)
        self._free = list(range(len(self.tiles)))  # a heap: the lowest tile goes first
        self._in_flight: dict[Any, tuple[_Slot, str, int]] = {}  # ref -> (slot, kind, tile)
        self._slots: list[_Slot] = []
        self._info: dict[str, Any] | None = None
        self._started: float | None = None
        self._stopped = False
        try:
            self._launch(scene, kind, neural_mlp)
            self.wait_ready(1)  # errors, the device and `has_light` before the first pass
        except BaseException:
            self.close()
            raise

    def _launch(self, scene: Scene, kind: str, neural_mlp: str) -> None:
        ray = self._ray
        # the render's settings travel inside the scene, as a worker process's do
        data = pickle.dumps(replace(scene, integrator=self.settings), protocol=5)
        if len(data) > MAX_SCENE_BYTES:
            raise NrenderError(
                f"{scene.source or 'the scene'}: {len(data) >> 20} MiB in memory (meshes, "
                f"textures, environment, bakes, volumes) is more than the "
                f"{MAX_SCENE_BYTES >> 20} MiB "
                "a cluster render sends to every node"
            )
        self._scene_ref = ray.put(data)
        del data
        resources = {"num_cpus": 1} if kind == "cpu" else {"num_cpus": 1, "num_gpus": 1}
        actor_class = ray.remote(TileActor).options(
            **resources,
            max_restarts=_MAX_RESTARTS,
            max_task_retries=0,  # see the module docstring: a pass is not idempotent
            scheduling_strategy="SPREAD",
        )
        for index in range(self.workers):
            slot = _Slot(index, actor_class.remote(kind, neural_mlp))
            self._slots.append(slot)
            self._start(slot)

    def _start(self, slot: _Slot) -> None:
        slot.ready = False
        slot.starting = slot.handle.start.remote([self._scene_ref], __version__, self.blocks)
        self._in_flight[slot.starting] = (slot, "start", 0)

    @property
    def done(self) -> bool:
        return self.tiles_done == len(self.tiles)

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
            self._receive(_POLL_SECONDS)
        self.spp_done = self._samples // self.pixels

    def step(self) -> int:
        """Take what the actors sent (waiting a moment for it) and hand out passes; returns
        the image's samples per pixel added since the last call (less after an actor was
        lost)."""
        if self._started is None:
            self._started = time.perf_counter()
        self._hand_out()
        self._receive(_POLL_SECONDS)
        self._hand_out()
        return self._update()

    def _update(self) -> int:
        before, self.spp_done = self.spp_done, self._samples // self.pixels
        if self._started is not None:
            self.seconds = time.perf_counter() - self._started
        return self.spp_done - before

    def stop(self) -> None:
        """Hand out no more passes; keep every sample rendered so far, partial tiles too
        (tiles then hold different sample counts)."""
        self._stopped = True
        while any(kind == "render" for _, kind, _ in self._in_flight.values()):
            self._receive(_POLL_SECONDS)
        for slot in self._slots:
            # all its passes answered: only its last tile can be partial
            for tile, received in slot.held.items():
                if not slot.ready or received == 0:
                    continue
                try:
                    sums = self._ray.get(slot.handle.partial.remote(tile))
                except self._ray.exceptions.RayError:
                    self._samples -= received * self._tile_pixels(tile)  # lost with its actor
                    sums = None
                if sums is not None:
                    self._store(tile, sums)
            slot.held, slot.planned = {}, []
        self._update()

    def result(self) -> RenderResult:
        """Mean and variance of the tiles received so far (after `stop`: of every sample,
        each pixel by its own sample count)."""
        info = dict(self._info["info"]) if self._info else {"device": self.device_kind}
        info.update(workers=self.workers, cluster=True, tiles=len(self.tiles))
        return result_from_sums(self._sums, self.seconds, info)

    def close(self) -> None:
        """End the actors (Ray frees their slots; the cluster itself keeps running)."""
        for slot in self._slots:
            self._ray.kill(slot.handle, no_restart=True)
        self._slots = []
        self._in_flight = {}

    def _tile_pixels(self, tile: int) -> int:
        return self.tiles[tile][2] * self.tiles[tile][3]

    def _store(self, tile: int, sums: Sums) -> None:
        """A tile's sums into the image's (tiles do not overlap: nothing to add)."""
        x0, y0, w, h = self.tiles[tile]
        for total, part in zip(self._sums, sums, strict=True):
            total[y0 : y0 + h, x0 : x0 + w] = part

    def _hand_out(self) -> None:
        """Keep every ready actor _PASSES_AHEAD passes ahead (the next tile's first pass
        is sent before the last one's sums came back), taking the lowest free tiles."""
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
                    self._take(slot, self._next_tile())
                tile, until = slot.planned.pop(0)
                ref = slot.handle.render.remote(tile, self.tiles[tile], until)
                self._in_flight[ref] = (slot, "render", tile)
                sent[id(slot)] += 1

    def _next_tile(self) -> int:
        return heapq.heappop(self._free)

    def _take(self, slot: _Slot, tile: int) -> None:
        """Plan the calls of `tile`: each about a pass of samples (~2^16 on the CPU), over
        several blocks when they are shorter (fewer round trips, a Ctrl-C still quick)."""
        step = spp_per_pass(self.device_kind, self._tile_pixels(tile))
        spp = self.settings.spp
        slot.held[tile] = 0
        slot.planned = [(tile, min(a + step, spp)) for a in range(0, spp, step)]

    def _receive(self, timeout: float) -> None:
        """Handle the answers that arrived (waiting up to `timeout` for the first)."""
        ray = self._ray
        if not self._in_flight:
            return
        refs = list(self._in_flight)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        for ref in ready:
            if ref not in self._in_flight:
                continue  # a lost actor's, dropped with it
            slot, kind, tile = self._in_flight.pop(ref)
            try:
                answer = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as exc:
                self._lost(slot, exc)
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
            samples = count * self._tile_pixels(tile)
            self._samples += samples
            slot.held[tile] += count
            self.samples_by_worker[slot.index] = self.samples_by_worker.get(slot.index, 0) + samples
            if sums is not None:
                self._store(tile, sums)
                self.tiles_done += 1
                del slot.held[tile]

    def _ready(self, slot: _Slot, answer: dict[str, Any]) -> None:
        slot.ready, slot.starting = True, None
        self.worker_timings[slot.index] = answer["timings"]
        self.worker_nodes[slot.index] = answer["node"]
        if self._info is None:
            self._info = answer

    def _lost(self, slot: _Slot, exc: Exception) -> None:
        """An actor died (its process or its node): its tiles go back to the queue, to be
        rendered again from their first sample, and Ray restarts it (a few times)."""
        lost = sum(received * self._tile_pixels(tile) for tile, received in slot.held.items())
        for tile in slot.held:
            heapq.heappush(self._free, tile)
        slot.held, slot.planned = {}, []
        self._samples -= lost
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
